// What a protocol sees of a connection: a byte stream with timeouts, the
// service table, the server's limits and whether the server is stopping.
// The server core knows protocols only as entries of a table (protocol.hpp).
#pragma once

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "conduit/rpc/call_context.hpp"
#include "conduit/rpc/server.hpp"
#include "conduit/rpc/service.hpp"
#include "rpc/transports/byte_stream.hpp"

namespace conduit::rpc {

// The calls of a server that run on threads of their own (streaming
// handlers): the server waits for them all to end before its executors go,
// since each one's last act is to post to its connection.
class CallThreads {
 public:
  // Counts one more, unless `limit` already run: false then.
  bool try_enter(std::size_t limit) {
    std::lock_guard lock(mutex_);
    if (running_ >= limit) return false;
    ++running_;
    return true;
  }
  // The thread's last use of anything the server owns.
  void leave() {
    std::lock_guard lock(mutex_);
    if (--running_ == 0) idle_.notify_all();
  }
  void wait_until_none() {
    std::unique_lock lock(mutex_);
    idle_.wait(lock, [this] { return running_ == 0; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable idle_;
  std::size_t running_ = 0;
};

// Thrown by Connection::read_some when a request or idle timeout expired.
class TimedOut : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Always owned by a std::shared_ptr (its timer's handler holds a weak one).
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  // `executor` runs every handler of this connection one at a time (a strand,
  // or an io_context run by one thread).
  // `calls` is where calls may run side by side (the server's threads).
  Connection(std::unique_ptr<ByteStream> stream, asio::any_io_executor executor,
             asio::any_io_executor calls, const ServiceTable& services,
             const ServerOptions& options, const std::atomic<bool>& stopping,
             CallThreads& call_threads);

  // What a read waits for: the first bytes of a request (between requests,
  // bounded by the idle timeout), or the rest of a request that has begun
  // (the request timeout, counted from the first read of the request).
  enum class Awaiting { next_request, rest_of_request };

  // Reads some bytes. 0 at end of file. Throws TimedOut, or
  // boost::system::system_error when the stream failed or was closed by
  // shutdown.
  asio::awaitable<std::size_t> read_some(asio::mutable_buffer into, Awaiting awaiting);
  asio::awaitable<void> write(std::string_view bytes);
  void close();
  // Runs `work` on the connection's executor; from any thread. Threads other
  // than the connection's post with this rather than asio::post, so that a
  // transport waiting outside the executor is woken (ByteStream::waker).
  template <typename Work>
  void post(Work&& work) {
    // Once posted, the work may end the connection at once on another
    // thread: nothing of it is touched after the post but the waker.
    std::shared_ptr<Waker> waker = waker_;
    asio::post(executor_, std::forward<Work>(work));
    if (waker) waker->wake();
  }
  // From any thread: cancels the calls of this connection (CallContext::
  // cancelled()) and cuts the peer off (ByteStream::abort()).
  void abort() noexcept;
  // Cancels the calls of this connection without cutting the peer off:
  // their replies still go out if it reads them.
  void cancel_calls() noexcept { cancelled_->store(true); }
  // The flag abort() sets; protocols share it with each call's context.
  const std::shared_ptr<std::atomic<bool>>& cancellation() const { return cancelled_; }

  const ServiceTable& services() const { return services_; }
  // Where a call run on a thread of its own is counted (the server's).
  CallThreads& call_threads() const { return call_threads_; }
  const ServerOptions& options() const { return options_; }
  const Peer& peer() const { return stream_->peer(); }
  // Whether the peer has closed its end (ByteStream::peer_gone()).
  bool peer_gone() const noexcept { return stream_->peer_gone(); }
  // True once the server is shutting down: finish the request in hand, then
  // return.
  bool stopping() const { return stopping_.load(); }
  // Between requests (the server may close the connection at once).
  bool idle() const { return idle_.load(); }
  // On the connection's executor.
  void set_idle(bool idle) {
    if (idle_.load(std::memory_order_relaxed) == idle) return;
    if (idle) idle_since_.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);
    idle_.store(idle);
  }
  // When the connection last became idle (when it was accepted, if it has
  // not been busy since). Any thread.
  std::chrono::steady_clock::time_point idle_since() const {
    return Clock::time_point(Clock::duration(idle_since_.load(std::memory_order_relaxed)));
  }
  // The handshake: from its acceptance until its first call (which
  // make_call_context marks), a connection's reads are bounded by
  // ServerOptions::handshake_timeout too. Any thread.
  bool handshaking() const { return handshaking_.load(std::memory_order_relaxed); }
  void end_handshake() { handshaking_.store(false, std::memory_order_relaxed); }
  // Whether the server may close this connection to make room for another
  // (not a stdio peer); set before it is served.
  bool may_make_room() const { return may_make_room_; }
  void keep_open_for_room() { may_make_room_ = false; }
  // Whether the server has chosen this connection to close to make room
  // (it is on its way out). Under the server's lock.
  bool closing_for_room() const { return closing_for_room_; }
  void close_for_room() { closing_for_room_ = true; }
  // What the server does to an idle connection when it shuts down, on the
  // connection's executor: close() unless the protocol says goodbye its own
  // way first (HTTP/2's GOAWAY), with set_on_shutdown().
  void set_on_shutdown(std::function<void()> goodbye) { on_shutdown_ = std::move(goodbye); }
  void shut_down_idle() {
    if (on_shutdown_)
      on_shutdown_();
    else
      close();
  }
  const asio::any_io_executor& executor() const { return executor_; }
  const asio::any_io_executor& call_executor() const { return call_executor_; }

 private:
  std::unique_ptr<ByteStream> stream_;
  std::shared_ptr<Waker> waker_ = stream_->waker();
  asio::any_io_executor executor_;
  asio::any_io_executor call_executor_;
  std::function<void()> on_shutdown_;
  asio::steady_timer timer_;
  const ServiceTable& services_;
  const ServerOptions& options_;
  const std::atomic<bool>& stopping_;
  CallThreads& call_threads_;
  using Clock = std::chrono::steady_clock;
  std::atomic<bool> idle_{true};
  std::atomic<Clock::rep> idle_since_{Clock::now().time_since_epoch().count()};
  std::atomic<bool> handshaking_{true};
  bool may_make_room_ = true;
  bool closing_for_room_ = false;
  std::shared_ptr<std::atomic<bool>> cancelled_ = std::make_shared<std::atomic<bool>>(false);
  void set_timer(std::chrono::steady_clock::time_point expiry);
  void on_timer();
  std::chrono::steady_clock::time_point deadline_in_force() const;
  static constexpr std::chrono::steady_clock::time_point kNoDeadline =
      std::chrono::steady_clock::time_point::max();
  // The deadline of the read waiting, or kNoDeadline.
  std::chrono::steady_clock::time_point deadline_ = kNoDeadline;
  // Set by the first read of a request's rest; kNoDeadline between requests.
  std::chrono::steady_clock::time_point request_deadline_ = kNoDeadline;
  // Accepted + ServerOptions::handshake_timeout, or kNoDeadline.
  std::chrono::steady_clock::time_point handshake_deadline_ = kNoDeadline;
  bool timer_set_ = false;
  std::chrono::steady_clock::time_point timer_expiry_;
  bool timed_out_ = false;
  bool timed_out_in_handshake_ = false;
};

}  // namespace conduit::rpc
