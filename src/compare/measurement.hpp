// The measuring loops and the two-process harness they run in.
//
// Every figure comes from two processes: this one drives (sends, times,
// checks) and a forked peer echoes or receives. Each message is built in full
// from a Pattern and checked in full where it arrives; warm-up is discarded;
// the cost of reading the clock is taken off every latency sample.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

#include "compare/endpoint.hpp"
#include "compare/results.hpp"

namespace conduit::compare {

struct LoopSettings {
  std::chrono::nanoseconds duration{std::chrono::milliseconds(400)};  // timed part
  std::chrono::nanoseconds warmup{std::chrono::milliseconds(80)};     // discarded first
  double clock_overhead_ns = 0;
  bool histogram = false;
  std::size_t max_samples = 2'000'000;
};

// The driver's side: round trips of `size`-byte messages to an echoing peer.
// Throws Error when an echo differs from what was sent.
Latency measure_round_trips(Endpoint& endpoint, const Pattern& pattern, std::size_t size,
                            const LoopSettings& settings);

// The driver's side: sends `size`-byte messages as fast as the peer takes
// them, in a warm-up round and a timed round, each ended by a message the peer
// answers with the count it received and checked.
Throughput measure_one_way(Endpoint& endpoint, const Pattern& pattern, std::size_t size,
                           const LoopSettings& settings);

// Tells the peer the conversation is over.
void send_quit(Endpoint& endpoint, const Pattern& pattern, std::size_t size);

// The peer's sides: echo every message, or receive and check every message
// and answer each end of round; both return on the quit message.
void echo_until_quit(Endpoint& endpoint);
void receive_until_quit(Endpoint& endpoint, const Pattern& pattern, std::size_t size);

// Thrown while setting up a Link when the mechanism cannot carry messages of
// the size asked for; `largest` is what it can carry.
class SizeCapped : public std::runtime_error {
 public:
  explicit SizeCapped(std::size_t largest);
  std::size_t largest;
};

// Which CPUs the driver and the peer run on.
struct Placement {
  std::optional<std::pair<int, int>> cpus;
};

// Why a two-process run gave no figure.
struct RunFailure {
  std::string error;                  // empty: no failure
  std::optional<std::size_t> capped;  // the mechanism carries at most this many bytes
};

// Runs `peer_work` in a forked child on the link's peer side and
// `driver_work` here on its driver side. Nothing outlives the call: the
// child is waited for (and killed once `watchdog` has passed), and the link is
// destroyed. The error names the side that failed first.
RunFailure run_in_two_processes(const std::function<std::unique_ptr<Link>()>& make_link,
                                const std::function<void(Endpoint&)>& peer_work,
                                const std::function<void(Endpoint&)>& driver_work,
                                const Placement& placement, std::chrono::seconds watchdog);

template <typename Figure>
Outcome<Figure> in_two_processes(const std::function<std::unique_ptr<Link>()>& make_link,
                                 const std::function<void(Endpoint&)>& peer_work,
                                 const std::function<Figure(Endpoint&)>& driver_work,
                                 const Placement& placement, std::chrono::seconds watchdog) {
  Outcome<Figure> outcome;
  RunFailure failure = run_in_two_processes(
      make_link, peer_work, [&](Endpoint& endpoint) { outcome.figure = driver_work(endpoint); },
      placement, watchdog);
  if (!failure.error.empty() || failure.capped) outcome.figure.reset();
  outcome.error = failure.error;
  outcome.capped_at = failure.capped;
  return outcome;
}

// Cost of one steady_clock::now(), in nanoseconds (median of many).
double clock_overhead_ns();

// Percentiles of samples in nanoseconds (sorted in place).
Latency latency_from_samples(std::vector<double>& samples_ns, std::size_t size, bool histogram);

// Pins the calling thread to one CPU; false when the CPU is not usable.
bool pin_to_cpu(int cpu);
int usable_cpu_count();

}  // namespace conduit::compare
