// What a handler knows about the call it serves, whatever the protocol.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "conduit/ipc/unix_socket.hpp"  // PeerCredentials

namespace conduit::rpc {

// Who called: a network address ("127.0.0.1:53412", "unix:/run/x.sock",
// "stdio", "shm+unix:/path"), and on UNIX sockets the caller's credentials as the
// kernel recorded them (SO_PEERCRED).
struct Peer {
  std::string address;
  std::optional<ipc::PeerCredentials> credentials;
};

class CallContext {
 public:
  using Clock = std::chrono::steady_clock;

  // A call of its own: cancelled only by cancel().
  CallContext() : cancelled_(std::make_shared<std::atomic<bool>>(false)) {}
  // A call cancelled whenever `flag` is set (a connection's or a stream's).
  // REQUIRES: flag is not null.
  explicit CallContext(std::shared_ptr<std::atomic<bool>> flag) : cancelled_(std::move(flag)) {}

  // The protocol the call came in on: "jsonrpc", "grpc", "xmlrpc", "giop".
  std::string protocol;
  Peer peer;
  // Request metadata (gRPC's custom headers; the headers of a request over
  // HTTP/1.1 but those of the transport: Host, Content-Length, Content-Type,
  // Connection, ...), lower-case keys; a key may repeat.
  std::multimap<std::string, std::string> metadata;
  // Metadata the handler wants sent back (initial metadata / HTTP headers).
  std::multimap<std::string, std::string> response_metadata;
  // Metadata sent after the response (gRPC trailers); protocols without
  // trailers drop it.
  std::multimap<std::string, std::string> response_trailers;
  // Whether the request came compressed (gRPC's grpc-encoding), and whether
  // the handler wants its response compressed: it is, when the client
  // accepts an encoding the server has.
  bool request_compressed = false;
  bool compress_response = false;
  // When the caller stops waiting; std::nullopt: never.
  std::optional<Clock::time_point> deadline;

  // Set when the caller cancelled or went away; handlers that take long
  // should look at it.
  bool cancelled() const {
    return cancelled_->load(std::memory_order_relaxed) || (watch_ && caller_gone());
  }
  void cancel() { cancelled_->store(true, std::memory_order_relaxed); }
  // True once the deadline has passed.
  bool expired() const { return deadline && Clock::now() >= *deadline; }
  // Shares the cancellation flag with whoever cancels (a connection).
  std::shared_ptr<std::atomic<bool>> cancellation_flag() const { return cancelled_; }
  // Makes this call cancelled whenever `flag` is set (a connection's flag).
  void share_cancellation(std::shared_ptr<std::atomic<bool>> flag) { cancelled_ = std::move(flag); }
  // Makes cancelled() also ask `gone` whether the caller went away, at most
  // once a millisecond, for a call that nothing else watches while its
  // handler runs (a request over HTTP/1.1): once `gone` says yes, the call
  // is cancelled. `gone` may be asked from any thread, after the call too.
  void watch_caller(std::function<bool()> gone);

 private:
  struct Watch;
  bool caller_gone() const;

  std::shared_ptr<std::atomic<bool>> cancelled_;
  std::shared_ptr<Watch> watch_;
};

}  // namespace conduit::rpc
