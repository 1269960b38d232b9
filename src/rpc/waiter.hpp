// How the blocking form of a call waits for its asynchronous form: the
// caller's thread waits for the result a channel's own thread hands over.
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>

#include "conduit/rpc/status.hpp"

namespace conduit::rpc {

// The state is shared, so that the handing thread wakes the caller after
// letting go of the lock (the caller does not wake only to wait for it),
// even when the caller has gone on by then.
template <typename Result>
class Waiter {
 public:
  // What the asynchronous form completes through (once).
  std::function<void(Result)> setter() {
    return [state = state_](Result result) {
      {
        std::lock_guard lock(state->mutex);
        state->result = std::move(result);
      }
      state->ready.notify_one();
    };
  }
  Result wait() {
    std::unique_lock lock(state_->mutex);
    state_->ready.wait(lock, [this] { return state_->result.has_value(); });
    return std::move(*state_->result);
  }

 private:
  struct State {
    std::mutex mutex;
    std::condition_variable ready;
    std::optional<Result> result;
  };
  std::shared_ptr<State> state_ = std::make_shared<State>();
};

// What a blocking call made on the channel's own thread (from a completion
// callback) returns, rather than wait for itself.
inline Status blocking_call_on_channel_thread() {
  return {StatusCode::failed_precondition,
          "a blocking call was made from a completion callback of the same channel, which "
          "would wait for itself; use the asynchronous form there"};
}

}  // namespace conduit::rpc
