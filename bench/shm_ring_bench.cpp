// ShmRing against the machine's limits, measured in one run:
//   - 64-byte round trip between two processes pinned to different CPUs:
//     raw busy-poll on a shared cache line vs ShmRing spinning, and raw futex
//     ping-pong vs ShmRing sleeping at once (spin = 0);
//   - one-way throughput of 1 MiB messages (copied in and out) vs
//     single-process memcpy bandwidth and vs the raw copy between two
//     processes (ordinary, and with the streaming stores ShmRing uses);
//   - round-trip latency of the zero-copy loan path from 64 B to 1 MiB.
// Prints each figure and the ratio the design targets refer to.
//
//   build/bench/shm_ring_bench [--rounds N]
#include <linux/futex.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <span>
#include <vector>

#include "conduit/ipc/shm_ring.hpp"

namespace {

using conduit::ipc::ShmRing;
using conduit::ipc::ShmRingOptions;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

int rounds = 20000;

// CLOCK_MONOTONIC is one clock for every process, so a start taken in one
// and an end taken in the other make one interval.
double seconds_now() {
  return std::chrono::duration<double>(Clock::now().time_since_epoch()).count();
}

void pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  sched_setaffinity(0, sizeof set, &set);
}

int usable_cpus() {
  cpu_set_t set;
  sched_getaffinity(0, sizeof set, &set);
  return CPU_COUNT(&set);
}

void* shared_memory(std::size_t size) {
  void* memory = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) {
    perror("mmap");
    std::exit(1);
  }
  return memory;
}

// Runs `peer` in a child pinned to CPU 1 and `self` here on CPU 0.
void two_processes(const std::function<void()>& peer, const std::function<void()>& self) {
  pid_t child = fork();
  if (child == 0) {
    pin(1);
    peer();
    _exit(0);
  }
  pin(0);
  self();
  int status;
  waitpid(child, &status, 0);
}

double median_us(std::vector<double>& samples) {
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

// ---- baselines ----------------------------------------------------------------

double raw_busy_poll_round_trip() {
  auto* flag = static_cast<std::atomic<std::uint32_t>*>(shared_memory(4096));
  new (flag) std::atomic<std::uint32_t>(0);
  auto* result = static_cast<double*>(shared_memory(4096));
  two_processes(
      [&] {
        for (std::uint32_t i = 0; i < 2u * rounds; i += 2) {
          while (flag->load(std::memory_order_acquire) != i + 1) {
          }
          flag->store(i + 2, std::memory_order_release);
        }
      },
      [&] {
        std::vector<double> samples;
        for (std::uint32_t i = 0; i < 2u * rounds; i += 2) {
          auto start = Clock::now();
          flag->store(i + 1, std::memory_order_release);
          while (flag->load(std::memory_order_acquire) != i + 2) {
          }
          samples.push_back(
              std::chrono::duration<double, std::micro>(Clock::now() - start).count());
        }
        *result = median_us(samples);
      });
  return *result;
}

long futex(std::atomic<std::uint32_t>* word, int op, std::uint32_t value) {
  return syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), op, value, nullptr, nullptr, 0);
}

double raw_futex_round_trip() {
  auto* flag = static_cast<std::atomic<std::uint32_t>*>(shared_memory(4096));
  new (flag) std::atomic<std::uint32_t>(0);
  auto* result = static_cast<double*>(shared_memory(4096));
  auto wait_for = [&](std::uint32_t value) {
    for (;;) {
      std::uint32_t seen = flag->load(std::memory_order_acquire);
      if (seen == value) return;
      futex(flag, FUTEX_WAIT, seen);
    }
  };
  auto post = [&](std::uint32_t value) {
    flag->store(value, std::memory_order_release);
    futex(flag, FUTEX_WAKE, 1);
  };
  int count = rounds / 4;
  two_processes(
      [&] {
        for (std::uint32_t i = 0; i < 2u * count; i += 2) {
          wait_for(i + 1);
          post(i + 2);
        }
      },
      [&] {
        std::vector<double> samples;
        for (std::uint32_t i = 0; i < 2u * count; i += 2) {
          auto start = Clock::now();
          post(i + 1);
          wait_for(i + 2);
          samples.push_back(
              std::chrono::duration<double, std::micro>(Clock::now() - start).count());
        }
        *result = median_us(samples);
      });
  return *result;
}

