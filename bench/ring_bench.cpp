// ShmRing's hot paths in isolation, on one ring in anonymous memory:
//   - push then pop in one thread, through the copying path (send/receive)
//     and the zero-copy path (loan+commit, consume+release), one message at
//     a time and in batches of 32 (the ring then fills and drains instead of
//     holding at most one message);
//   - one-way throughput of 64-byte messages from a producer thread to a
//     consumer thread, through the path a shm: Channel takes (send, consume).
// Every message carries a sequence number in its first and last 8 bytes,
// checked on arrival, so a lost, repeated or truncated message fails the
// benchmark instead of speeding it up.
//
//   build/bench/conduit_bench --benchmark_filter=Ring
#include <benchmark/benchmark.h>
#include <sys/mman.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <exception>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "conduit/error.hpp"
#include "conduit/ipc/shared_memory.hpp"
#include "conduit/ipc/shm_ring.hpp"

namespace {

using conduit::ipc::Mapping;
using conduit::ipc::Received;
using conduit::ipc::ReceiveStatus;
using conduit::ipc::ShmRing;

// What a shm: channel allocates per direction unless its URI sets max=. It
// holds a batch of 32 messages of the largest size measured, 64 KiB, plus
// the padding record a wrap may add.
constexpr std::size_t kRingCapacity = 4 << 20;

// Maps memory for a ring of `capacity` bytes and formats it. The memory is
// anonymous, so no name outlives the process, and populated up front, so the
// timed loops do not pay for its first page faults.
Mapping formatted_ring(std::size_t capacity) {
  const std::size_t size = ShmRing::footprint(capacity);
  void* memory = ::mmap(nullptr, size, PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (memory == MAP_FAILED) throw conduit::SystemError("mmap", "anonymous ring memory", errno);
  Mapping mapping(memory, size);
  ShmRing::format(mapping.data(), capacity);
  return mapping;
}

// One ring with its producer and its consumer both attached in this process.
// Members are destroyed in reverse order: both sides close before the memory
// is unmapped.
struct LocalRing {
  explicit LocalRing(std::size_t capacity)
      : memory(formatted_ring(capacity)),
        producer(ShmRing::attach(memory.data(), memory.size(), ShmRing::Role::producer)),
        consumer(ShmRing::attach(memory.data(), memory.size(), ShmRing::Role::consumer)) {}

  Mapping memory;
  ShmRing producer;
  ShmRing consumer;
};

// Writes `sequence` into the first and the last 8 bytes of `message` (the
// same bytes when it is 8 bytes long). REQUIRES: message.size() >= 8.
void stamp(std::span<std::byte> message, std::uint64_t sequence) {
  std::memcpy(message.data(), &sequence, sizeof sequence);
  std::memcpy(message.data() + message.size() - sizeof sequence, &sequence, sizeof sequence);
}

// True when `message` is `size` bytes long and stamp()ed with `sequence`.
bool stamped(std::span<const std::byte> message, std::size_t size, std::uint64_t sequence) {
  if (message.size() != size) return false;
  std::uint64_t first;
  std::uint64_t last;
  std::memcpy(&first, message.data(), sizeof first);
  std::memcpy(&last, message.data() + size - sizeof last, sizeof last);
  return first == sequence && last == sequence;
}

enum class Path {
  copy,       // send() copies the message in, receive() copies it out
  zero_copy,  // written and read in place; only the stamps touch the payload
};

// The rings wait forever (the default timeout) as a Channel does: the
// single-thread loops below never let the ring run full or empty when they
// push or pop, so no call can block.
template <Path path>
void push(ShmRing& producer, std::vector<std::byte>& message, std::uint64_t sequence) {
  if constexpr (path == Path::copy) {
    stamp(message, sequence);
    producer.send(message);
  } else {
    stamp(producer.loan(message.size()).value(), sequence);
    producer.commit(message.size());
  }
}

template <Path path>
bool pop(ShmRing& consumer, std::vector<std::byte>& buffer, std::size_t size,
         std::uint64_t sequence) {
  if constexpr (path == Path::copy) {
    return consumer.receive(buffer) == ReceiveStatus::message && stamped(buffer, size, sequence);
  } else {
    Received received = consumer.consume();
    const bool intact = received && stamped(received.message, size, sequence);
    consumer.release();
    return intact;
  }
}

// Pushes `batch` messages of state.range(0) bytes, then pops them.
template <Path path, int batch>
void push_then_pop(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  LocalRing ring(kRingCapacity);
  std::vector<std::byte> message(size);
  std::vector<std::byte> received;
  std::uint64_t sent = 0;
  std::uint64_t expected = 0;
  for (auto _ : state) {
    for (int i = 0; i < batch; ++i) push<path>(ring.producer, message, sent++);
    for (int i = 0; i < batch; ++i) {
      if (!pop<path>(ring.consumer, received, size, expected++)) {
        state.SkipWithError(("message " + std::to_string(expected - 1) +
                             " arrived with the wrong length or sequence number")
                                .c_str());
        return;
      }
    }
  }
  state.SetItemsProcessed(state.iterations() * batch);
  state.SetBytesProcessed(state.iterations() * batch * static_cast<int64_t>(size));
}

void BM_RingSendReceive(benchmark::State& state) {
  push_then_pop<Path::copy, 1>(state);
}
void BM_RingLoanConsume(benchmark::State& state) {
  push_then_pop<Path::zero_copy, 1>(state);
}
void BM_RingSendReceiveBatch32(benchmark::State& state) {
  push_then_pop<Path::copy, 32>(state);
}
void BM_RingLoanConsumeBatch32(benchmark::State& state) {
  push_then_pop<Path::zero_copy, 32>(state);
}

// A producer thread sends state.range(0)-byte messages as fast as the ring
// takes them; each iteration consumes one here and checks its sequence
// number. The producer starts with the timed loop, so the ring does not
// start full, and stops with PeerGone once the consumer closes.
void BM_RingSpscSendConsume(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  LocalRing ring(kRingCapacity);
  std::atomic<bool> started{false};
  std::exception_ptr producer_failure;
  std::thread producer([&] {
    std::vector<std::byte> message(size);
    while (!started.load(std::memory_order_acquire)) std::this_thread::yield();
    try {
      for (std::uint64_t sequence = 0;; ++sequence) {
        stamp(message, sequence);
        ring.producer.send(message);
      }
    } catch (const conduit::PeerGone&) {
      // The consumer closed: the run is over.
    } catch (...) {
      producer_failure = std::current_exception();
    }
    ring.producer.close();  // a consumer still waiting sees `closed`
  });

  std::uint64_t expected = 0;
  bool producer_stopped = false;
  started.store(true, std::memory_order_release);
  try {
    for (auto _ : state) {
      Received received = ring.consumer.consume();
      if (!received) {
        producer_stopped = true;
        break;
      }
      if (!stamped(received.message, size, expected)) {
        state.SkipWithError(("expected message " + std::to_string(expected) +
                             ", got another (lost, repeated or truncated)")
                                .c_str());
        break;
      }
      ++expected;
    }
  } catch (const conduit::Error& error) {
    state.SkipWithError(error.what());
  }
  ring.consumer.close();
  producer.join();

  if (producer_failure) {
    try {
      std::rethrow_exception(producer_failure);
    } catch (const std::exception& error) {
      state.SkipWithError((std::string("producer: ") + error.what()).c_str());
    }
  } else if (producer_stopped) {
    state.SkipWithError("the producer closed the ring before the run ended");
  }
  state.SetItemsProcessed(static_cast<int64_t>(expected));
  state.SetBytesProcessed(static_cast<int64_t>(expected * size));
}

void message_sizes(benchmark::internal::Benchmark* benchmark) {
  for (int64_t size : {8, 64, 512, 4096, 65536}) benchmark->Arg(size);
}

BENCHMARK(BM_RingSendReceive)->Apply(message_sizes);
BENCHMARK(BM_RingLoanConsume)->Apply(message_sizes);
BENCHMARK(BM_RingSendReceiveBatch32)->Apply(message_sizes);
BENCHMARK(BM_RingLoanConsumeBatch32)->Apply(message_sizes);
BENCHMARK(BM_RingSpscSendConsume)->Arg(64)->UseRealTime();

}  // namespace
