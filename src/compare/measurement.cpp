#include "compare/measurement.hpp"

#include <fcntl.h>
#include <fmt/core.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>

#include "conduit/error.hpp"
#include "conduit/ipc/pipe.hpp"
#include "conduit/ipc/shm_ring.hpp"

namespace conduit::compare {

namespace {

using Clock = std::chrono::steady_clock;

double nanoseconds_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::nano>(to - from).count();
}

void check_echo(std::span<const std::byte> echo, const Pattern& pattern, std::uint64_t index,
                std::size_t size) {
  if (!pattern.matches(echo, index, size))
    throw Error(fmt::format("round trip {}: the echo ({} bytes) differs from the {}-byte message sent",
                            index, echo.size(), size));
}

// Builds message `index` where the endpoint says, the way ShmRing::send
// would write it there.
void build_message(Endpoint& endpoint, const Pattern& pattern, std::size_t size,
                   std::uint64_t index) {
  static const std::size_t streaming_from = ipc::ShmRingOptions{}.streaming_copy_from;
  pattern.build(endpoint.prepare(size), index,
                endpoint.builds_in_shared_memory() && size >= streaming_from);
}

void send_message(Endpoint& endpoint, const Pattern& pattern, std::size_t size,
                  std::uint64_t index) {
  build_message(endpoint, pattern, size, index);
  endpoint.send(size);
}

// The peer's process: kills it (the watchdog) when the driver overstays.
volatile pid_t watched_child = 0;

extern "C" void on_watchdog(int) {
  if (watched_child > 0) ::kill(watched_child, SIGKILL);
}

class Watchdog {
 public:
  Watchdog(pid_t child, std::chrono::seconds after) {
    watched_child = child;
    struct sigaction action {};
    action.sa_handler = on_watchdog;
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0;  // no SA_RESTART: a blocked call returns EINTR
    ::sigaction(SIGALRM, &action, &previous_);
    itimerval timer{};
    timer.it_value.tv_sec = static_cast<time_t>(after.count());
    ::setitimer(ITIMER_REAL, &timer, nullptr);
  }
  ~Watchdog() {
    itimerval off{};
    ::setitimer(ITIMER_REAL, &off, nullptr);
    ::sigaction(SIGALRM, &previous_, nullptr);
    watched_child = 0;
  }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

 private:
  struct sigaction previous_ {};
};

// Waits up to `timeout` for the child, then kills it; returns its status.
int reap(pid_t child, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  int status = 0;
  for (;;) {
    pid_t done = ::waitpid(child, &status, WNOHANG);
    if (done == child) return status;
    if (done < 0 && errno != EINTR) return 0;
    if (Clock::now() >= deadline) {
      ::kill(child, SIGKILL);
      while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
      }
      return status;
    }
    ::usleep(1000);
  }
}

std::string read_all(int fd) {
  std::string text;
  char chunk[512];
  for (;;) {
    ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n > 0) {
      text.append(chunk, static_cast<std::size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      return text;
    }
  }
}

}  // namespace

SizeCapped::SizeCapped(std::size_t largest)
    : std::runtime_error(fmt::format("carries at most {} bytes per message", largest)),
      largest(largest) {}

double clock_overhead_ns() {
  std::vector<double> samples;
  for (int i = 0; i < 20001; ++i) {
    auto a = Clock::now();
    auto b = Clock::now();
    samples.push_back(nanoseconds_between(a, b));
  }
  std::nth_element(samples.begin(), samples.begin() + samples.size() / 2, samples.end());
  return samples[samples.size() / 2];
}

Latency latency_from_samples(std::vector<double>& samples_ns, std::size_t size, bool histogram) {
  Latency latency;
  latency.size = size;
  latency.samples = samples_ns.size();
  if (samples_ns.empty()) return latency;
  std::sort(samples_ns.begin(), samples_ns.end());
  auto at = [&](double quantile) {
    auto index = static_cast<std::size_t>(quantile * static_cast<double>(samples_ns.size()));
    return samples_ns[std::min(samples_ns.size() - 1, index)] / 1000.0;
  };
  latency.p50_us = at(0.50);
  latency.p99_us = at(0.99);
  latency.p999_us = at(0.999);
  latency.max_us = samples_ns.back() / 1000.0;
  if (histogram) {
    for (double ns : samples_ns) {
      auto bucket = static_cast<std::size_t>(std::bit_width(static_cast<std::uint64_t>(ns)));
      if (latency.histogram.size() <= bucket) latency.histogram.resize(bucket + 1);
      ++latency.histogram[bucket];
    }
  }
  return latency;
}

Latency measure_round_trips(Endpoint& endpoint, const Pattern& pattern, std::size_t size,
                            const LoopSettings& settings) {
  std::vector<double> samples;
  samples.reserve(std::min<std::size_t>(settings.max_samples, 1 << 16));
  std::uint64_t index = 0;
  // One round trip; returns when it ended and how long it took.
  auto round_trip = [&] {
    build_message(endpoint, pattern, size, index);
    auto before = Clock::now();
    endpoint.send(size);
    std::span<const std::byte> echo = endpoint.receive();
    auto after = Clock::now();
    check_echo(echo, pattern, index, size);
    endpoint.release();
    ++index;
    return std::pair(after, std::max(0.0, nanoseconds_between(before, after) -
                                              settings.clock_overhead_ns));
  };
  auto warmup_end = Clock::now() + settings.warmup;
  while (round_trip().first < warmup_end) {
  }
  auto end = Clock::now() + settings.duration;
  for (;;) {
    auto [after, sample] = round_trip();
    samples.push_back(sample);
    if (after >= end || samples.size() >= settings.max_samples) break;
  }
  return latency_from_samples(samples, size, settings.histogram);
}

