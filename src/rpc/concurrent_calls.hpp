// Calls side by side on one connection, for the protocols whose framing lets
// replies come back in any order (matched to calls by an id, as some
// does over lines and Content-Length framing): the call runner's limit on
// calls in flight per connection (ServerOptions::max_calls_per_connection),
// the bound on replies waiting for the peer to read them
// (ServerOptions::max_queued_reply_bytes) and the ordering of replies as they
// are ready.
#pragma once

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "rpc/call_runner.hpp"
#include "rpc/connection.hpp"

namespace conduit::rpc {

// Answers one request text: the reply text, or std::nullopt when none is due
// (a notification). Called from any thread, several at once.
using TextHandler =
    std::function<std::optional<std::string>(std::string_view request, CallContext& context)>;

// The calls of one connection whose framing lets replies come back in any
// order (the protocol matches them to calls by id): each runs on the server's
// threads as soon as it is read, at most max_calls_per_connection at a time,
// and its reply is written as soon as it is ready, one reply after another.
// While the replies waiting to be written reach max_queued_reply_bytes, no
// call starts, so the reader stops reading: a peer that sends and does not
// read is held back by its own socket. Everything here but the calls
// themselves runs on the connection's executor.
class ConcurrentCalls {
 public:
  // `handle` answers one request (any thread); `frame` wraps a reply for
  // the wire in place (a newline, a Content-Length header).
  ConcurrentCalls(Connection& connection, std::string_view protocol, TextHandler handle,
                  void (*frame)(std::string& reply))
      : state_(std::make_shared<State>(connection, protocol, std::move(handle), frame)) {}

  // Starts the call `request` once fewer than the limit are running and the
  // replies waiting for the peer are below their limit.
  asio::awaitable<void> start(std::string request) {
    const ServerOptions& options = state_->connection.options();
    const std::size_t queue_limit = std::max<std::size_t>(options.max_queued_reply_bytes, 1);
    while (state_->running >= options.max_calls_per_connection ||
           state_->queued_bytes >= queue_limit)
      co_await state_->changed();
    ++state_->running;
    asio::post(state_->connection.call_executor(), [state = state_,
                                                    request = std::move(request)]() mutable {
      CallContext context = make_call_context(state->connection, state->protocol);
      std::optional<std::string> reply = state->handle(request, context);
      asio::post(state->connection.executor(), [state, reply = std::move(reply)]() mutable {
        state->finished(std::move(reply));
      });
    });
  }

  // Between requests with nothing running or waiting to be written.
  bool quiet() const { return state_->running == 0 && !state_->writing; }

  // Waits until every call started has answered and its reply is written.
  asio::awaitable<void> finish() {
    while (!quiet()) co_await state_->changed();
  }

 private:
  struct State : std::enable_shared_from_this<State> {
    State(Connection& connection, std::string_view protocol, TextHandler handle,
          void (*frame)(std::string&))
        : connection(connection),
          protocol(protocol),
          handle(std::move(handle)),
          frame(frame),
          wake(connection.executor(), asio::steady_timer::time_point::max()) {}

    // Resumes when a call finished or a write ended.
    asio::awaitable<void> changed() {
      wake.expires_at(asio::steady_timer::time_point::max());
      co_await wake.async_wait(asio::as_tuple(asio::use_awaitable));  // woken by cancel()
    }

    void finished(std::optional<std::string> reply) {
      --running;
      if (reply && !broken) {
        frame(*reply);  // in place: a large reply costs no second buffer
        queued_bytes += reply->size();
        outbox.push_back(std::move(*reply));
        if (!writing) {
          writing = true;
          asio::co_spawn(connection.executor(), write_all(shared_from_this()), asio::detached);
        }
      }
      wake.cancel();
      settle();
    }

    // Marks the connection idle when it waits for a request with nothing in
    // flight; when the server is stopping, such a connection is done.
    void settle() {
      const bool idle = running == 0 && !writing && waiting_for_request;
      connection.set_idle(idle);
      if (idle && connection.stopping()) connection.close();
    }

    static asio::awaitable<void> write_all(std::shared_ptr<State> state) {
      while (!state->outbox.empty()) {
        std::string bytes = std::move(state->outbox.front());
        state->outbox.pop_front();
        try {
          co_await state->connection.write(bytes);
          state->queued_bytes -= bytes.size();
        } catch (const std::exception&) {
          // The peer is gone: what is left has no one to read it, and the
          // reading side sees the end of the connection.
          state->broken = true;
          state->outbox.clear();
          state->queued_bytes = 0;
        }
        state->wake.cancel();  // a call held back by the queue may start
      }
      state->writing = false;
      state->wake.cancel();
      state->settle();
    }

    Connection& connection;     // outlives the calls: serve() returns after finish()
    std::string_view protocol;  // a name of the protocol table's, which outlives calls
    TextHandler handle;
    void (*frame)(std::string&);
    asio::steady_timer wake;
    std::size_t running = 0;
    bool writing = false;
    bool broken = false;
    bool waiting_for_request = false;
    std::deque<std::string> outbox;
    // Bytes of the replies in the outbox and of the one being written.
    std::size_t queued_bytes = 0;
  };

 public:
  // Whether the connection now waits for the next request (with nothing in
  // flight, that makes it idle: shutdown may close it at once).
  void set_waiting_for_request(bool waiting) {
    state_->waiting_for_request = waiting;
    state_->connection.set_idle(waiting && quiet());
  }

 private:
  std::shared_ptr<State> state_;
};

// Serves a connection whose requests `read_calls` reads and starts as
// calls side by side, each reply framed by `frame`. When reading ends (the
// peer's end of file, an error, shutdown), the calls still running are
// cancelled (CallContext::cancelled(): a client that gave up closes its
// connection) and the calls already read still answer; then the
// connection ends.
inline asio::awaitable<void> serve_concurrently(
    Connection& connection, std::string pending, std::string_view protocol, TextHandler handle,
    asio::awaitable<void> (*read_calls)(Connection&, std::string, ConcurrentCalls&),
    void (*frame)(std::string& reply)) {
  ConcurrentCalls calls(connection, protocol, std::move(handle), frame);
  std::exception_ptr failure;
  try {
    co_await read_calls(connection, std::move(pending), calls);
  } catch (...) {
    failure = std::current_exception();
  }
  calls.set_waiting_for_request(false);
  connection.cancel_calls();
  co_await calls.finish();
  if (failure) std::rethrow_exception(failure);
}

}  // namespace conduit::rpc