double memcpy_bandwidth_gbs(std::size_t size) {
  std::vector<char> from(size, 1), to(size);
  int repeats = 2000;
  auto start = Clock::now();
  for (int i = 0; i < repeats; ++i) {
    std::memcpy(to.data(), from.data(), size);
    asm volatile("" : : "r"(to.data()) : "memory");
  }
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return size * double(repeats) / seconds / 1e9;
}

// The same data flow without a ring: the producer copies blocks into two
// shared slots and the consumer copies them out, handing slots over with
// busy-polled flags. What two CPUs of this machine can move between them,
// with an ordinary copy or with a streaming one.
double raw_two_process_copy_gbs(std::size_t size, bool streaming) {
  constexpr int kSlots = 2;
  auto* flags = static_cast<std::atomic<std::uint32_t>*>(shared_memory(4096));
  for (int i = 0; i < kSlots; ++i) new (&flags[i * 16]) std::atomic<std::uint32_t>(0);
  auto* slots = static_cast<char*>(shared_memory(size * kSlots));
  auto* result = static_cast<double*>(shared_memory(4096));
  const int count = static_cast<int>(std::max<std::size_t>(200, (4ull << 30) / size / 4));
  two_processes(
      [&] {
        std::vector<char> out(size);
        for (int i = 0; i < count; ++i) {
          auto& full = flags[(i % kSlots) * 16];
          while (full.load(std::memory_order_acquire) == 0) {
          }
          std::memcpy(out.data(), slots + (i % kSlots) * size, size);
          full.store(0, std::memory_order_release);
        }
        result[1] = seconds_now();
      },
      [&] {
        std::vector<char> in(size, 1);
        result[0] = seconds_now();
        for (int i = 0; i < count; ++i) {
          auto& full = flags[(i % kSlots) * 16];
          while (full.load(std::memory_order_acquire) != 0) {
          }
          if (streaming)
            conduit::ipc::copy_streaming(reinterpret_cast<std::byte*>(slots) + (i % kSlots) * size,
                                         reinterpret_cast<const std::byte*>(in.data()), size);
          else
            std::memcpy(slots + (i % kSlots) * size, in.data(), size);
          full.store(1, std::memory_order_release);
        }
      });
  return size * double(count) / (result[1] - result[0]) / 1e9;
}

// ---- ShmRing -------------------------------------------------------------------

struct RingPair {
  std::size_t capacity, footprint;
  void* to_peer;
  void* from_peer;
  explicit RingPair(std::size_t capacity_)
      : capacity(capacity_), footprint(ShmRing::footprint(capacity_)) {
    to_peer = shared_memory(footprint);
    from_peer = shared_memory(footprint);
    ShmRing::format(to_peer, capacity);
    ShmRing::format(from_peer, capacity);
  }
};

// Round trip of `size` bytes; `loan` writes in place instead of copying.
double ring_round_trip(std::size_t size, ShmRingOptions options, bool loan, int count) {
  RingPair rings(std::max<std::size_t>(4 << 20, 4 * size));
  auto* result = static_cast<double*>(shared_memory(4096));
  std::vector<std::byte> message(size, std::byte{7});
  two_processes(
      [&] {
        ShmRing in =
            ShmRing::attach(rings.to_peer, rings.footprint, ShmRing::Role::consumer, options);
        ShmRing out =
            ShmRing::attach(rings.from_peer, rings.footprint, ShmRing::Role::producer, options);
        for (int i = 0; i < count; ++i) {
          auto received = in.consume();
          if (loan) {
            auto space = out.loan(received.message.size());
            (*space)[0] = received.message[0];
            out.commit(received.message.size());
          } else {
            out.send(received.message);
          }
        }
      },
      [&] {
        ShmRing out =
            ShmRing::attach(rings.to_peer, rings.footprint, ShmRing::Role::producer, options);
        ShmRing in =
            ShmRing::attach(rings.from_peer, rings.footprint, ShmRing::Role::consumer, options);
        std::vector<double> samples;
        for (int i = 0; i < count; ++i) {
          auto start = Clock::now();
          if (loan) {
            auto space = out.loan(size);
            (*space)[0] = std::byte(i);
            out.commit(size);
          } else {
            out.send(message);
          }
          in.consume();
          samples.push_back(
              std::chrono::duration<double, std::micro>(Clock::now() - start).count());
        }
        *result = median_us(samples);
      });
  return *result;
}

