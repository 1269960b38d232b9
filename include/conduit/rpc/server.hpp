// A server that offers one ServiceTable on every protocol it knows, on every
// listener it is given. The protocol of each connection is picked from its
// first bytes (HTTP/1.1 request line, a JSON text, a Content-Length header,
// ...), so one port serves them all.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "conduit/rpc/service.hpp"

namespace conduit::rpc {

// gRPC's own options (ServerOptions::grpc).
struct GrpcServerOptions {
  // Largest request message (gRPC's own default; RESOURCE_EXHAUSTED
  // beyond).
  std::size_t max_message_bytes = 4 << 20;
  // Keepalive (gRPC's GRPC_ARG_KEEPALIVE_TIME_MS and _TIMEOUT_MS, with a
  // server's defaults): a connection on which nothing arrived for
  // keepalive_time is sent a PING, and closed when the ACK is not back
  // within keepalive_timeout.
  std::chrono::milliseconds keepalive_time{2 * 3600 * 1000};
  std::chrono::milliseconds keepalive_timeout{20'000};
  // A client's PING that comes sooner than this after its last one, with no
  // response headers or data sent in between, is a strike; the third gets
  // GOAWAY ENHANCE_YOUR_CALM "too_many_pings" (gRPC's
  // min_recv_ping_interval_without_data and max_ping_strikes = 2).
  std::chrono::milliseconds min_ping_interval{300'000};
};

// JSON-RPC's own options (ServerOptions::jsonrpc).
struct JsonRpcServerOptions {
  // JSON nesting depth and batch length a request may have.
  int max_depth = 64;
  std::size_t max_batch = 1024;
};

struct ServerOptions {
  // Threads running handlers and I/O; 0: one per CPU.
  std::size_t threads = 0;
  // Connections open at once; more are accepted and closed at once.
  std::size_t max_connections = 1024;
  // Calls one connection may have running at once, where its protocol lets
  // replies come back in any order (JSON-RPC over lines or Content-Length
  // framing); the server reads no further request of that connection until
  // one of them has answered. HTTP/1.1 answers in order, one call at a time.
  std::size_t max_calls_per_connection = 32;
  // Bytes of replies one such connection may have waiting for its peer to
  // read them: while they reach this, the server reads no further request of
  // that connection, so a peer that sends calls and never reads the replies
  // is held back by its own socket, and the server holds at most this plus
  // the replies of the calls then in flight for it. A reply larger than this
  // still goes out whole; 0 is taken as 1 (no request read while any reply
  // waits). HTTP/1.1 writes each reply before it reads the next request.
  std::size_t max_queued_reply_bytes = 1 << 20;
  // Largest request (HTTP body, JSON text, framed message).
  std::size_t max_message_bytes = 16 << 20;
  // A request must arrive whole within this time once it has started, and an
  // idle connection is closed after idle_timeout.
  std::chrono::milliseconds request_timeout{10'000};
  std::chrono::milliseconds idle_timeout{300'000};
  // The longest any call may run, in every protocol: its deadline is the
  // earlier of this and the client's own (gRPC's grpc-timeout); a call past
  // its deadline ends DEADLINE_EXCEEDED. 0: no limit of the server's.
  std::chrono::milliseconds call_timeout{0};
  // Data bytes of each of the two rings a shm+unix: client gets (a power of
  // two); a message may take half. Pages are touched only as the rings fill.
  std::size_t shm_ring_bytes = 8 << 20;

  // Each protocol's own.
  GrpcServerOptions grpc;
  JsonRpcServerOptions jsonrpc;
};

class Server {
 public:
  // `services` must outlive the server.
  explicit Server(const ServiceTable& services, ServerOptions options = {});
  ~Server();  // shutdown(0)
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Listens on "tcp://HOST:PORT" (PORT 0 picks one), "unix:/path" /
  // "unix:@name", or "shm+unix:/path": a UNIX socket at /path over which
  // each client is handed two shared-memory rings, then served through them
  // by a thread of its own. Returns the address peers use (the real port).
  // Throws InvalidUri or SystemError naming the address.
  std::string listen(std::string_view uri);

  // Starts serving on the threads; returns at once.
  void start();

  // Serves one peer on the descriptors `in` and `out` (a spawned child's
  // stdin and stdout): returns when the peer closes `in` or on shutdown.
  void serve_stdio(int in, int out);

  // Stops accepting, lets calls in flight finish for at most `grace`, then
  // closes every connection and stops the threads. Idempotent.
  void shutdown(std::chrono::milliseconds grace = std::chrono::seconds(5));

  // Blocks until shutdown() has finished (from another thread or a signal).
  void wait();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace conduit::rpc
