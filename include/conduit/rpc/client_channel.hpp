// Calling a service from a client, whatever the protocol. A ClientChannel
// makes calls: a request message out, a response message or a Status back
// (call), or messages as they go for a streaming method (open). Every
// channel may be shared by threads, and every call has an asynchronous
// form too: a callback, or a C++20 coroutine through Asio's completion
// tokens. The stubs protoc-gen-conduit generates (FooStub beside a service
// Foo, in foo.conduit.h) make their calls through one:
//
//   conduit::rpc::JsonRpcChannel channel("tcp://127.0.0.1:4000");
//   conduit::interop::JsonRpcExamplesStub examples(channel);
//   google::protobuf::Value difference = examples.subtract(request);
//
//   // in a coroutine:
//   Status status = co_await channel.async_call(method, request, response, {},
//                                               boost::asio::use_awaitable);
#pragma once

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "conduit/error.hpp"
#include "conduit/rpc/jsonrpc_client.hpp"
#include "conduit/rpc/status.hpp"

namespace conduit::rpc {

// Gives a call up from any thread, as gRPC C++'s ClientContext::TryCancel
// does: put it in CallOptions::canceller, then cancel(). The call ends
// CANCELLED at once (a blocking call returns, an asynchronous one
// completes) and the server hears of it where the protocol can say so (an
// HTTP/2 RST_STREAM). Cancelling a call that has ended does nothing.
class CallCanceller {
 public:
  void cancel();
  bool cancelled() const;

  // For channels: `hook` runs at cancel(), or at once (returning false)
  // when cancel() came first. clear_hook() when the call ends.
  bool set_hook(std::function<void()> hook);
  void clear_hook();

 private:
  mutable std::mutex mutex_;
  bool cancelled_ = false;
  std::function<void()> hook_;
};

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
  // When set, cancel() on it gives the call up (any thread).
  std::shared_ptr<CallCanceller> canceller{};
};

namespace detail {

// Starts an operation that reports its end through the function given to
// `start` (on any thread), as an Asio asynchronous operation: the
// completion handler runs on its associated executor (`fallback` when it
// has none, which is where a plain callback runs), and an Asio cancellation
// (a coroutine's `||` with a timer, a cancellation slot) runs `cancel`.
// The handler's executor must outlive the channel: the channel's thread
// may still be returning from its post there when the handler has run.
template <typename Signature, typename Token, typename Start>
auto initiate(Token&& token, boost::asio::any_io_executor fallback, std::function<void()> cancel,
              Start start) {
  return boost::asio::async_initiate<Token, Signature>(
      [fallback = std::move(fallback), cancel = std::move(cancel),
       start = std::move(start)](auto handler) mutable {
        auto slot = boost::asio::get_associated_cancellation_slot(handler);
        if (slot.is_connected() && cancel)
          slot.assign([cancel](boost::asio::cancellation_type) { cancel(); });
        auto executor = boost::asio::get_associated_executor(handler, fallback);
        auto shared = std::make_shared<decltype(handler)>(std::move(handler));
        start([shared, executor](auto... results) {
          boost::asio::post(executor, [shared, results...]() mutable {
            boost::asio::get_associated_cancellation_slot(*shared).clear();
            std::move (*shared)(std::move(results)...);
          });
        });
      },
      token);
}

}  // namespace detail

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
// (serialized), then its Status. One operation of each kind at a time (a
// read may be under way while a write is); destroying it before finish()
// cancels the call. It must not outlive its channel.
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

  // The same without waiting: `done` runs once, on a thread of the
  // channel, which it must not block. `message` of start_read must live
  // until then.
  virtual void start_write(std::string message, std::function<void(bool)> done) = 0;
  virtual void start_read(std::string& message, std::function<void(bool)> done) = 0;
  virtual void start_finish(std::function<void(Status)> done) = 0;
  // Where the callbacks of the async_ forms run unless their handler has an
  // executor of its own.
  virtual boost::asio::any_io_executor executor() const = 0;

  // The asynchronous forms with an Asio completion token: a callback
  // (run on executor()), boost::asio::use_awaitable in a coroutine, ...
  // An Asio cancellation cancels the call.
  template <typename Token>
  auto async_write(std::string message, Token&& token) {
    return detail::initiate<void(bool)>(
        std::forward<Token>(token), executor(), [this] { cancel(); },
        [this, message = std::move(message)](auto done) mutable {
          start_write(std::move(message), std::move(done));
        });
  }
  template <typename Token>
  auto async_read(std::string& message, Token&& token) {
    return detail::initiate<void(bool)>(
        std::forward<Token>(token), executor(), [this] { cancel(); },
        [this, &message](auto done) { start_read(message, std::move(done)); });
  }
  template <typename Token>
  auto async_finish(Token&& token) {
    return detail::initiate<void(Status)>(
        std::forward<Token>(token), executor(), [this] { cancel(); },
        [this](auto done) { start_finish(std::move(done)); });
  }
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

  // call() without waiting: `done` runs once with the call's Status, on a
  // thread of the channel, which it must not block (and which must not make
  // blocking calls on this channel). `request` is taken before start()
  // returns; `response` must live until `done` runs.
  virtual void start(const google::protobuf::MethodDescriptor& method,
                     const google::protobuf::Message& request, google::protobuf::Message& response,
                     const CallOptions& options, std::function<void(Status)> done) = 0;

  // Where the callbacks of async_call run unless their handler has an
  // executor of its own: the channel's own thread(s).
  virtual boost::asio::any_io_executor executor() = 0;

  // call() as an Asio asynchronous operation completing with the Status:
  //   channel.async_call(method, request, response, {}, [](Status s) {...});
  //   Status s = co_await channel.async_call(method, request, response, {},
  //                                          boost::asio::use_awaitable);
  // An Asio cancellation (or options.canceller) cancels the call.
  template <typename Token>
  auto async_call(const google::protobuf::MethodDescriptor& method,
                  const google::protobuf::Message& request, google::protobuf::Message& response,
                  CallOptions options, Token&& token) {
    if (!options.canceller) options.canceller = std::make_shared<CallCanceller>();
    std::shared_ptr<CallCanceller> canceller = options.canceller;
    return detail::initiate<void(Status)>(
        std::forward<Token>(token), executor(), [canceller] { canceller->cancel(); },
        [this, &method, &request, &response, options = std::move(options)](auto done) {
          start(method, request, response, options, std::move(done));
        });
  }
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
    return parsed(stream_->read(bytes), bytes, response);
  }
  Status finish() { return checked(stream_->finish()); }
  void cancel() { stream_->cancel(); }

  // The same as Asio asynchronous operations (see ClientStream).
  template <typename Token>
  auto async_read(Response& response, Token&& token) {
    return detail::initiate<void(bool)>(
        std::forward<Token>(token), stream_->executor(), [this] { cancel(); },
        [this, &response](auto done) {
          auto bytes = std::make_shared<std::string>();
          stream_->start_read(*bytes, [this, bytes, &response, done](bool got) {
            done(parsed(got, *bytes, response));
          });
        });
  }
  template <typename Token>
  auto async_finish(Token&& token) {
    return detail::initiate<void(Status)>(
        std::forward<Token>(token), stream_->executor(), [this] { cancel(); },
        [this](auto done) {
          stream_->start_finish([this, done](Status status) { done(checked(std::move(status))); });
        });
  }

 protected:
  bool parsed(bool got, const std::string& bytes, Response& response) {
    if (!got) return false;
    if (response.ParseFromString(bytes)) return true;
    stream_->cancel();
    bad_ = true;
    return false;
  }
  Status checked(Status status) const {
    if (bad_)
      return {StatusCode::internal, "a response is not a valid " + Response().GetTypeName()};
    return status;
  }

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
    return answer(stream_->finish(), got, bytes, response);
  }
  void cancel() { stream_->cancel(); }

  // The same as Asio asynchronous operations (see ClientStream).
  template <typename Token>
  auto async_write(const Request& request, Token&& token) {
    return stream_->async_write(request.SerializeAsString(), std::forward<Token>(token));
  }
  template <typename Token>
  auto async_finish(Response& response, Token&& token) {
    return detail::initiate<void(Status)>(
        std::forward<Token>(token), stream_->executor(), [this] { cancel(); },
        [this, &response](auto done) {
          stream_->writes_done();
          auto bytes = std::make_shared<std::string>();
          stream_->start_read(*bytes, [this, bytes, &response, done](bool got) {
            stream_->start_finish([bytes, &response, done, got](Status status) {
              done(answer(std::move(status), got, *bytes, response));
            });
          });
        });
  }

 private:
  static Status answer(Status status, bool got, const std::string& bytes, Response& response) {
    if (!status.ok()) return status;
    if (!got) return {StatusCode::internal, "the call ended without its response"};
    if (!response.ParseFromString(bytes))
      return {StatusCode::internal, "the response is not a valid " + response.GetTypeName()};
    return status;
  }

  std::unique_ptr<ClientStream> stream_;
};

