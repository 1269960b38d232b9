// Services written once against a .proto, callable from every protocol.
//
// A method is known by its protobuf descriptor, "package.Service/Method".
// Handlers take and fill protobuf messages: typed (generated classes) or
// dynamic (any message of the descriptor's type). Each protocol maps its own
// wire values to the request message and the response message back, in its
// own folder; the table only finds methods and runs their handlers.
#pragma once

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "conduit/rpc/call_context.hpp"
#include "conduit/rpc/status.hpp"

namespace conduit::rpc {

using Handler = std::function<Status(CallContext& context, const google::protobuf::Message& request,
                                     google::protobuf::Message& response)>;

// The messages a streaming call receives, one at a time, as the client sends
// them. read() blocks until the next one has arrived and fills `message`
// with it; false when the client has sent its last one, or when the call was
// cancelled (CallContext::cancelled()) or the message did not parse.
class MessageReader {
 public:
  virtual ~MessageReader() = default;
  virtual bool read(google::protobuf::Message& message) = 0;
};

// The messages a streaming call sends. write() returns once the message is
// queued (it blocks while too much is queued); false when the call is gone
// (cancelled, the client went away), and then the handler should return.
class MessageWriter {
 public:
  virtual ~MessageWriter() = default;
  virtual bool write(const google::protobuf::Message& message) = 0;
};

// A handler of a client-streaming, server-streaming or bidirectional
// method: it reads requests and writes responses as it likes, and returns
// the call's status. It runs on a thread of its own, so it may block.
using StreamHandler =
    std::function<Status(CallContext& context, MessageReader& requests, MessageWriter& responses)>;

// Typed views of the two, for handlers of generated message types.
template <typename Message>
class StreamReader {
 public:
  explicit StreamReader(MessageReader& reader) : reader_(reader) {}
  bool read(Message& message) { return reader_.read(message); }

 private:
  MessageReader& reader_;
};

template <typename Message>
class StreamWriter {
 public:
  explicit StreamWriter(MessageWriter& writer) : writer_(writer) {}
  bool write(const Message& message) { return writer_.write(message); }

 private:
  MessageWriter& writer_;
};

class Method {
 public:
  // A unary method. Throws Error when the descriptor's method streams.
  Method(const google::protobuf::MethodDescriptor& descriptor,
         const google::protobuf::Message& request_prototype,
         const google::protobuf::Message& response_prototype, Handler handler);
  // A streaming method (any of the three kinds). Throws Error when the
  // descriptor's method is unary.
  Method(const google::protobuf::MethodDescriptor& descriptor,
         const google::protobuf::Message& request_prototype,
         const google::protobuf::Message& response_prototype, StreamHandler handler);

  // Whether requests, responses or both are streams.
  bool streams() const { return static_cast<bool>(stream_handler_); }
  // Runs a streaming method's handler, as invoke() does a unary one.
  Status invoke_stream(CallContext& context, MessageReader& requests,
                       MessageWriter& responses) const;

  // "package.Service/Method".
  const std::string& full_name() const { return full_name_; }
  const google::protobuf::MethodDescriptor& descriptor() const { return *descriptor_; }
  const google::protobuf::Message& request_prototype() const { return *request_prototype_; }
  const google::protobuf::Message& response_prototype() const { return *response_prototype_; }
  // Runs the handler; a handler that throws gives INTERNAL with the what().
  // A streaming method answers UNIMPLEMENTED: it cannot be called with one
  // request and one response.
  Status invoke(CallContext& context, const google::protobuf::Message& request,
                google::protobuf::Message& response) const;

 private:
  void check_types() const;

  const google::protobuf::MethodDescriptor* descriptor_;
  const google::protobuf::Message* request_prototype_;
  const google::protobuf::Message* response_prototype_;
  Handler handler_;
  StreamHandler stream_handler_;
  std::string full_name_;
};

// Every method a server offers. Filled before serving, then read-only (and
// safe to call from any number of threads).
class ServiceTable {
 public:
  ServiceTable();
  ~ServiceTable();
  ServiceTable(const ServiceTable&) = delete;
  ServiceTable& operator=(const ServiceTable&) = delete;

  // Adds a method of a generated service. `full_name` is
  // "package.Service/Method"; Request and Response must be its types.
  // Throws Error when the name is unknown to the generated pool, the types do
  // not match, or the method is already there.
  template <typename Request, typename Response>
  void add(const std::string& full_name,
           std::function<Status(CallContext&, const Request&, Response&)> handler) {
    add_method(full_name, Request::default_instance(), Response::default_instance(),
               [handler = std::move(handler)](CallContext& context,
                                              const google::protobuf::Message& request,
                                              google::protobuf::Message& response) {
                 return handler(context, static_cast<const Request&>(request),
                                static_cast<Response&>(response));
               });
  }

  // Adds a server-streaming method: one request in, any number of responses
  // out. A call without its one request fails with INTERNAL.
  template <typename Request, typename Response>
  void add_server_stream(
      const std::string& full_name,
      std::function<Status(CallContext&, const Request&, StreamWriter<Response>&)> handler) {
    add_stream_method(full_name, Request::default_instance(), Response::default_instance(),
                      [handler = std::move(handler)](CallContext& context, MessageReader& requests,
                                                     MessageWriter& responses) {
                        Request request;
                        if (!requests.read(request))
                          return Status(StatusCode::internal, "the call has no request message");
                        StreamWriter<Response> writer(responses);
                        return handler(context, request, writer);
                      });
  }

  // Adds a client-streaming method: any number of requests in, one response
  // out (sent when the handler returns OK).
  template <typename Request, typename Response>
  void add_client_stream(
      const std::string& full_name,
      std::function<Status(CallContext&, StreamReader<Request>&, Response&)> handler) {
    add_stream_method(full_name, Request::default_instance(), Response::default_instance(),
                      [handler = std::move(handler)](CallContext& context, MessageReader& requests,
                                                     MessageWriter& responses) {
                        StreamReader<Request> reader(requests);
                        Response response;
                        Status status = handler(context, reader, response);
                        if (status.ok() && !responses.write(response))
                          return Status(StatusCode::cancelled,
                                        "the call ended before its response");
                        return status;
                      });
  }

  // Adds a bidirectional-streaming method.
  template <typename Request, typename Response>
  void add_bidi_stream(
      const std::string& full_name,
      std::function<Status(CallContext&, StreamReader<Request>&, StreamWriter<Response>&)>
          handler) {
    add_stream_method(full_name, Request::default_instance(), Response::default_instance(),
                      [handler = std::move(handler)](CallContext& context, MessageReader& requests,
                                                     MessageWriter& responses) {
                        StreamReader<Request> reader(requests);
                        StreamWriter<Response> writer(responses);
                        return handler(context, reader, writer);
                      });
  }

  // Adds a method whose handler works on messages of any type (dynamic
  // messages built from the descriptor).
  void add_dynamic(const google::protobuf::MethodDescriptor& method, Handler handler);
  void add_dynamic(const google::protobuf::MethodDescriptor& method, StreamHandler handler);

  // Finds a method by "package.Service/Method", "/package.Service/Method",
  // "package.Service.Method", or by its bare name when only one service has
  // it. nullptr when none.
  const Method* find(std::string_view name) const;
  std::vector<const Method*> methods() const;

 private:
  void add_method(const std::string& full_name, const google::protobuf::Message& request,
                  const google::protobuf::Message& response, Handler handler);
  void add_stream_method(const std::string& full_name, const google::protobuf::Message& request,
                         const google::protobuf::Message& response, StreamHandler handler);
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace conduit::rpc
