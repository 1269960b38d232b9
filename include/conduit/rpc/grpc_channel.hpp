// A gRPC client: unary calls over HTTP/2 with prior knowledge (h2c), to
// any gRPC server (conduit's, grpcio's, gRPC C++'s). Targets are written as
// gRPC writes them: "HOST:PORT" (or "grpc://HOST:PORT", "[::1]:PORT") and
// "unix:/path" (or "unix:@name" for an abstract socket), and "shm+unix:/path" for
// a conduit server's shm: listener (the same HTTP/2 carried by two
// shared-memory rings; the path names the server's handshake socket). The
// connection is kept between calls and made again when the server has
// closed it (a restart, an idle timeout, GOAWAY).
//
// Threads: safe to share between threads; every call of every thread is an
// HTTP/2 stream of the one connection, all in flight at once. A channel used
// only through blocking calls has no thread of its own: the caller that
// waits does the channel's I/O itself (one at a time, the others waiting for
// their answers or their turn). The first asynchronous use (start(),
// start_raw(), open(), executor()) starts the channel's I/O thread, which
// from then on does all of its I/O and runs every completion. A blocking
// call made on that thread (from a completion) gets FAILED_PRECONDITION.
//
// Streaming methods are called either with all their requests at once
// (call_stream_raw), or through a Stream whose messages are written and read
// as they go (open()).
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "conduit/rpc/client_channel.hpp"

namespace conduit::rpc {

class GrpcChannel : public ClientChannel {
 public:
  // Throws InvalidUri for a target it cannot use; connects on the first call.
  explicit GrpcChannel(std::string_view target,
                       std::chrono::milliseconds timeout = std::chrono::seconds(30));
  ~GrpcChannel() override;
  GrpcChannel(const GrpcChannel&) = delete;
  GrpcChannel& operator=(const GrpcChannel&) = delete;

  // Calls "/package.Service/Method" of `method`: OK with `response` filled,
  // or the status the server sent; UNAVAILABLE when it cannot be reached,
  // DEADLINE_EXCEEDED when no answer came within the timeout (the call is
  // then reset, and the server sees it cancelled).
  Status call(const google::protobuf::MethodDescriptor& method,
              const google::protobuf::Message& request, google::protobuf::Message& response,
              const CallOptions& options) override;

  // A call of any kind, its messages as they go (see Stream); the response
  // headers and trailers land in options.received at finish().
  std::unique_ptr<ClientStream> open(const google::protobuf::MethodDescriptor& method,
                                     const CallOptions& options) override;
  void start(const google::protobuf::MethodDescriptor& method,
             const google::protobuf::Message& request, google::protobuf::Message& response,
             const CallOptions& options, std::function<void(Status)> done) override;
  // The channel's I/O thread (started by this call if it was not).
  boost::asio::any_io_executor executor() override;

  // The same with serialized messages and a path, and request metadata
  // ("-bin" keys carry bytes). The response's headers and trailers are put
  // in `received` when it is not null.
  Status call_raw(std::string_view path, std::string_view request, std::string& response,
                  std::chrono::milliseconds timeout,
                  const std::multimap<std::string, std::string>& metadata = {},
                  std::multimap<std::string, std::string>* received = nullptr);

  // A call of any kind, with all of its requests sent at once: each of
  // `requests` (serialized), then the end of the stream; every response
  // message the server sends lands in `responses`. For a unary or
  // server-streaming method, give exactly one request.
  Status call_stream_raw(std::string_view path, const std::vector<std::string>& requests,
                         std::vector<std::string>& responses, std::chrono::milliseconds timeout,
                         const std::multimap<std::string, std::string>& metadata = {},
                         std::multimap<std::string, std::string>* received = nullptr);

  // call_stream_raw without waiting: `done` runs on the I/O thread once
  // the call has ended, `responses` (which must live until then) filled.
  // options.timeout 0: the channel's timeout.
  void start_raw(std::string_view path, std::vector<std::string> requests,
                 std::vector<std::string>& responses, const CallOptions& options,
                 std::function<void(Status)> done);

  class Stream;
  // Opens a call of any kind to `path` ("/package.Service/Method") whose
  // request and response messages (serialized) go and come one at a time, as
  // gRPC C++'s ClientReaderWriter does; its headers go out at once. The
  // channel's other calls go on beside it. `compress`: the call announces
  // grpc-encoding gzip, and each write() chooses whether its message goes
  // compressed. `canceller`, when set, can give the call up from any thread.
  Stream open(std::string_view path, std::chrono::milliseconds timeout,
              const std::multimap<std::string, std::string>& metadata = {}, bool compress = false);
  Stream open(std::string_view path, std::chrono::milliseconds timeout,
              const std::multimap<std::string, std::string>& metadata, bool compress,
              std::shared_ptr<CallCanceller> canceller);

  // From now on the request messages of call(), call_raw() and
  // call_stream_raw() go gzip-compressed (grpc-encoding: gzip), or not.
  void set_compress_requests(bool compress);

  // The largest response message taken (after gzip expansion); a larger one
  // ends its call with RESOURCE_EXHAUSTED (the stream is reset, the
  // connection stays). 4 MiB unless set, as gRPC's clients default.
  void set_max_response_bytes(std::size_t bytes);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// A call in progress, made by GrpcChannel::open(). Move-only; one read and
// one write may be under way at once (on two threads, or asynchronously).
// Its deadline is the timeout given to open() (0: the channel's), counted
// from then. It must not outlive its channel. The blocking forms wait for
// the asynchronous ones (start_...), whose `done` runs on the channel's I/O
// thread.
class GrpcChannel::Stream {
 public:
  Stream(Stream&&) noexcept;
  Stream& operator=(Stream&&) noexcept;
  // Cancels the call if it has not finished (RST_STREAM: the server sees it
  // cancelled).
  ~Stream();

  // Sends one request message; returns once HTTP/2 flow control has let it
  // go. False when the call has ended (its status: finish()).
  bool write(std::string_view message, bool compress = false);
  // No more requests: the server's reads end.
  void writes_done();
  // The next response message; false once the responses have ended, the
  // call failed or the deadline passed (finish() tells which).
  bool read(std::string& message);
  // Waits for the call to end and returns its status: the server's, or
  // DEADLINE_EXCEEDED, CANCELLED (after cancel()), UNAVAILABLE. Responses
  // not read by then are dropped. Call once.
  Status finish();
  // Gives the call up at once; finish() then returns CANCELLED.
  void cancel();
  // The response headers received so far, and after finish() the trailers
  // ("-bin" values as bytes).
  const std::multimap<std::string, std::string>& received() const;

  void start_write(std::string_view message, bool compress, std::function<void(bool)> done);
  // `message` must live until `done`.
  void start_read(std::string& message, std::function<void(bool)> done);
  void start_finish(std::function<void(Status)> done);
  boost::asio::any_io_executor executor() const;

 private:
  friend class GrpcChannel;
  struct State;
  explicit Stream(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace conduit::rpc