Throughput measure_one_way(Endpoint& endpoint, const Pattern& pattern, std::size_t size,
                           const LoopSettings& settings) {
  auto round = [&](std::chrono::nanoseconds length) {
    auto start = Clock::now();
    auto end = start + length;
    std::uint64_t sent = 0;
    for (; (sent & 7) != 0 || Clock::now() < end; ++sent) send_message(endpoint, pattern, size, sent);
    send_message(endpoint, pattern, size, Pattern::kEndOfRound);
    std::span<const std::byte> answer = endpoint.receive();
    auto finished = Clock::now();
    std::uint64_t received = Pattern::index_of(answer);
    if (!pattern.matches(answer, received, size))
      throw Error("the receiver's answer at the end of a round is malformed");
    endpoint.release();
    if (received != sent)
      throw Error(fmt::format("the receiver checked {} of {} messages", received, sent));
    Throughput throughput;
    throughput.size = size;
    throughput.messages = sent;
    throughput.seconds = std::chrono::duration<double>(finished - start).count();
    throughput.messages_per_second = static_cast<double>(sent) / throughput.seconds;
    throughput.megabytes_per_second = throughput.messages_per_second * static_cast<double>(size) / 1e6;
    return throughput;
  };
  round(settings.warmup);
  return round(settings.duration);
}

void send_quit(Endpoint& endpoint, const Pattern& pattern, std::size_t size) {
  send_message(endpoint, pattern, size, Pattern::kQuit);
}

void echo_until_quit(Endpoint& endpoint) {
  for (;;) {
    std::span<const std::byte> message = endpoint.receive();
    if (Pattern::index_of(message) == Pattern::kQuit) return;
    std::span<std::byte> reply = endpoint.prepare(message.size());
    std::memcpy(reply.data(), message.data(), message.size());
    endpoint.release();
    endpoint.send(message.size());
  }
}

void receive_until_quit(Endpoint& endpoint, const Pattern& pattern, std::size_t size) {
  std::uint64_t expected = 0;
  for (;;) {
    std::span<const std::byte> message = endpoint.receive();
    std::uint64_t index = Pattern::index_of(message);
    if (index == Pattern::kQuit) return;
    if (index == Pattern::kEndOfRound) {
      endpoint.release();
      send_message(endpoint, pattern, size, expected);
      expected = 0;
      continue;
    }
    if (!pattern.matches(message, expected, size))
      throw Error(fmt::format("message {} arrived {}", expected,
                              index != expected ? fmt::format("as message {}", index)
                                                : std::string("with different content")));
    endpoint.release();
    ++expected;
  }
}

bool pin_to_cpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return ::sched_setaffinity(0, sizeof set, &set) == 0;
}

int usable_cpu_count() {
  cpu_set_t set;
  if (::sched_getaffinity(0, sizeof set, &set) != 0) return 1;
  return CPU_COUNT(&set);
}

RunFailure run_in_two_processes(const std::function<std::unique_ptr<Link>()>& make_link,
                                const std::function<void(Endpoint&)>& peer_work,
                                const std::function<void(Endpoint&)>& driver_work,
                                const Placement& placement, std::chrono::seconds watchdog) {
  // A peer that dies must give the driver EPIPE, not a fatal signal.
  ipc::ignore_sigpipe();
  RunFailure failure;
  std::unique_ptr<Link> link;
  try {
    link = make_link();
  } catch (const SizeCapped& capped) {
    failure.capped = capped.largest;
    return failure;
  } catch (const std::exception& error) {
    failure.error = std::string("setting up: ") + error.what();
    return failure;
  }
  int errors[2];
  if (::pipe2(errors, O_CLOEXEC) != 0) {
    failure.error = std::string("pipe2: ") + std::strerror(errno);
    return failure;
  }
  std::fflush(nullptr);
  pid_t child = ::fork();
  if (child < 0) {
    failure.error = std::string("fork: ") + std::strerror(errno);
    ::close(errors[0]);
    ::close(errors[1]);
    return failure;
  }
  if (child == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    ::close(errors[0]);
    if (placement.cpus) pin_to_cpu(placement.cpus->second);
    try {
      auto endpoint = link->peer();
      peer_work(*endpoint);
      ::_exit(0);
    } catch (const SizeCapped&) {
      ::_exit(0);  // the driver reports the cap
    } catch (const std::exception& error) {
      std::string text = error.what();
      (void)!::write(errors[1], text.data(), text.size());
      ::_exit(1);
    }
  }
  ::close(errors[1]);
  {
    Watchdog guard(child, watchdog);
    try {
      auto endpoint = link->driver();
      driver_work(*endpoint);
    } catch (const SizeCapped& capped) {
      failure.capped = capped.largest;
    } catch (const std::exception& error) {
      failure.error = error.what();
    }
    if (!failure.error.empty() || failure.capped) ::kill(child, SIGKILL);
    int status = reap(child, std::chrono::milliseconds(5000));
    std::string peer_error = read_all(errors[0]);
    if (!peer_error.empty() && !failure.capped) {
      failure.error = "peer: " + peer_error;
    } else if (failure.error.empty() && !failure.capped &&
               !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
      failure.error = WIFSIGNALED(status)
                          ? fmt::format("the peer was killed by signal {} (timed out after {} s?)",
                                        WTERMSIG(status), watchdog.count())
                          : fmt::format("the peer exited with status {}", WEXITSTATUS(status));
    }
  }
  ::close(errors[0]);
  link.reset();
  return failure;
}

}  // namespace conduit::compare
