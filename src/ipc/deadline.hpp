// Converting relative timeouts into what the blocking calls take: absolute
// CLOCK_MONOTONIC times (sem_clockwait, pthread_*_clocklock) or the time left
// (semtimedop), without overflowing on huge timeouts.
#pragma once

#include <time.h>

#include <chrono>

namespace conduit::ipc::detail {

// A point on CLOCK_MONOTONIC (std::chrono::steady_clock on Linux).
using Deadline = std::chrono::steady_clock::time_point;

// now + timeout, saturating at the clock's maximum; negative timeouts are 0.
inline Deadline deadline_after(std::chrono::nanoseconds timeout) {
  auto now = std::chrono::steady_clock::now();
  if (timeout < std::chrono::nanoseconds::zero()) timeout = std::chrono::nanoseconds::zero();
  if (timeout > Deadline::max() - now) return Deadline::max();
  return now + timeout;
}

inline timespec to_timespec(std::chrono::nanoseconds duration) {
  auto seconds = std::chrono::duration_cast<std::chrono::seconds>(duration);
  timespec spec{};
  spec.tv_sec = static_cast<time_t>(seconds.count());
  spec.tv_nsec = static_cast<long>((duration - seconds).count());
  return spec;
}

// The deadline as an absolute CLOCK_MONOTONIC timespec.
inline timespec monotonic_timespec(Deadline deadline) {
  return to_timespec(deadline.time_since_epoch());
}

// Time left until the deadline as a relative timespec (zero once passed).
inline timespec remaining_timespec(Deadline deadline) {
  auto left = deadline - std::chrono::steady_clock::now();
  if (left < std::chrono::nanoseconds::zero()) left = std::chrono::nanoseconds::zero();
  return to_timespec(left);
}

}  // namespace conduit::ipc::detail
