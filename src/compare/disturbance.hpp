// Whether something other than the measurement ran on the machine while a
// figure was measured: CPU time taken by processes other than this one and
// its children, and time the hypervisor stole from the virtual CPUs.
#pragma once

#include <chrono>
#include <string>

namespace conduit::compare {

// How much of that makes a figure disturbed.
struct DisturbanceLimits {
  // Other processes' CPU time over the figure's wall time (0.2: a fifth of
  // one CPU).
  double others_cpu_share = 0.2;
  // Stolen time over the figure's wall time, all CPUs together.
  double steal_share = 0.05;
};

class DisturbanceWatch {
 public:
  // Takes the first reading.
  DisturbanceWatch();
  // Why the time since construction was disturbed ("other processes used
  // 45% of a CPU"), or empty.
  std::string verdict(const DisturbanceLimits& limits = {}) const;
  // CPU ticks (1/sysconf(_SC_CLK_TCK) s) used so far by this process, its
  // descendants and the children it has waited for: what verdict() leaves
  // out.
  static long long own_ticks() { return read().own_ticks; }

 private:
  struct Reading {
    long long busy_ticks = 0;   // user + nice + system of every CPU
    long long steal_ticks = 0;  // stolen by the hypervisor, every CPU
    long long own_ticks = 0;    // this process, its descendants and its waited-for children
    std::chrono::steady_clock::time_point at;
  };
  static Reading read();
  Reading start_;
};

}  // namespace conduit::compare
