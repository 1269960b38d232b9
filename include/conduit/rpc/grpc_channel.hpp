// A gRPC client: unary calls over HTTP/2 with prior knowledge (h2c), to
// any gRPC server (conduit's, grpcio's, gRPC C++'s). Targets are written as
// gRPC writes them: "HOST:PORT" (or "grpc://HOST:PORT", "[::1]:PORT") and
// "unix:/path" (or "unix:@name" for an abstract socket), and "shm:/path" for
// a conduit server's shm: listener (the same HTTP/2 carried by two
// shared-memory rings; the path names the server's handshake socket). The
// connection is
// kept between calls and made again when the server has closed it (a
// restart, an idle timeout, GOAWAY). One call at a time.
//
// Streaming methods are called with all their requests at once
// (call_stream_raw); reading and writing a stream as it goes is not there yet.
#pragma once

#include <chrono>
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

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace conduit::rpc
