// Specification of conduit::ipc::SysVMessageQueue (sysv_message_queue.hpp):
// keys, ownership and persistence, typed messages and how a receive selects
// them, blocking, non-blocking and timed operations, limits and their
// errors (also raised inside an IPC namespace of the test's own),
// permissions, and real processes on both ends.
#include "conduit/ipc/sysv_message_queue.hpp"

#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <sys/msg.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "conduit/error.hpp"
#include "conduit/ipc/shared_memory.hpp"  // key_from_path
#include "messages.hpp"
#include "queue_test_support.hpp"
#include "test_support.hpp"

namespace conduit::ipc {
namespace {

using namespace std::chrono_literals;
using conduit::testing::Bytes;
using conduit::testing::bytes_of;
using conduit::testing::describe;
using conduit::testing::exited_cleanly;
using conduit::testing::fork_child;
using conduit::testing::make_message;
using conduit::testing::run_in_own_ipc_namespace;
using conduit::testing::skipped_for_lack_of_namespace;
using conduit::testing::sysv_queue_exists;
using conduit::testing::TempDir;
using conduit::testing::unused_sysv_key;
using conduit::testing::wait_child;
using Clock = std::chrono::steady_clock;

std::string text_of(const SysVMessageBuffer& buffer, std::size_t size) {
  return std::string(reinterpret_cast<const char*>(buffer.body().data()), size);
}

Bytes body_of(const SysVMessageBuffer& buffer, std::size_t size) {
  auto body = buffer.body().first(size);
  return Bytes(body.begin(), body.end());
}

// Fills the queue with type-1 messages of at most kernel.msgmax bytes until
// no 1-byte message fits.
void fill(SysVMessageQueue& queue) {
  auto largest = static_cast<std::size_t>(SysVQueueLimits::current().msgmax);
  while (queue.try_send(1, Bytes(largest))) {
  }
  while (queue.try_send(1, Bytes(1))) {
  }
}

// Every test's keyed queues must be gone when it ends.
class SysVMessageQueueTest : public ::testing::Test {
 protected:
  key_t key() {
    keys_.push_back(unused_sysv_key());
    return keys_.back();
  }
  void TearDown() override {
    for (key_t each : keys_) {
      EXPECT_FALSE(sysv_queue_exists(each)) << conduit::testing::hex_key(each) << " was left";
      int id = ::msgget(each, 0);
      if (id >= 0) ::msgctl(id, IPC_RMID, nullptr);
    }
  }

