// ShmRing across real processes: shared anonymous mappings inherited by
// fork(), producer and consumer in different processes.
#include "conduit/ipc/shm_ring.hpp"

#include <sys/mman.h>

#include <cstring>
#include <numeric>

#include "conduit/error.hpp"
#include "conduit/ipc/unix_socket.hpp"
#include "test_support.hpp"

namespace conduit::ipc {
namespace {

using conduit::testing::fork_child;
using conduit::testing::wait_child;
using namespace std::chrono_literals;

// A shared anonymous mapping holding one formatted ring, visible to children.
class SharedRing {
 public:
  explicit SharedRing(std::size_t capacity) : size_(ShmRing::footprint(capacity)) {
    memory_ = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (memory_ == MAP_FAILED) throw std::runtime_error("mmap failed");
    ShmRing::format(memory_, capacity);
  }
  ~SharedRing() { ::munmap(memory_, size_); }

  ShmRing producer(ShmRingOptions options = {}) {
    return ShmRing::attach(memory_, size_, ShmRing::Role::producer, options);
  }
  ShmRing consumer(ShmRingOptions options = {}) {
    return ShmRing::attach(memory_, size_, ShmRing::Role::consumer, options);
  }
  std::byte* bytes() const { return static_cast<std::byte*>(memory_); }
  std::size_t size() const { return size_; }

