// How every protocol runs a call, written once: the call's context, the
// deadline rule, where the handler runs, how many calls a connection may
// have running, and how many streaming calls the server runs at once.
//
// The deadline rule: a call's deadline is the earlier of what the client
// asked (in its protocol's own way) and the server's
// ServerOptions::call_timeout.
// A call whose deadline has passed before its handler starts is not run; a
// call whose deadline passes while its handler runs ends DEADLINE_EXCEEDED
// unless the handler failed otherwise. Each protocol maps DEADLINE_EXCEEDED
// to its own error form.
#pragma once

#include <boost/asio/post.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>

#include "conduit/rpc/call_context.hpp"
#include "conduit/rpc/service.hpp"
#include "rpc/connection.hpp"

namespace conduit::rpc {

// The context of a call arriving on `connection` in `protocol`: the peer,
// the connection's cancellation (cancelled when the connection is cut off),
// and the deadline (see above; `timeout` is the client's, if it gave one).
// The connection's first call ends its handshake (Connection::handshaking).
CallContext make_call_context(Connection& connection, std::string_view protocol,
                              std::optional<std::chrono::nanoseconds> timeout = std::nullopt);
// The same for a call whose carrier is not a Connection (a shared-memory
// link's message): its peer and cancellation given.
CallContext make_call_context(const ServerOptions& options, std::string_view protocol,
                              const Peer& peer,
                              std::optional<std::chrono::nanoseconds> timeout = std::nullopt);

// Runs a unary method's handler under the deadline rule.
Status run_unary(const Method& method, CallContext& context,
                 const google::protobuf::Message& request, google::protobuf::Message& response);
// Runs a streaming method's handler under the deadline rule.
Status run_stream(const Method& method, CallContext& context, MessageReader& requests,
                  MessageWriter& responses);

// Runs `call` (which returns a result) where calls of `connection` run, then
// `done(result)` on the connection's executor. Where one thread runs both
// the connection and the calls (a server with one thread, a shared-memory
// session), both run right here: posting the call and its answer back would
// only add two rounds of the event loop (each a poll of the kernel). Else
// the call runs on the server's threads and `done` is posted back. `done`
// must not outlive what it captures of the connection.
template <typename Call, typename Done>
void dispatch(Connection& connection, Call call, Done done) {
  if (connection.call_executor() == connection.executor()) {
    done(call());
    return;
  }
  boost::asio::post(connection.call_executor(), [&connection, call = std::move(call),
                                                 done = std::move(done)]() mutable {
    auto result = call();
    connection.post([done = std::move(done), result = std::move(result)]() mutable {
      done(std::move(result));
    });
  });
}

// Runs `call` (a streaming handler, which blocks on its reads and writes
// and so must not hold one of the threads that deliver them) on a thread of
// its own, then `done()` on the connection's executor. At most
// ServerOptions::max_streaming_calls run so across the server: beyond, or
// when the system refuses a thread, nothing runs and the status says so
// (RESOURCE_EXHAUSTED). The thread's last act is to post `done`, which may
// hold the connection: the connection never ends on that thread.
template <typename Call, typename Done>
Status start_on_own_thread(Connection& connection, Call call, Done done) {
  CallThreads& threads = connection.call_threads();
  const std::size_t limit = connection.options().max_streaming_calls;
  if (!threads.try_enter(limit))
    return {StatusCode::resource_exhausted,
            "the server runs " + std::to_string(limit) +
                " streaming calls at once, its limit (ServerOptions::max_streaming_calls, "
                "conduit serve --max-streaming-calls); try again once one has ended"};
  try {
    std::thread([&connection, &threads, call = std::move(call), done = std::move(done)]() mutable {
      {
        Call running = std::move(call);  // and what it holds goes before the post
        running();
      }
      connection.post(std::move(done));
      threads.leave();
    }).detach();
  } catch (const std::system_error&) {
    threads.leave();
    return {StatusCode::resource_exhausted, "the system refused the server a thread for the call"};
  }
  return {};
}

}  // namespace conduit::rpc
