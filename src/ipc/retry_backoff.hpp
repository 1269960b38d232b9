// Pauses between attempts at an operation the kernel offers no way to wait
// for with a timeout (System V message queues: msgsnd and msgrcv either block
// without limit or fail at once with IPC_NOWAIT) (internal).
#pragma once

#include <algorithm>
#include <chrono>

namespace conduit::ipc::detail {

// First kYields pauses of zero (the caller yields the processor: a peer
// that answers within microseconds is seen at once), then 20 microseconds,
// doubling up to 2 milliseconds: a message that arrives while the caller
// sleeps waits at most about 2 ms, and an idle waiter wakes about 500 times
// a second.
class RetryBackoff {
 public:
  static constexpr int kYields = 64;
  static constexpr std::chrono::nanoseconds kFirst = std::chrono::microseconds(20);
  static constexpr std::chrono::nanoseconds kLongest = std::chrono::milliseconds(2);

  // The next pause, at most `left` (the time left before a deadline); zero
  // means "yield, then try again".
  std::chrono::nanoseconds next(std::chrono::nanoseconds left = kLongest) {
    if (yields_ < kYields) {
      ++yields_;
      return std::chrono::nanoseconds::zero();
    }
    std::chrono::nanoseconds pause = std::min(current_, left);
    current_ = std::min(current_ * 2, kLongest);
    return std::max(pause, std::chrono::nanoseconds::zero());
  }

 private:
  int yields_ = 0;
  std::chrono::nanoseconds current_ = kFirst;
};

}  // namespace conduit::ipc::detail
