// A server that offers one ServiceTable on every protocol it knows, on every
// listener it is given. The protocol of each connection is picked from its
// first bytes (HTTP/1.1 request line, a JSON text, a Content-Length header,
// ...), so one port serves them all.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <functional>
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

  // What a client can make the server hold of its requests (HTTP/2 flow
  // control does the waiting: a client may send only as far as the
  // server's window for the call, and for the connection).
  // Request bytes a streaming call may hold that its handler has not read,
  // beyond the message it waits for: past it, the call's window opens only
  // as the handler reads, and the client waits. A call holds at most this,
  // one message and one window (1 MiB) more.
  std::size_t stream_buffer_bytes = 1 << 20;
  // Request bytes one connection may hold across its calls that no handler
  // has taken yet (unary requests still arriving, streaming requests not
  // yet read). A call whose bytes would take it beyond ends
  // RESOURCE_EXHAUSTED, and what it held is let go. Never less than one
  // largest message (max_message_bytes) whatever is set.
  std::size_t connection_buffer_bytes = 32 << 20;
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
  // Connections open at once over tcp and unix listeners (shm+unix:
  // clients are counted apart, up to the same number). At the limit a new
  // connection takes the slot of the one idle longest (one between calls,
  // or one that has not yet brought its first call), which is closed
  // (HTTP/2: GOAWAY); only when every connection is busy is the new one
  // closed at once. Running out of file descriptors before the limit is met
  // the same way.
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
  // A request must arrive whole within this time once it has started, and a
  // connection idle (between calls) this long is closed; before its first
  // call, handshake_timeout bounds a connection as well.
  std::chrono::milliseconds request_timeout{10'000};
  std::chrono::milliseconds idle_timeout{300'000};
  // The longest any call may run, in every protocol: its deadline is the
  // earlier of this and the client's own (gRPC's grpc-timeout); a call past
  // its deadline ends DEADLINE_EXCEEDED. 0: no limit of the server's.
  std::chrono::milliseconds call_timeout{0};
  // Data bytes of each of the two rings a shm+unix: client gets (a power of
  // two); a message may take half. Pages are touched only as the rings fill.
  std::size_t shm_ring_bytes = 8 << 20;
  // A shm+unix: client must attach to the rings it is handed within this
  // time, or its connection is closed. Until then it holds a thread, its
  // socket and the rings' memory, as every connected shm+unix: client does
  // until its socket hangs up (it closed the connection or died).
  std::chrono::milliseconds shm_attach_timeout{5'000};

  // ---- Who may take a connection slot, and for how long ----
  // A connection (tcp, unix, shm+unix) must bring its first whole call
  // within handshake_timeout of being accepted, or it is closed: a client
  // that connects and sends nothing, or only part of a request, holds a slot
  // no longer than this. After the first call the idle and request timeouts
  // apply. 0: no bound but those. Not applied to serve_stdio()'s peer.
  std::chrono::milliseconds handshake_timeout{5'000};
  // Permission bits of the socket files of unix: and shm+unix: listeners,
  // whatever the umask: 0600, the server's user only; 0660, its group too;
  // 0666, anyone. An abstract socket (unix:@name, shm+unix:@name) has no
  // file: a peer is admitted by the same bits held against its credentials
  // (SO_PEERCRED): its uid the server's, its gid the server's with group
  // permission, anyone with others' permission; anyone else is closed at
  // once. REQUIRES: bits of 0777 only, the owner's read and write among them
  // (listen() throws Error otherwise).
  mode_t unix_socket_mode = 0600;
  // Where the server reports trouble it handles itself, one line each (no
  // newline): running out of file descriptors, peers an abstract socket
  // refused. Each kind at most once per 10 s, with how often it happened
  // meanwhile. Called on the server's threads. Empty: standard error.
  std::function<void(std::string_view line)> log;

  // Streaming calls (client, server or bidirectional) running at once
  // across the server: each holds a thread of its own while its handler
  // runs, since the handler blocks on its reads and writes. One more ends
  // RESOURCE_EXHAUSTED at once, its handler not run.
  std::size_t max_streaming_calls = 256;

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