 private:
  void* memory_;
  std::size_t size_;
};

// Message i: its index, then bytes derived from it.
std::vector<std::byte> message_for(std::uint64_t index, std::size_t size) {
  std::vector<std::byte> message(size);
  for (std::size_t i = 0; i < size; ++i)
    message[i] = static_cast<std::byte>(i < 8 ? index >> (8 * i) : (index * 31 + i) & 0xff);
  return message;
}

bool matches(std::span<const std::byte> got, std::uint64_t index, std::size_t size) {
  auto expected = message_for(index, size);
  return got.size() == size && (size == 0 || std::memcmp(got.data(), expected.data(), size) == 0);
}

// Sizes that exercise wrap-around in a small ring: not multiples of 8, up to
// the maximum.
std::size_t size_for(std::uint64_t index, std::size_t max) {
  std::size_t sizes[] = {0, 1, 7, 8, 9, 63, 64, 100, 1000, max / 3, max};
  return sizes[index % std::size(sizes)];
}

TEST(ShmRing, CarriesMessagesFromZeroBytesToTheMaximumAcrossProcesses) {
  SharedRing ring(4096);
  const std::size_t max = 4096 / 2 - 8;
  constexpr std::uint64_t kCount = 20000;
  pid_t child = fork_child([&] {
    ShmRing producer = ring.producer();
    EXPECT_EQ(producer.max_message_size(), max);
    for (std::uint64_t i = 0; i < kCount; ++i)
      ASSERT_TRUE(producer.send(message_for(i, size_for(i, max)), 10s));
  });
  ShmRing consumer = ring.consumer();
  for (std::uint64_t i = 0; i < kCount; ++i) {
    Received received = consumer.consume(10s);
    ASSERT_EQ(received.status, ReceiveStatus::message) << "message " << i;
    ASSERT_TRUE(matches(received.message, i, size_for(i, max))) << "message " << i;
  }
  EXPECT_EQ(consumer.consume(10s).status, ReceiveStatus::closed);
  EXPECT_TRUE(conduit::testing::exited_cleanly(wait_child(child)));
}

// Large messages are copied in with streaming stores; sizes on both sides of
// that threshold, not multiples of 16, from sources at odd addresses.
TEST(ShmRing, LargeMessagesArriveIntactAcrossProcesses) {
  SharedRing ring(4 << 20);
  const std::size_t sizes[] = {(256 << 10) - 1, 256 << 10, (256 << 10) + 13, (1 << 20) + 7,
                               (2 << 20) - 8};
  constexpr std::uint64_t kRounds = 12;
  pid_t child = fork_child([&] {
    ShmRing producer = ring.producer();
    for (std::uint64_t i = 0; i < kRounds * std::size(sizes); ++i) {
      std::size_t size = sizes[i % std::size(sizes)];
      auto message = message_for(i, size + i % 3);
      ASSERT_TRUE(producer.send(std::span(message).subspan(i % 3), 10s));
    }
  });
  ShmRing consumer = ring.consumer();
  for (std::uint64_t i = 0; i < kRounds * std::size(sizes); ++i) {
    std::size_t size = sizes[i % std::size(sizes)];
    Received received = consumer.consume(10s);
    ASSERT_EQ(received.status, ReceiveStatus::message) << "message " << i;
    auto expected = message_for(i, size + i % 3);
    ASSERT_EQ(received.message.size(), size) << "message " << i;
    ASSERT_EQ(std::memcmp(received.message.data(), expected.data() + i % 3, size), 0)
        << "message " << i;
  }
  EXPECT_EQ(consumer.consume(10s).status, ReceiveStatus::closed);
  EXPECT_TRUE(conduit::testing::exited_cleanly(wait_child(child)));
}

TEST(ShmRing, TenMillionMessagesArriveInOrderWithoutLossOrDuplicates) {
  SharedRing ring(1 << 20);
  constexpr std::uint64_t kCount = 10'000'000;
  pid_t child = fork_child([&] {
    ShmRing producer = ring.producer();
    for (std::uint64_t i = 0; i < kCount; ++i) {
      // 8..40 bytes: the index, then (size - 8) bytes of a checksum pattern.
      std::size_t size = 8 + (i % 5) * 8;
      auto space = producer.loan(size, 30s);
      ASSERT_TRUE(space.has_value());
      std::memcpy(space->data(), &i, 8);
      for (std::size_t b = 8; b < size; ++b) (*space)[b] = static_cast<std::byte>(i * b);
      producer.commit(size);
    }
  });
  ShmRing consumer = ring.consumer();
  std::uint64_t checksum = 0, expected_checksum = 0;
  for (std::uint64_t i = 0; i < kCount; ++i) {
    Received received = consumer.consume(30s);
    ASSERT_EQ(received.status, ReceiveStatus::message) << "message " << i;
    std::uint64_t index;
    std::memcpy(&index, received.message.data(), 8);
    ASSERT_EQ(index, i) << "lost, duplicated or reordered";
    ASSERT_EQ(received.message.size(), 8 + (i % 5) * 8);
    for (std::size_t b = 8; b < received.message.size(); ++b)
      checksum += std::to_integer<std::uint64_t>(received.message[b]);
    for (std::size_t b = 8; b < received.message.size(); ++b)
      expected_checksum += static_cast<std::uint8_t>(i * b);
  }
  EXPECT_EQ(checksum, expected_checksum);
  EXPECT_EQ(consumer.consume(30s).status, ReceiveStatus::closed);
  EXPECT_TRUE(conduit::testing::exited_cleanly(wait_child(child, 120s)));
}

TEST(ShmRing, LoanedSpaceLiesInsideTheSharedSegment) {
  SharedRing ring(8192);
  ShmRing producer = ring.producer();
  ShmRing consumer = ring.consumer();
  auto space = producer.loan(100);
  ASSERT_TRUE(space.has_value());
  EXPECT_GE(space->data(), ring.bytes());
  EXPECT_LE(space->data() + space->size(), ring.bytes() + ring.size());
  std::memcpy(space->data(), "zero-copy", 9);
  producer.commit(9);  // shorter than loaned
  Received received = consumer.consume(1s);
  ASSERT_EQ(received.status, ReceiveStatus::message);
  EXPECT_EQ(received.message.data(), space->data()) << "consume must not copy";
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(received.message.data()), 9), "zero-copy");
}

TEST(ShmRing, NothingIsVisibleBeforeCommit) {
  SharedRing ring(8192);
  ShmRing producer = ring.producer();
  ShmRing consumer = ring.consumer();
  auto space = producer.loan(16);
  ASSERT_TRUE(space.has_value());
  EXPECT_EQ(consumer.consume(0ns).status, ReceiveStatus::timed_out);
  producer.commit(16);
  EXPECT_EQ(consumer.consume(0ns).status, ReceiveStatus::message);
}