double ring_throughput_gbs(std::size_t size, std::size_t capacity, ShmRingOptions options) {
  RingPair rings(capacity);
  auto* result = static_cast<double*>(shared_memory(4096));
  const int count = static_cast<int>(std::max<std::size_t>(200, (4ull << 30) / size / 4));
  two_processes(
      [&] {
        ShmRing in =
            ShmRing::attach(rings.to_peer, rings.footprint, ShmRing::Role::consumer, options);
        std::vector<std::byte> out;
        out.reserve(size);
        for (int i = 0; i < count; ++i) in.receive(out);
        result[1] = seconds_now();
      },
      [&] {
        ShmRing out =
            ShmRing::attach(rings.to_peer, rings.footprint, ShmRing::Role::producer, options);
        std::vector<std::byte> message(size, std::byte{1});
        result[0] = seconds_now();
        for (int i = 0; i < count; ++i) out.send(message);
        out.close();
      });
  // From the first send to the last message received.
  return size * double(count) / (result[1] - result[0]) / 1e9;
}

// The zero-copy flow: the producer builds each message where it lies (here
// memset, a write of every byte) and the consumer reads it where it lies (a
// sum of every 8-byte word, checked). Memory traffic per message is what one
// memcpy moves (every byte written once and read once), so memcpy's
// bandwidth is the fair yardstick. `ring`: through ShmRing's loan/consume;
// otherwise through two busy-polled shared slots, the raw floor of the flow.
double in_place_gbs(std::size_t size, bool ring) {
  constexpr int kSlots = 2;
  RingPair rings(std::max<std::size_t>(4 << 20, 4 * size));
  auto* flags = static_cast<std::atomic<std::uint32_t>*>(shared_memory(4096));
  for (int i = 0; i < kSlots; ++i) new (&flags[i * 16]) std::atomic<std::uint32_t>(0);
  auto* slots = static_cast<std::byte*>(shared_memory(size * kSlots));
  auto* result = static_cast<double*>(shared_memory(4096));
  const int count = static_cast<int>(std::max<std::size_t>(200, (4ull << 30) / size / 4));
  auto check = [size](std::span<const std::byte> message, int i) {
    std::uint64_t sum = 0;
    const auto* words = reinterpret_cast<const std::uint64_t*>(message.data());
    for (std::size_t w = 0; w < size / 8; ++w) sum += words[w];
    const std::uint64_t word = 0x0101010101010101ull * static_cast<std::uint8_t>(i);
    if (message.size() != size || sum != word * (size / 8)) {
      std::fprintf(stderr, "shm_ring_bench: message %d arrived wrong\n", i);
      std::exit(1);
    }
  };
  two_processes(
      [&] {
        if (ring) {
          ShmRing in = ShmRing::attach(rings.to_peer, rings.footprint, ShmRing::Role::consumer);
          for (int i = 0; i < count; ++i) {
            check(in.consume().message, i);
            in.release();
          }
        } else {
          for (int i = 0; i < count; ++i) {
            auto& full = flags[(i % kSlots) * 16];
            while (full.load(std::memory_order_acquire) == 0) {
            }
            check(std::span<const std::byte>(slots + (i % kSlots) * size, size), i);
            full.store(0, std::memory_order_release);
          }
        }
        result[1] = seconds_now();
      },
      [&] {
        result[0] = seconds_now();
        if (ring) {
          ShmRing out = ShmRing::attach(rings.to_peer, rings.footprint, ShmRing::Role::producer);
          for (int i = 0; i < count; ++i) {
            auto space = out.loan(size);
            std::memset(space->data(), i & 0xff, size);
            out.commit(size);
          }
          out.close();
        } else {
          for (int i = 0; i < count; ++i) {
            auto& full = flags[(i % kSlots) * 16];
            while (full.load(std::memory_order_acquire) != 0) {
            }
            std::memset(slots + (i % kSlots) * size, i & 0xff, size);
            full.store(1, std::memory_order_release);
          }
        }
      });
  return size * double(count) / (result[1] - result[0]) / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::string(argv[i]) == "--rounds") rounds = std::stoi(argv[i + 1]);
  if (usable_cpus() < 2)
    std::printf("warning: only one CPU is usable; spinning peers share it and figures mislead\n");

  std::printf("64-byte round trip, two processes on CPUs 0 and 1 (p50)\n");
  double busy = raw_busy_poll_round_trip();
  double ring_spin = ring_round_trip(64, ShmRingOptions{}, false, rounds);
  std::printf("  raw busy-poll cache line   %8.3f us\n", busy);
  std::printf("  ShmRing (spin 50 us)       %8.3f us   ratio %.2f (target <= 1.5)\n", ring_spin,
              ring_spin / busy);
  double raw_futex = raw_futex_round_trip();
  double ring_sleep = ring_round_trip(64, ShmRingOptions{0ns, 50ms}, false, rounds / 4);
  std::printf("  raw futex ping-pong        %8.3f us\n", raw_futex);
  std::printf("  ShmRing (spin 0, futex)    %8.3f us   ratio %.2f (target <= 1.0)\n", ring_sleep,
              ring_sleep / raw_futex);

  std::printf("\none-way throughput, 1 MiB messages copied in and out\n");
  double bandwidth = memcpy_bandwidth_gbs(1 << 20);
  std::printf("  memcpy, one process        %8.2f GB/s\n", bandwidth);
  double plain = raw_two_process_copy_gbs(1 << 20, false);
  std::printf("  raw copy in and out, two processes      %6.2f GB/s   (ratio to memcpy %.2f)\n",
              plain, plain / bandwidth);
  double two_process = raw_two_process_copy_gbs(1 << 20, true);
  std::printf("  raw streaming copy in, copy out         %6.2f GB/s   (ratio to memcpy %.2f)\n",
              two_process, two_process / bandwidth);
  for (bool streaming : {true, false}) {
    for (std::size_t capacity : {std::size_t{4} << 20, std::size_t{16} << 20}) {
      ShmRingOptions options;
      if (!streaming) options.streaming_copy_from = SIZE_MAX;
      double ring = ring_throughput_gbs(1 << 20, capacity, options);
      std::printf(
          "  ShmRing, %2zu MiB ring, %s copy %6.2f GB/s   ratio %.2f to memcpy (target >= "
          "0.70), %.2f to the raw %s copy\n",
          capacity >> 20, streaming ? "streaming" : "ordinary ", ring, ring / bandwidth,
          ring / (streaming ? two_process : plain), streaming ? "streaming" : "ordinary");
    }
  }

  std::printf("\none-way throughput, 1 MiB messages built and read in place (zero copy)\n");
  double raw_in_place = in_place_gbs(1 << 20, false);
  std::printf("  raw busy-polled slots                   %6.2f GB/s   (ratio to memcpy %.2f)\n",
              raw_in_place, raw_in_place / bandwidth);
  double loaned = in_place_gbs(1 << 20, true);
  std::printf("  ShmRing loan/consume, 4 MiB ring        %6.2f GB/s   ratio %.2f to memcpy "
              "(target >= 0.70), %.2f to the raw slots\n",
              loaned, loaned / bandwidth, loaned / raw_in_place);

  std::printf("\nloan path round trip (p50), no payload copy\n");
  double first = 0;
  for (std::size_t size : {64ul, 4096ul, 65536ul, 1ul << 20}) {
    double us = ring_round_trip(size, ShmRingOptions{}, true, rounds / 4);
    if (first == 0) first = us;
    std::printf("  %8zu bytes              %8.3f us   vs 64 B %.2f\n", size, us, us / first);
  }
  return 0;
}
