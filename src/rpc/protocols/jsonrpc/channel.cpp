// JsonRpcChannel (conduit/rpc/client_channel.hpp): messages as proto3 JSON
// params and results, error objects as a Status.
#include <boost/asio/post.hpp>
#include <exception>
#include <string>
#include <utility>

#include "conduit/rpc/client_channel.hpp"
#include "rpc/protocols/jsonrpc/json_document.hpp"
#include "rpc/protocols/jsonrpc/proto_json.hpp"
#include "rpc/protocols/jsonrpc/status_mapping.hpp"

namespace conduit::rpc {

namespace {

namespace pb = google::protobuf;

Status status_of(const JsonRpcError& error) {
  const jsonrpc::JsonDocument object(error.error_json(), jsonrpc::kMaxMappingDepth);
  const rapidjson::Value* data = nullptr;
  if (object.ok() && object.root().IsObject()) {
    const auto found = object.root().FindMember("data");
    if (found != object.root().MemberEnd()) data = &found->value;
  }
  return jsonrpc::status_for_error(error.code(), error.what(), data);
}

// The params that carry `request`: none for a type without fields.
Status params_of(const pb::Message& request, std::string& params) {
  if (request.GetDescriptor()->field_count() == 0) return {};
  jsonrpc::JsonWriter writer(params);
  if (Status written = jsonrpc::write_message(request, writer); !written.ok()) {
    return {StatusCode::invalid_argument, written.message()};
  }
  if (params.empty() || (params.front() != '[' && params.front() != '{')) {
    return {StatusCode::invalid_argument, "JSON-RPC params are an array or an object; this " +
                                              request.GetDescriptor()->full_name() + " is " +
                                              params};
  }
  return {};
}

Status read_result(const pb::MethodDescriptor& method, const std::string& result,
                   pb::Message& response) {
  // A method with nothing to return may answer null.
  if (response.GetDescriptor()->field_count() == 0 && result == "null") {
    response.Clear();
    return {};
  }
  const jsonrpc::JsonDocument document(result, jsonrpc::kMaxMappingDepth);
  // Read as a server reads params: Value, ListValue and Struct whole,
  // other messages by name or by position.
  const Status read = document.ok() ? jsonrpc::params_to_message(&document.root(), response)
                                    : Status(StatusCode::internal, "not valid JSON");
  if (!read.ok()) {
    return {StatusCode::internal, "the result of " + method.name() + " is not a " +
                                      response.GetDescriptor()->full_name() + ": " +
                                      read.message()};
  }
  return {};
}

}  // namespace

JsonRpcChannel::JsonRpcChannel(std::string_view uri, std::chrono::milliseconds timeout)
    : uri_(uri),
      timeout_(timeout),
      most_connections_(uri.starts_with("http://") ? kMostHttpConnections : 1) {
  // The first connection's client checks the URI at once (InvalidUri).
  idle_.push_back(std::make_unique<JsonRpcClient>(uri, timeout));
  opened_ = 1;
}

Status JsonRpcChannel::call(const pb::MethodDescriptor& method, const pb::Message& request,
                            pb::Message& response, const CallOptions& options) {
  std::string params;
  if (Status written = params_of(request, params); !written.ok()) return written;
  const std::chrono::milliseconds timeout =
      options.timeout.count() > 0 ? options.timeout : timeout_;
  // A connection no other call holds: an idle one, a new one while there
  // are fewer than the most, or the first returned, up to the timeout.
  std::unique_ptr<JsonRpcClient> client;
  {
    std::unique_lock lock(mutex_);
    if (!returned_.wait_for(lock, timeout,
                            [this] { return !idle_.empty() || opened_ < most_connections_; }))
      return {StatusCode::deadline_exceeded,
              "the call's deadline passed while the channel's other calls held its connections"};
    if (!idle_.empty()) {
      client = std::move(idle_.back());
      idle_.pop_back();
    } else {
      ++opened_;
    }
  }
  if (!client) client = std::make_unique<JsonRpcClient>(uri_, timeout);
  struct GiveBack {
    JsonRpcChannel& channel;
    std::unique_ptr<JsonRpcClient>& client;
    ~GiveBack() {
      {
        std::lock_guard lock(channel.mutex_);
        channel.idle_.push_back(std::move(client));
      }
      channel.returned_.notify_one();
    }
  } give_back{*this, client};
  client->set_timeout(timeout);
  struct Unhook {
    CallCanceller* canceller;
    ~Unhook() {
      if (canceller) canceller->clear_hook();
    }
  } unhook{options.canceller.get()};
  if (options.canceller &&
      !options.canceller->set_hook([client = client.get()] { client->abort(); }))
    return {StatusCode::cancelled, "the call was cancelled by the client"};
  try {
    client->set_headers(options.metadata);
  } catch (const Error& error) {
    return {StatusCode::invalid_argument, error.what()};
  }
  if (options.received) options.received->clear();  // JSON-RPC answers with none
  std::string result;
  try {
    result = client->call(method.name(), params);
  } catch (const JsonRpcError& error) {
    return status_of(error);
  } catch (const PeerGone& error) {
    return {StatusCode::unavailable, error.what()};
  } catch (const SystemError& error) {
    return {StatusCode::unavailable, error.what()};
  } catch (const ProtocolError& error) {
    return {StatusCode::internal, error.what()};
  } catch (const Timeout& error) {
    return {StatusCode::deadline_exceeded, error.what()};
  } catch (const Cancelled& error) {
    return {StatusCode::cancelled, error.what()};
  } catch (const Error& error) {
    // The others come from finding the server: a host name that does not
    // resolve, a shm: server that never sent its rings.
    return {StatusCode::unavailable, error.what()};
  } catch (const std::exception& error) {
    return {StatusCode::internal, error.what()};
  }
  return read_result(method, result, response);
}

boost::asio::any_io_executor JsonRpcChannel::executor() {
  std::lock_guard lock(mutex_);
  if (!threads_) threads_.emplace(most_connections_);
  return threads_->get_executor();
}

void JsonRpcChannel::start(const pb::MethodDescriptor& method, const pb::Message& request,
                           pb::Message& response, const CallOptions& options,
                           std::function<void(Status)> done) {
  std::shared_ptr<pb::Message> copy(request.New());
  copy->CopyFrom(request);
  boost::asio::post(executor(), [this, &method, copy, &response, options, done = std::move(done)] {
    done(call(method, *copy, response, options));
  });
}

}  // namespace conduit::rpc