 private:
  std::vector<key_t> keys_;
};

// ---- keys, ownership, persistence ------------------------------------------------------------

TEST_F(SysVMessageQueueTest, CreatedQueueIsFoundByItsKey) {
  key_t queue_key = key();
  SysVMessageQueue queue = SysVMessageQueue::create(queue_key);
  EXPECT_TRUE(queue.owner());
  EXPECT_EQ(queue.key(), queue_key);
  EXPECT_EQ(::msgget(queue_key, 0), queue.id());
  EXPECT_EQ(SysVMessageQueue::open(queue_key).id(), queue.id());
}

TEST_F(SysVMessageQueueTest, CreateAppliesExactlyTheMode) {
  mode_t saved = ::umask(077);
  SysVMessageQueue queue = SysVMessageQueue::create(key(), 0644);
  ::umask(saved);
  EXPECT_EQ(queue.status().mode, 0644u);
  EXPECT_EQ(queue.status().owner_uid, ::geteuid());
}

TEST_F(SysVMessageQueueTest, OwnerRemovesTheQueueOnDestruction) {
  key_t queue_key = key();
  { SysVMessageQueue queue = SysVMessageQueue::create(queue_key); }
  EXPECT_FALSE(sysv_queue_exists(queue_key));
}

TEST_F(SysVMessageQueueTest, CreateRefusesATakenKeyAndSaysHowToRemoveTheQueue) {
  key_t queue_key = key();
  SysVMessageQueue first = SysVMessageQueue::create(queue_key);
  try {
    SysVMessageQueue::create(queue_key);
    FAIL() << "created a second queue for the same key";
  } catch (const SystemError& error) {
    EXPECT_EQ(error.code(), EEXIST);
    std::string message = error.what();
    EXPECT_CONTAINS(message, conduit::testing::hex_key(queue_key));
    EXPECT_CONTAINS(message, "ipcrm -q " + std::to_string(first.id()));
    EXPECT_CONTAINS(message, "queues persist until removed");
  }
}

TEST_F(SysVMessageQueueTest, OpeningAMissingKeyThrowsENOENT) {
  key_t missing = key();
  try {
    SysVMessageQueue::open(missing);
    FAIL() << "opened a queue that does not exist";
  } catch (const SystemError& error) {
    EXPECT_EQ(error.code(), ENOENT);
    EXPECT_CONTAINS(std::string(error.what()), conduit::testing::hex_key(missing));
  }
}

TEST_F(SysVMessageQueueTest, OpenedQueueIsNotRemovedWhenTheOpenerGoes) {
  key_t queue_key = key();
  SysVMessageQueue owner = SysVMessageQueue::create(queue_key);
  { SysVMessageQueue opened = SysVMessageQueue::open(queue_key); }
  EXPECT_TRUE(sysv_queue_exists(queue_key));
}

TEST_F(SysVMessageQueueTest, MessagesOutliveTheProcessThatWroteThemWhenReleased) {
  key_t queue_key = key();
  pid_t writer = fork_child([&] {
    SysVMessageQueue queue = SysVMessageQueue::create(queue_key);
    for (int i = 1; i <= 3; ++i) queue.send(i, make_message(i, 50 * i));
    queue.release();
  });
  ASSERT_TRUE(exited_cleanly(wait_child(writer)));
  ASSERT_TRUE(sysv_queue_exists(queue_key));
  SysVMessageQueue reader = SysVMessageQueue::open(queue_key);
  EXPECT_EQ(reader.status().messages, 3u);
  SysVMessageBuffer buffer(200);
  for (int i = 1; i <= 3; ++i) {
    std::size_t size = reader.receive(buffer);
    EXPECT_EQ(buffer.type(), i);
    EXPECT_EQ(body_of(buffer, size), make_message(i, 50 * i));
  }
  reader.remove();
  EXPECT_FALSE(sysv_queue_exists(queue_key));
  reader.remove();  // already gone: nothing to do
}

TEST_F(SysVMessageQueueTest, AForkedChildDoesNotRemoveItsParentsQueue) {
  key_t queue_key = key();
  SysVMessageQueue queue = SysVMessageQueue::create(queue_key);
  pid_t child = fork_child([&] { SysVMessageQueue inherited = std::move(queue); });
  ASSERT_TRUE(exited_cleanly(wait_child(child)));
  EXPECT_TRUE(sysv_queue_exists(queue_key));
}

TEST(SysVMessageQueuePrivate, PrivateQueuesAreAlwaysNewAndReachedByIdInAChild) {
  SysVMessageQueue one = SysVMessageQueue::create(IPC_PRIVATE);
  SysVMessageQueue two = SysVMessageQueue::create(IPC_PRIVATE);
  EXPECT_NE(one.id(), two.id());
  int id = one.id();
  pid_t child =
      fork_child([id] { SysVMessageQueue::attach(id).send(7, bytes_of("hello parent")); });
  SysVMessageBuffer buffer(64);
  auto size = one.receive_for(buffer, 0, 10s);
  ASSERT_TRUE(size);
  EXPECT_EQ(buffer.type(), 7);
  EXPECT_EQ(text_of(buffer, *size), "hello parent");
  EXPECT_TRUE(exited_cleanly(wait_child(child)));
  int removed_id = two.id();
  two = SysVMessageQueue();
  msqid_ds info{};
  EXPECT_EQ(::msgctl(removed_id, IPC_STAT, &info), -1);
}

TEST(SysVMessageQueuePrivate, AttachingAnUnknownIdThrows) {
  SysVMessageQueue queue = SysVMessageQueue::create(IPC_PRIVATE);
  int id = queue.id();
  queue.remove();
  EXPECT_THROW(SysVMessageQueue::attach(id), SystemError);
}

TEST(SysVMessageQueueKeys, KeysAreDecimalOrHexNumbers) {
  EXPECT_EQ(parse_sysv_key("4660"), key_t{0x1234});
  EXPECT_EQ(parse_sysv_key("0x1234"), key_t{0x1234});
  EXPECT_EQ(parse_sysv_key("0XfFfFfFfF"), static_cast<key_t>(0xffffffffu));
  for (const char* bad : {"", "0", "0x", "0x100000000", "4294967296", "-1", "12ab", "0x12g"})
    EXPECT_FALSE(parse_sysv_key(bad)) << bad;
}

TEST(SysVMessageQueueKeys, PathKeysComeFromFtok) {
  TempDir dir;
  EXPECT_EQ(key_from_path(dir.path()), ::ftok(dir.path().c_str(), 'c'));
}

// ---- typed messages --------------------------------------------------------------------------

class SysVMessageQueueTypes : public ::testing::Test {
 protected:
  void SetUp() override {
    // Sent in this order: (type, label).
    for (auto [type, label] : std::vector<std::pair<long, std::string>>{
             {3, "3a"}, {1, "1a"}, {5, "5a"}, {2, "2a"}, {1, "1b"}, {3, "3b"}})
      queue_.send(type, bytes_of(label));
  }
  std::string next(long type) {
    auto size = queue_.try_receive(buffer_, type);
    if (!size) return "none";
    return text_of(buffer_, *size);
  }
  SysVMessageQueue queue_ = SysVMessageQueue::create(IPC_PRIVATE);
  SysVMessageBuffer buffer_{64};
};

TEST_F(SysVMessageQueueTypes, TypeZeroTakesTheOldestMessageOfAnyType) {
  EXPECT_EQ(next(0), "3a");
  EXPECT_EQ(next(0), "1a");
  EXPECT_EQ(next(0), "5a");
}

TEST_F(SysVMessageQueueTypes, PositiveTypeTakesTheOldestMessageOfThatType) {
  EXPECT_EQ(next(1), "1a");
  EXPECT_EQ(next(1), "1b");
  EXPECT_EQ(next(1), "none");
  EXPECT_EQ(next(3), "3a");
  EXPECT_EQ(buffer_.type(), 3);
}

TEST_F(SysVMessageQueueTypes, NegativeTypeTakesTheLowestTypeUpToItsMagnitude) {
  EXPECT_EQ(next(-3), "1a");
  EXPECT_EQ(next(-3), "1b");
  EXPECT_EQ(next(-3), "2a");
  EXPECT_EQ(next(-3), "3a");
  EXPECT_EQ(next(-3), "3b");
  EXPECT_EQ(next(-3), "none");
  EXPECT_EQ(next(-10), "5a");
}

TEST_F(SysVMessageQueueTypes, TypesBelowOneCannotBeSent) {
  try {
    queue_.send(0, bytes_of("x"));
    FAIL() << "sent a message of type 0";
  } catch (const Error& error) {
    EXPECT_CONTAINS(std::string(error.what()), "types start at 1");
  }
}

TEST_F(SysVMessageQueueTypes, DiscardNextRemovesTheSelectedMessageWithoutReadingIt) {
  EXPECT_EQ(queue_.discard_next(5), 5);
  EXPECT_EQ(queue_.discard_next(5), std::nullopt);
  EXPECT_EQ(queue_.status().messages, 5u);
}

// ---- sizes and limits --------------------------------------------------------------------------

TEST_F(SysVMessageQueueTest, MessagesOfEverySizeUpToMsgmaxCrossProcesses) {
  SysVQueueLimits limits = SysVQueueLimits::current();
  ASSERT_GT(limits.msgmax, 0);
  auto max = static_cast<std::size_t>(limits.msgmax);
  std::vector<std::size_t> sizes = {0, 1, 2, 7, 8, 9, 100, 1000, 4096, max - 1, max};
  key_t queue_key = key();
  SysVMessageQueue queue = SysVMessageQueue::create(queue_key);
  pid_t child = fork_child([&] {
    SysVMessageQueue writer = SysVMessageQueue::open(queue_key, QueueAccess::send_only);
    for (std::size_t size : sizes) writer.send(1, make_message(size, size));
  });
  SysVMessageBuffer buffer(max);
  for (std::size_t size : sizes) {
    auto got = queue.receive_for(buffer, 1, 10s);
    ASSERT_TRUE(got) << size;
    ASSERT_EQ(body_of(buffer, *got), make_message(size, size));
  }
  EXPECT_TRUE(exited_cleanly(wait_child(child)));
}

TEST(SysVMessageQueueLimits, MessageAboveMsgmaxIsRefusedNamingTheLimitAndItsValue) {
  SysVQueueLimits limits = SysVQueueLimits::current();
  ASSERT_GT(limits.msgmax, 0);
  SysVMessageQueue queue = SysVMessageQueue::create(IPC_PRIVATE);
  try {
    queue.send(1, Bytes(static_cast<std::size_t>(limits.msgmax) + 1));
    FAIL() << "sent a message above kernel.msgmax";
  } catch (const MessageTooLarge& error) {
    std::string message = error.what();
    EXPECT_CONTAINS(message, "kernel.msgmax = " + std::to_string(limits.msgmax));
    EXPECT_CONTAINS(message, "/proc/sys/kernel/msgmax");
    EXPECT_CONTAINS(message, "sysctl -w kernel.msgmax=");
  }
  EXPECT_EQ(queue.status().messages, 0u);
}

TEST(SysVMessageQueueLimits, ReceiveIntoASmallerBufferFailsWithE2BIGAndTheMessageStays) {
  SysVMessageQueue queue = SysVMessageQueue::create(IPC_PRIVATE);
  queue.send(4, make_message(1, 300));
  SysVMessageBuffer small(100);
  try {
    queue.receive(small, 0);
    FAIL() << "a 300-byte message was received into 100 bytes";
  } catch (const SystemError& error) {
    EXPECT_EQ(error.code(), E2BIG);
    EXPECT_CONTAINS(std::string(error.what()), "larger than the receive buffer of 100 bytes");
    EXPECT_CONTAINS(std::string(error.what()), "stays queued");
  }
  EXPECT_EQ(queue.status().messages, 1u);
  SysVMessageBuffer enough(300);
  std::size_t size = queue.receive(enough, 0);
  EXPECT_EQ(body_of(enough, size), make_message(1, 300));
}

TEST(SysVMessageQueueLimits, TheQueueHoldsAtMostMsgmnbBytes) {
  SysVQueueLimits limits = SysVQueueLimits::current();
  SysVMessageQueue queue = SysVMessageQueue::create(IPC_PRIVATE);
  EXPECT_EQ(queue.status().max_bytes, static_cast<std::size_t>(limits.msgmnb));
  std::size_t chunk = static_cast<std::size_t>(limits.msgmnb) / 4;
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(queue.try_send(1, Bytes(chunk)));
  EXPECT_FALSE(queue.try_send(1, Bytes(1)));
  EXPECT_EQ(queue.status().bytes, 4 * chunk);
}

TEST(SysVMessageQueueLimits, ReportsTheCurrentLimits) {
  SysVQueueLimits limits = SysVQueueLimits::current();
  EXPECT_GT(limits.msgmax, 0);
  EXPECT_GT(limits.msgmnb, 0);
  EXPECT_GT(limits.msgmni, 0);
}

TEST(SysVMessageQueueOwnNamespace, RaisedLimitsCarryBigMessagesAcrossProcesses) {
  long host_msgmax = SysVQueueLimits::current().msgmax;
  int status =
      run_in_own_ipc_namespace({{"kernel/msgmax", "65536"}, {"kernel/msgmnb", "131072"}}, [] {
        SysVMessageQueue queue = SysVMessageQueue::create(0x0c0d0001);
        EXPECT_EQ(queue.status().max_bytes, 131072u);
        pid_t writer = fork_child([] {
          SysVMessageQueue out = SysVMessageQueue::open(0x0c0d0001, QueueAccess::send_only);
          for (int i = 0; i < 6; ++i) out.send(1 + i % 2, make_message(i, 65536 - i));
        });
        SysVMessageBuffer buffer(65536);
        for (int i = 0; i < 6; ++i) {
          auto size = queue.receive_for(buffer, 0, 10s);
          ASSERT_TRUE(size);
          EXPECT_EQ(buffer.type(), 1 + i % 2);
          ASSERT_EQ(body_of(buffer, *size), make_message(i, 65536 - i));
        }
        EXPECT_TRUE(exited_cleanly(wait_child(writer)));
      });
  if (skipped_for_lack_of_namespace(status)) GTEST_SKIP() << "no IPC namespace of our own here";
  EXPECT_TRUE(exited_cleanly(status)) << describe(status);
  EXPECT_EQ(SysVQueueLimits::current().msgmax, host_msgmax);
}

TEST(SysVMessageQueueOwnNamespace, MessageThatCanNeverFitIsRefusedInsteadOfWaitingForever) {
  int status = run_in_own_ipc_namespace({{"kernel/msgmax", "65536"}}, [] {
    SysVMessageQueue queue = SysVMessageQueue::create(IPC_PRIVATE);  // msg_qbytes 16384
    auto started = Clock::now();
    try {
      queue.send(1, Bytes(20000));
      ADD_FAILURE() << "sent 20000 bytes into a queue of 16384";
    } catch (const MessageTooLarge& error) {
      EXPECT_CONTAINS(std::string(error.what()), "can never fit");
      EXPECT_CONTAINS(std::string(error.what()), "kernel.msgmnb = 16384");
    }
    EXPECT_LT(Clock::now() - started, 5s);
  });
  if (skipped_for_lack_of_namespace(status)) GTEST_SKIP() << "no IPC namespace of our own here";
  EXPECT_TRUE(exited_cleanly(status)) << describe(status);
}

TEST(SysVMessageQueueOwnNamespace, MsgmniErrorNamesTheLimit) {
  int status = run_in_own_ipc_namespace({{"kernel/msgmni", "1"}}, [] {
    SysVMessageQueue one = SysVMessageQueue::create(IPC_PRIVATE);
    try {
      SysVMessageQueue::create(IPC_PRIVATE);
      ADD_FAILURE() << "created a second queue with kernel.msgmni = 1";
    } catch (const SystemError& error) {
      EXPECT_EQ(error.code(), ENOSPC);
      EXPECT_CONTAINS(std::string(error.what()), "kernel.msgmni = 1");
    }
  });
  if (skipped_for_lack_of_namespace(status)) GTEST_SKIP() << "no IPC namespace of our own here";
  EXPECT_TRUE(exited_cleanly(status)) << describe(status);
}

// ---- non-blocking, timed, blocking --------------------------------------------------------------

TEST(SysVMessageQueueWaiting, TryReceiveOnAnEmptyQueueReturnsNothingAtOnce) {
  SysVMessageQueue queue = SysVMessageQueue::create(IPC_PRIVATE);
  SysVMessageBuffer buffer(16);
  auto started = Clock::now();
  EXPECT_FALSE(queue.try_receive(buffer));
  EXPECT_LT(Clock::now() - started, 1s);
}

TEST(SysVMessageQueueWaiting, ReceiveForTimesOutAfterAboutTheTimeout) {
  SysVMessageQueue queue = SysVMessageQueue::create(IPC_PRIVATE);
  SysVMessageBuffer buffer(16);
  auto started = Clock::now();
  EXPECT_FALSE(queue.receive_for(buffer, 0, 150ms));
  auto waited = Clock::now() - started;
  EXPECT_GE(waited, 150ms);
  EXPECT_LT(waited, 5s);
}

TEST(SysVMessageQueueWaiting, ReceiveForReturnsAMessageSentDuringTheWait) {
  SysVMessageQueue queue = SysVMessageQueue::create(IPC_PRIVATE);
  int id = queue.id();
  std::thread sender([id] {
    std::this_thread::sleep_for(50ms);
    SysVMessageQueue::attach(id).send(2, bytes_of("late"));
  });
  SysVMessageBuffer buffer(16);
  auto size = queue.receive_for(buffer, 2, 10s);
  sender.join();
  ASSERT_TRUE(size);
  EXPECT_EQ(text_of(buffer, *size), "late");
}

TEST(SysVMessageQueueWaiting, SendForTimesOutWhileTheQueueStaysFullAndSucceedsOnceThereIsRoom) {
  SysVMessageQueue queue = SysVMessageQueue::create(IPC_PRIVATE);
  fill(queue);
  EXPECT_FALSE(queue.try_send(1, Bytes(1)));
  auto started = Clock::now();
  EXPECT_FALSE(queue.send_for(1, Bytes(1), 150ms));
  EXPECT_GE(Clock::now() - started, 150ms);
  int id = queue.id();
  std::thread reader([id] {
    std::this_thread::sleep_for(50ms);
    SysVMessageBuffer buffer(SysVQueueLimits::current().msgmax);
    SysVMessageQueue::attach(id).receive(buffer);
  });
  EXPECT_TRUE(queue.send_for(1, bytes_of("fits now"), 10s));
  reader.join();
}

TEST(SysVMessageQueueWaiting, BlockedReceiveFailsWithEIDRMWhenTheQueueIsRemoved) {
  SysVMessageQueue queue = SysVMessageQueue::create(IPC_PRIVATE);
  int id = queue.id();
  auto result = std::async(std::launch::async, [id] {
    SysVMessageBuffer buffer(16);
    try {
      SysVMessageQueue::attach(id).receive(buffer);
    } catch (const SystemError& error) {
      return error.code();
    }
    return 0;
  });
  std::this_thread::sleep_for(50ms);
  queue.remove();
  ASSERT_EQ(result.wait_for(10s), std::future_status::ready);
  int code = result.get();
  EXPECT_TRUE(code == EIDRM || code == EINVAL) << code;
}

std::atomic<int> interruptions{0};
void count_sysv_interruption(int) {
  ++interruptions;
}

// msgrcv and msgsnd are never restarted after a signal handler, whatever
// SA_RESTART says: the queue retries them.
TEST(SysVMessageQueueWaiting, BlockingReceiveAndSendSurviveSignals) {
  struct sigaction action {
  }, saved{};
  action.sa_handler = count_sysv_interruption;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGUSR1, &action, &saved);
  interruptions = 0;
  SysVMessageQueue queue = SysVMessageQueue::create(IPC_PRIVATE);
  std::promise<std::string> received;
  std::thread receiver([&] {
    try {
      SysVMessageBuffer buffer(64);
      std::size_t size = queue.receive(buffer, 9);
      received.set_value(text_of(buffer, size));
    } catch (...) {
      received.set_exception(std::current_exception());
    }
  });
  for (int i = 0; i < 20; ++i) {
    ::pthread_kill(receiver.native_handle(), SIGUSR1);
    std::this_thread::sleep_for(5ms);
  }
  fill(queue);
  std::promise<void> sent;
  std::thread sender([&] {
    try {
      queue.send(9, bytes_of("through"));
      sent.set_value();
    } catch (...) {
      sent.set_exception(std::current_exception());
    }
  });
  for (int i = 0; i < 20; ++i) {
    ::pthread_kill(sender.native_handle(), SIGUSR1);
    std::this_thread::sleep_for(5ms);
  }
  SysVMessageBuffer big(SysVQueueLimits::current().msgmax);
  queue.receive(big, 1);  // makes room
  auto sent_future = sent.get_future();
  auto received_future = received.get_future();
  bool done = sent_future.wait_for(10s) == std::future_status::ready &&
              received_future.wait_for(10s) == std::future_status::ready;
  if (!done) queue.remove();  // unblocks both threads
  sender.join();
  receiver.join();
  ::sigaction(SIGUSR1, &saved, nullptr);
  ASSERT_TRUE(done);
  sent_future.get();
  EXPECT_EQ(received_future.get(), "through");
  EXPECT_GE(interruptions.load(), 2);
}

// ---- real processes on both ends ------------------------------------------------------------

TEST_F(SysVMessageQueueTest, ThousandsOfMessagesCrossInOrderWhileTheSenderWaitsForRoom) {
  key_t queue_key = key();
  SysVMessageQueue queue = SysVMessageQueue::create(queue_key);
  constexpr int kCount = 5000;
  pid_t child = fork_child([&] {
    SysVMessageQueue writer = SysVMessageQueue::open(queue_key, QueueAccess::send_only);
    for (int i = 0; i < kCount; ++i) writer.send(1, make_message(i, (i * 37) % 1000));
  });
  SysVMessageBuffer buffer(1000);
  for (int i = 0; i < kCount; ++i) {
    auto size = queue.receive_for(buffer, 1, 10s);
    ASSERT_TRUE(size) << "message " << i << " did not arrive";
    ASSERT_EQ(body_of(buffer, *size), make_message(i, (i * 37) % 1000)) << "message " << i;
  }
  EXPECT_TRUE(exited_cleanly(wait_child(child)));
}

TEST_F(SysVMessageQueueTest, TwoProcessesTalkBothWaysOverOneQueueByType) {
  key_t queue_key = key();
  SysVMessageQueue queue = SysVMessageQueue::create(queue_key);
  pid_t child = fork_child([&] {
    SysVMessageQueue peer = SysVMessageQueue::open(queue_key);
    SysVMessageBuffer buffer(600);
    for (int i = 0; i < 200; ++i) {
      auto size = peer.receive_for(buffer, 1, 10s);  // requests: type 1
      ASSERT_TRUE(size);
      buffer.set_type(2);  // answers: type 2
      peer.send(buffer, *size);
    }
  });
  SysVMessageBuffer buffer(600);
  for (int i = 0; i < 200; ++i) {
    queue.send(1, make_message(i, i * 3));
    auto size = queue.receive_for(buffer, 2, 10s);
    ASSERT_TRUE(size) << i;
    ASSERT_EQ(body_of(buffer, *size), make_message(i, i * 3));
  }
  EXPECT_TRUE(exited_cleanly(wait_child(child)));
}

// ---- permissions ------------------------------------------------------------------------------

TEST_F(SysVMessageQueueTest, ModeDecidesWhoMaySendAndReceive) {
  key_t locked_key = key();
  key_t writable_key = key();
  SysVMessageQueue locked = SysVMessageQueue::create(locked_key, 0600);
  SysVMessageQueue writable = SysVMessageQueue::create(writable_key, 0602);
  int locked_id = locked.id();
  pid_t child = fork_child([&] {
    ASSERT_TRUE(conduit::testing::become_nobody());  // root passes every check
    try {
      SysVMessageQueue::open(locked_key, QueueAccess::send_only);
      ADD_FAILURE() << "nobody opened a 0600 queue of root's";
    } catch (const SystemError& error) {
      EXPECT_EQ(error.code(), EACCES);
      EXPECT_CONTAINS(std::string(error.what()), "do not grant this user sending");
    }
    try {  // by id, the check comes with the send
      SysVMessageQueue::attach(locked_id).send(1, bytes_of("x"));
      ADD_FAILURE() << "nobody sent on a 0600 queue of root's";
    } catch (const SystemError& error) {
      EXPECT_EQ(error.code(), EACCES);
    }
    SysVMessageQueue::open(writable_key, QueueAccess::send_only).send(3, bytes_of("from nobody"));
    EXPECT_THROW(SysVMessageQueue::open(writable_key, QueueAccess::receive_only), SystemError);
    try {
      SysVMessageQueue::attach(locked_id).remove();
      ADD_FAILURE() << "nobody removed root's queue";
    } catch (const SystemError& error) {
      EXPECT_EQ(error.code(), EPERM);
    }
  });
  int status = wait_child(child);
  EXPECT_TRUE(exited_cleanly(status)) << describe(status);
  SysVMessageBuffer buffer(64);
  auto size = writable.try_receive(buffer);
  ASSERT_TRUE(size);
  EXPECT_EQ(text_of(buffer, *size), "from nobody");
  EXPECT_EQ(writable.status().last_sender, child);
}

}  // namespace
}  // namespace conduit::ipc
