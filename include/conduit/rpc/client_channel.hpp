// Calling a service from a client, whatever the protocol. A ClientChannel
// makes calls: a request message out, a response message or a Status back
// (call), or messages as they go for a streaming method (open). Every
// channel may be shared by threads. The stubs protoc-gen-conduit generates
// (FooStub beside a service Foo, in foo.conduit.h) make their calls through
// one:
//
//   conduit::rpc::JsonRpcChannel channel("tcp://127.0.0.1:4000");
//   conduit::interop::JsonRpcExamplesStub examples(channel);
//   google::protobuf::Value difference = examples.subtract(request);
#pragma once

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "conduit/error.hpp"
#include "conduit/rpc/jsonrpc_client.hpp"
#include "conduit/rpc/status.hpp"

namespace conduit::rpc {

// What one call may ask of the channel beyond the request itself.
struct CallOptions {
  // How long to wait for the reply; 0: the channel's own timeout.
  std::chrono::milliseconds timeout{0};
  // Sent with the call, lower-case names: gRPC metadata ("-bin" names carry
  // bytes), HTTP headers for JSON-RPC over http:// (a handler reads them in
  // CallContext::metadata either way). JSON-RPC over a raw stream or shared
  // memory has nowhere to put them: such a call fails INVALID_ARGUMENT.
  std::multimap<std::string, std::string> metadata{};
  // When not null, the server's response metadata lands here (gRPC: its
  // headers and trailers).
  std::multimap<std::string, std::string>* received = nullptr;
};

// A failed call, thrown by the stubs' forms that return the response.
class RpcError : public Error {
 public:
  // REQUIRES: !status.ok().
  explicit RpcError(Status status);
  const Status& status() const { return status_; }

 private:
  Status status_;
};

// A call of a streaming method in progress, as ClientChannel::open() makes
// it: request messages written and response messages read one at a time
// (serialized), then its Status. One thread at a time; destroying it before
// finish() cancels the call.
class ClientStream {
 public:
  virtual ~ClientStream() = default;
  // Sends one request; false once the call has ended (finish() says why).
  virtual bool write(std::string_view message) = 0;
  // No more requests.
  virtual void writes_done() = 0;
  // The next response; false at the end of the responses.
  virtual bool read(std::string& message) = 0;
  // Waits for the call's end: the server's Status, or why it failed. Once.
  virtual Status finish() = 0;
  // Gives the call up: finish() then says CANCELLED.
  virtual void cancel() = 0;
};

// A connection to a server, in one protocol. A channel is a resource: it is
// neither copied nor moved, and the stubs that use it keep a reference to it.
// Safe to call from several threads at once.
class ClientChannel {
 public:
  ClientChannel() = default;
  virtual ~ClientChannel() = default;
  ClientChannel(const ClientChannel&) = delete;
  ClientChannel& operator=(const ClientChannel&) = delete;

  // Calls `method` with `request` and waits for the reply. Returns OK with
  // `response` filled in, or why the call failed: the server's own Status
  // for a failure it reported, UNAVAILABLE when the server cannot be
  // reached, DEADLINE_EXCEEDED when no reply came in time, INTERNAL when
  // the reply does not fit `response`. Never throws for a failed call.
  // REQUIRES: `request` is of the method's input type and `response` of its
  // output type.
  virtual Status call(const google::protobuf::MethodDescriptor& method,
                      const google::protobuf::Message& request, google::protobuf::Message& response,
                      const CallOptions& options) = 0;

  // Opens a call of a streaming method (any kind, unary too); its metadata
  // goes out at once. A protocol that cannot stream returns a stream whose
  // finish() is UNIMPLEMENTED, saying why.
  virtual std::unique_ptr<ClientStream> open(const google::protobuf::MethodDescriptor& method,
                                             const CallOptions& options);
};

// The typed streams the generated stubs return, as gRPC C++ users know them
// (ClientReader, ClientWriter, ClientReaderWriter), in conduit's names.

// Responses of a server-streaming call, read one at a time.
template <typename Response>
class ClientReader {
 public:
  explicit ClientReader(std::unique_ptr<ClientStream> stream) : stream_(std::move(stream)) {}
  // The next response; false at the end (then finish()).
  bool read(Response& response) {
    std::string bytes;
    if (!stream_->read(bytes)) return false;
    if (response.ParseFromString(bytes)) return true;
    stream_->cancel();
    bad_ = true;
    return false;
  }
  Status finish() {
    Status status = stream_->finish();
    if (bad_)
      return {StatusCode::internal, "a response is not a valid " + Response().GetTypeName()};
    return status;
  }
  void cancel() { stream_->cancel(); }