TEST(ShmRing, ConsumeTimesOutOnAnEmptyRing) {
  SharedRing ring(4096);
  ShmRing producer = ring.producer();
  ShmRing consumer = ring.consumer();
  auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(consumer.consume(50ms).status, ReceiveStatus::timed_out);
  auto waited = std::chrono::steady_clock::now() - started;
  EXPECT_GE(waited, 45ms);
  EXPECT_LT(waited, 5s);
}

TEST(ShmRing, SendTimesOutOnAFullRing) {
  SharedRing ring(4096);
  ShmRing producer = ring.producer();
  ShmRing consumer = ring.consumer();
  std::vector<std::byte> message(1000);
  int sent = 0;
  while (producer.send(message, 0ns)) ++sent;
  EXPECT_GE(sent, 3);
  EXPECT_FALSE(producer.send(message, 20ms));
  ASSERT_EQ(consumer.consume(0ns).status, ReceiveStatus::message);
  consumer.release();
  EXPECT_TRUE(producer.send(message, 1s)) << "released space is reusable";
}

TEST(ShmRing, CopyingReceiveFreesSpaceAtOnce) {
  SharedRing ring(4096);
  ShmRing producer = ring.producer();
  ShmRing consumer = ring.consumer();
  ASSERT_TRUE(producer.send(message_for(7, 300)));
  std::vector<std::byte> out;
  ASSERT_EQ(consumer.receive(out, 1s), ReceiveStatus::message);
  EXPECT_TRUE(matches(out, 7, 300));
}

TEST(ShmRing, OversizedMessageIsRefusedBeforeAnythingIsWritten) {
  SharedRing ring(4096);
  ShmRing producer = ring.producer();
  ShmRing consumer = ring.consumer();
  std::vector<std::byte> big(producer.max_message_size() + 1);
  EXPECT_THROW(producer.send(big), MessageTooLarge);
  EXPECT_EQ(consumer.consume(0ns).status, ReceiveStatus::timed_out);
}

TEST(ShmRing, ConsumerSeesClosedAfterDrainingAClosedProducer) {
  SharedRing ring(4096);
  ShmRing consumer = ring.consumer();
  {
    ShmRing producer = ring.producer();
    ASSERT_TRUE(producer.send(message_for(1, 10)));
    ASSERT_TRUE(producer.send(message_for(2, 10)));
  }
  EXPECT_TRUE(matches(consumer.consume(1s).message, 1, 10));
  EXPECT_TRUE(matches(consumer.consume(1s).message, 2, 10));
  EXPECT_EQ(consumer.consume(1s).status, ReceiveStatus::closed);
}

TEST(ShmRing, ProducerWhoseConsumerClosedGetsPeerGone) {
  SharedRing ring(4096);
  ShmRing producer = ring.producer();
  { ShmRing consumer = ring.consumer(); }
  EXPECT_THROW(producer.send(message_for(1, 10)), PeerGone);
}

TEST(ShmRing, WriterKilledMidMessageLeavesReaderWithPeerGoneAndNoTornMessage) {
  SharedRing ring(65536);
  pid_t child = fork_child([&] {
    ShmRing producer = ring.producer();
    producer.send(message_for(0, 100));
    producer.send(message_for(1, 100));
    auto space = producer.loan(1000);
    std::memset(space->data(), 0xAB, 500);  // half written, never committed
    ::raise(SIGKILL);
  });
  ASSERT_TRUE(WIFSIGNALED(wait_child(child)));
  ShmRing consumer = ring.consumer(ShmRingOptions{0ns, 10ms});
  EXPECT_TRUE(matches(consumer.consume(5s).message, 0, 100)) << "committed messages survive";
  EXPECT_TRUE(matches(consumer.consume(5s).message, 1, 100));
  try {
    consumer.consume(5s);
    FAIL() << "expected PeerGone";
  } catch (const PeerGone& error) {
    EXPECT_NE(std::string(error.what()).find("producer process"), std::string::npos)
        << error.what();
  }
}

