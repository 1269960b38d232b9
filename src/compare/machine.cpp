// The machine a comparison ran on, and its own limits measured in the run.
#include <sched.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <fstream>
#include <vector>

#include "compare/runner.hpp"

namespace conduit::compare {

namespace {

using Clock = std::chrono::steady_clock;

std::string cpu_model() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("model name", 0) == 0 && line.find(':') != std::string::npos) {
      std::string model = line.substr(line.find(':') + 1);
      model.erase(0, model.find_first_not_of(' '));
      return model;
    }
  }
  return "unknown";
}

double memcpy_gb_per_second() {
  constexpr std::size_t kSize = 1 << 20;
  std::vector<char> from(kSize, 1), to(kSize);
  double best = 0;
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto start = Clock::now();
    for (int i = 0; i < 200; ++i) {
      std::memcpy(to.data(), from.data(), kSize);
      asm volatile("" : : "r"(to.data()) : "memory");
    }
    double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    best = std::max(best, 200.0 * kSize / seconds / 1e9);
  }
  return best;
}

}  // namespace

Machine describe_machine() {
  Machine machine;
  machine.cpu_model = cpu_model();
  machine.cpus_online = static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN));
  machine.cpus_usable = usable_cpu_count();
  utsname name{};
  if (::uname(&name) == 0) {
    machine.kernel = std::string(name.sysname) + " " + name.release;
    machine.hostname = name.nodename;
  }
  return machine;
}

// One cache line bounced between two processes by busy polling: the floor
// under any round trip through shared memory.
double cache_line_round_trip_us(const Placement& placement) {
  void* memory = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) return 0;
  auto* turn = new (memory) std::atomic<std::uint64_t>(0);
  constexpr std::uint64_t kRounds = 200000;
  pid_t child = ::fork();
  if (child == 0) {
    if (placement.cpus) pin_to_cpu(placement.cpus->second);
    auto deadline = Clock::now() + std::chrono::seconds(10);
    for (std::uint64_t i = 0; i < kRounds; ++i) {
      for (std::uint64_t spins = 1; turn->load(std::memory_order_acquire) != 2 * i + 1; ++spins)
        if ((spins & 0xffff) == 0 && Clock::now() > deadline) ::_exit(1);
      turn->store(2 * i + 2, std::memory_order_release);
    }
    ::_exit(0);
  }
  std::vector<double> batches;
  auto deadline = Clock::now() + std::chrono::seconds(10);
  bool stuck = false;
  for (std::uint64_t i = 0; i < kRounds && !stuck;) {
    auto start = Clock::now();
    std::uint64_t end = std::min(kRounds, i + 1000);
    for (; i < end && !stuck; ++i) {
      turn->store(2 * i + 1, std::memory_order_release);
      for (std::uint64_t spins = 1; turn->load(std::memory_order_acquire) != 2 * i + 2; ++spins)
        if ((spins & 0xffff) == 0 && Clock::now() > deadline) stuck = true;
    }
    batches.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count() /
                      1000.0);
  }
  if (stuck) ::kill(child, SIGKILL);
  int status;
  ::waitpid(child, &status, 0);
  ::munmap(memory, 4096);
  if (stuck || batches.empty()) return 0;
  std::sort(batches.begin(), batches.end());
  return batches[batches.size() / 2];
}

Limits measure_limits(const Placement& placement) {
  Limits limits;
  limits.clock_overhead_ns = clock_overhead_ns();
  limits.memcpy_gb_per_second = memcpy_gb_per_second();
  limits.cache_line_round_trip_us = cache_line_round_trip_us(placement);
  return limits;
}

}  // namespace conduit::compare