 protected:
  std::unique_ptr<ClientStream> stream_;
  bool bad_ = false;  // a response did not parse: the call was cancelled
};

// Requests of a client-streaming call, written one at a time; finish()
// gives the one response.
template <typename Request, typename Response>
class ClientWriter {
 public:
  explicit ClientWriter(std::unique_ptr<ClientStream> stream) : stream_(std::move(stream)) {}
  bool write(const Request& request) { return stream_->write(request.SerializeAsString()); }
  // Ends the requests, waits for the response, and fills `response`.
  Status finish(Response& response) {
    stream_->writes_done();
    std::string bytes;
    const bool got = stream_->read(bytes);
    Status status = stream_->finish();
    if (!status.ok()) return status;
    if (!got) return {StatusCode::internal, "the call ended without its response"};
    if (!response.ParseFromString(bytes))
      return {StatusCode::internal, "the response is not a valid " + response.GetTypeName()};
    return status;
  }
  void cancel() { stream_->cancel(); }

 private:
  std::unique_ptr<ClientStream> stream_;
};

// A bidirectional-streaming call: requests and responses as they go.
template <typename Request, typename Response>
class ClientReaderWriter : public ClientReader<Response> {
 public:
  using ClientReader<Response>::ClientReader;
  bool write(const Request& request) { return this->stream_->write(request.SerializeAsString()); }
  void writes_done() { this->stream_->writes_done(); }
};

// A channel to a JSON-RPC 2.0 server at any URI JsonRpcClient takes
// ("http://HOST:PORT/PATH", "tcp://HOST:PORT", "unix:/path",
// "shm+unix:/path").
//
// A method is called by its bare name ("subtract"), as JSON-RPC names
// methods; the request goes as params in proto3 JSON (none for a request
// type without fields, such as google.protobuf.Empty), and the result is
// read into the response the way a server reads params: Value, ListValue
// and Struct take the result whole. Error objects become a Status:
//   data.grpc_code present (a handler's failure)  that code
//   -32601 Method not found                       UNIMPLEMENTED
//   -32602 Invalid params                         INVALID_ARGUMENT
//   -32600, -32700, -32603                        INTERNAL
//   any other code                                UNKNOWN
// with the error's message, followed by its data when that is a string (the
// detail conduit's server puts there: "Invalid params: params[1] is ...").
//
// Safe to share between threads. Over http:// calls of several threads run
// at once, on a small pool of connections (up to kMostHttpConnections,
// opened as they are needed and kept); over a raw stream or shared memory
// they go one after another on the channel's one connection. A call waits
// for a connection up to its own timeout.
class JsonRpcChannel : public ClientChannel {
 public:
  // Throws InvalidUri for a URI JsonRpcClient cannot use; connects on the
  // first call. `timeout` is how long each call waits unless its
  // CallOptions say otherwise.
  explicit JsonRpcChannel(std::string_view uri,
                          std::chrono::milliseconds timeout = std::chrono::seconds(30));

  Status call(const google::protobuf::MethodDescriptor& method,
              const google::protobuf::Message& request, google::protobuf::Message& response,
              const CallOptions& options) override;

  // The most connections a channel to an http:// URI opens.
  static constexpr std::size_t kMostHttpConnections = 4;

 private:
  std::string uri_;
  std::chrono::milliseconds timeout_;
  std::size_t most_connections_;
  std::mutex mutex_;
  std::condition_variable returned_;
  std::vector<std::unique_ptr<JsonRpcClient>> idle_;  // connections no call holds
  std::size_t opened_ = 0;                            // idle or in a call
};

// A channel to the server at `uri`, through whichever protocol takes that
// form of URI: "grpc://HOST:PORT" (gRPC), "http://HOST:PORT/jsonrpc"
// (JSON-RPC), ... (`conduit call --help` lists them all). Connects on the
// first call; `timeout` is how long each call waits unless its CallOptions
// say otherwise. Throws InvalidUri listing the forms when no protocol takes
// `uri`.
std::unique_ptr<ClientChannel> make_channel(
    std::string_view uri, std::chrono::milliseconds timeout = std::chrono::seconds(30));

}  // namespace conduit::rpc