TEST(ShmRing, ReaderKilledWhileWriterIsBlockedMakesSendFail) {
  SharedRing ring(4096);
  pid_t reader = fork_child([&] {
    ShmRing consumer = ring.consumer();
    consumer.consume(10s);  // attach, take one message, then die
    ::raise(SIGKILL);
  });
  ShmRing producer = ring.producer(ShmRingOptions{0ns, 10ms});
  std::vector<std::byte> message(1000);
  auto started = std::chrono::steady_clock::now();
  EXPECT_THROW(
      {
        for (;;) producer.send(message, 10s);
      },
      PeerGone);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
  EXPECT_TRUE(WIFSIGNALED(wait_child(reader)));
}

TEST(ShmRing, BlockedConsumerWakesForAMessageFromAnotherProcess) {
  SharedRing ring(4096);
  ShmRing consumer = ring.consumer(ShmRingOptions{0ns, 50ms});  // sleeps at once
  pid_t child = fork_child([&] {
    ShmRing producer = ring.producer(ShmRingOptions{0ns, 50ms});
    std::this_thread::sleep_for(20ms);
    producer.send(message_for(5, 64));
  });
  Received received = consumer.consume(10s);
  ASSERT_EQ(received.status, ReceiveStatus::message);
  EXPECT_TRUE(matches(received.message, 5, 64));
  EXPECT_TRUE(conduit::testing::exited_cleanly(wait_child(child)));
}

TEST(ShmRing, CancellationStopsABlockedConsume) {
  SharedRing ring(4096);
  ShmRing producer = ring.producer();
  Cancellation cancellation;
  ShmRing consumer = ring.consumer(ShmRingOptions{0ns, 10ms, &cancellation});
  std::thread canceller([&] {
    std::this_thread::sleep_for(20ms);
    cancellation.cancel();
  });
  auto started = std::chrono::steady_clock::now();
  EXPECT_THROW(consumer.consume(10s), Cancelled);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
  canceller.join();
}

TEST(ShmRing, APeerWatchThatHangsUpIsThePeersEndWhateverPidTheRingHolds) {
  SharedRing ring(4096);
  auto [watched, peers_end] = UnixSocket::pair(UnixSocketType::stream);
  ShmRingOptions options{0ns, 10ms};
  options.peer_watch = watched.fd();
  ShmRing consumer = ring.consumer(options);
  // The producer's recorded pid is this process's, alive throughout, and
  // the producer never closes before the consumer has given up.
  ShmRing producer = ring.producer();
  ASSERT_TRUE(producer.send(message_for(1, 10), 1s));
  { UnixSocket closing = std::move(peers_end); }  // the peer hangs up
  Received committed = consumer.consume(5s);
  ASSERT_EQ(committed.status, ReceiveStatus::message) << "what was committed is drained first";
  EXPECT_TRUE(matches(committed.message, 1, 10));
  auto started = std::chrono::steady_clock::now();
  EXPECT_THROW(consumer.consume(10s), PeerGone);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
}

TEST(ShmRing, InterruptEndsAConsumeSleepingOnTheFutexAtOnce) {
  SharedRing ring(4096);
  ShmRing producer = ring.producer();
  // Liveness checks every 10 s: only the interrupt can end the wait early.
  ShmRing consumer = ring.consumer(ShmRingOptions{0ns, 10s});
  std::thread interrupter([&] {
    std::this_thread::sleep_for(50ms);
    consumer.interrupt();
  });
  auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(consumer.consume(20s).status, ReceiveStatus::timed_out);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
  interrupter.join();
  // It was used up: the next consume waits as usual.
  started = std::chrono::steady_clock::now();
  EXPECT_EQ(consumer.consume(30ms).status, ReceiveStatus::timed_out);
  EXPECT_GE(std::chrono::steady_clock::now() - started, 25ms);
}

