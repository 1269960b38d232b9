// How every protocol runs a call, written once: the call's context, the
// deadline rule, where the handler runs, and how many calls a connection may
// have running.
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
#include <string_view>
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

}  // namespace conduit::rpc