// A bidirectional-streaming call: requests and responses as they go.
template <typename Request, typename Response>
class ClientReaderWriter : public ClientReader<Response> {
 public:
  using ClientReader<Response>::ClientReader;
  bool write(const Request& request) { return this->stream_->write(request.SerializeAsString()); }
  void writes_done() { this->stream_->writes_done(); }
  template <typename Token>
  auto async_write(const Request& request, Token&& token) {
    return this->stream_->async_write(request.SerializeAsString(), std::forward<Token>(token));
  }
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
// Safe to share between threads, with many calls at once. Over a raw stream
// or shared memory every call goes out at once on the channel's one
// connection, with an id of its own, and each reply is matched to its call
// by id in whatever order the server answers (driven by the channel's own
// I/O thread). Over http:// calls run side by side on a small pool of
// connections (up to kMostHttpConnections, opened as they are needed and
// kept), each call waiting for a connection up to its own timeout; their
// asynchronous forms run on the channel's own threads, one per connection.
// Cancelling a call ends it CANCELLED at once; the server hears of it by the
// call's connection closing (over a raw stream, when no other call waits on
// it).
class JsonRpcChannel : public ClientChannel {
 public:
  // Throws InvalidUri for a URI JsonRpcClient cannot use; connects on the
  // first call. `timeout` is how long each call waits unless its
  // CallOptions say otherwise.
  explicit JsonRpcChannel(std::string_view uri,
                          std::chrono::milliseconds timeout = std::chrono::seconds(30));
  ~JsonRpcChannel() override;

  Status call(const google::protobuf::MethodDescriptor& method,
              const google::protobuf::Message& request, google::protobuf::Message& response,
              const CallOptions& options) override;
  void start(const google::protobuf::MethodDescriptor& method,
             const google::protobuf::Message& request, google::protobuf::Message& response,
             const CallOptions& options, std::function<void(Status)> done) override;
  boost::asio::any_io_executor executor() override;

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
  std::optional<boost::asio::thread_pool> threads_;   // for start(), made when first needed
  class Mux;
  std::unique_ptr<Mux> mux_;  // the connection of a raw stream or shared memory
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