TEST(ShmRing, InterruptBeforeConsumeEndsTheNextWaitButNotAWaitingMessage) {
  SharedRing ring(4096);
  ShmRing producer = ring.producer();
  ShmRing consumer = ring.consumer();
  consumer.interrupt();
  auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(consumer.consume(10s).status, ReceiveStatus::timed_out);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
  // A message that is there is delivered, interrupt or not.
  auto message = message_for(1, 10);
  ASSERT_TRUE(producer.send(message));
  consumer.interrupt();
  Received received = consumer.consume(10s);
  ASSERT_EQ(received.status, ReceiveStatus::message);
  EXPECT_TRUE(matches(received.message, 1, 10));
}

TEST(ShmRing, AttachRefusesMemoryThatIsNotARing) {
  std::vector<std::byte> garbage(ShmRing::footprint(4096), std::byte{0x5a});
  EXPECT_THROW(ShmRing::attach(garbage.data(), garbage.size(), ShmRing::Role::consumer),
               ProtocolError);
}

TEST(ShmRing, AttachRefusesACapacityLargerThanTheSegment) {
  SharedRing ring(8192);
  EXPECT_THROW(ShmRing::attach(ring.bytes(), ShmRing::footprint(4096), ShmRing::Role::consumer),
               ProtocolError);
}

TEST(ShmRing, AttachRefusesARoleHeldByALiveProcess) {
  SharedRing ring(4096);
  ShmRing first = ring.consumer();
  pid_t child = fork_child([&] { EXPECT_THROW(ring.consumer(), Error); });
  EXPECT_TRUE(conduit::testing::exited_cleanly(wait_child(child)));
}

TEST(ShmRing, FormatRefusesACapacityThatIsNotAPowerOfTwo) {
  std::vector<std::byte> memory(ShmRing::footprint(8192));
  EXPECT_THROW(ShmRing::format(memory.data(), 5000), Error);
}

// Offsets of the fields a hostile peer might scribble on (128 bytes apart).
constexpr std::size_t kHeadOffset = 128;
constexpr std::size_t kTailOffset = 256;
std::byte* data_of(const SharedRing& ring) {
  return ring.bytes() + (ring.size() - 4096);
}

TEST(ShmRing, CorruptedLengthFieldIsReportedNotFollowed) {
  SharedRing ring(4096);
  ShmRing producer = ring.producer();
  ShmRing consumer = ring.consumer();
  ASSERT_TRUE(producer.send(message_for(1, 16)));
  std::uint32_t huge = 0x7fffffff;
  std::memcpy(data_of(ring), &huge, 4);  // the record's length
  EXPECT_THROW(consumer.consume(1s), ProtocolError);
}

TEST(ShmRing, CorruptedRecordKindIsReported) {
  SharedRing ring(4096);
  ShmRing producer = ring.producer();
  ShmRing consumer = ring.consumer();
  ASSERT_TRUE(producer.send(message_for(1, 16)));
  std::uint32_t kind = 99;
  std::memcpy(data_of(ring) + 4, &kind, 4);
  EXPECT_THROW(consumer.consume(1s), ProtocolError);
}

TEST(ShmRing, WritePositionBeyondTheRingIsReported) {
  SharedRing ring(4096);
  ShmRing producer = ring.producer();
  ShmRing consumer = ring.consumer();
  std::uint64_t head = 1 << 20;
  std::memcpy(ring.bytes() + kHeadOffset, &head, 8);
  EXPECT_THROW(consumer.consume(1s), ProtocolError);
}

TEST(ShmRing, ReadPositionAheadOfWritePositionIsReported) {
  SharedRing ring(4096);
  ShmRing producer = ring.producer();
  ShmRing consumer = ring.consumer();
  std::uint64_t tail = 1 << 20;
  std::memcpy(ring.bytes() + kTailOffset, &tail, 8);
  // The producer reads the tail again once its last copy says the ring is
  // full, so the forged value is met within one ring's worth of messages.
  EXPECT_THROW(
      {
        for (int i = 0; i < 4096 / 16 + 1; ++i) producer.send(message_for(1, 8), 0s);
      },
      ProtocolError);
}

}  // namespace
}  // namespace conduit::ipc
