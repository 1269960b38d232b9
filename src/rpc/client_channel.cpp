#include "conduit/rpc/client_channel.hpp"

#include <rapidjson/document.h>

#include <exception>
#include <string>
#include <utility>

#include "conduit/rpc/service.hpp"

namespace conduit::rpc {

namespace {

namespace pb = google::protobuf;

constexpr int kParseErrorCode = -32700;
constexpr int kInvalidRequestCode = -32600;
constexpr int kMethodNotFoundCode = -32601;
constexpr int kInvalidParamsCode = -32602;
constexpr int kInternalErrorCode = -32603;

StatusCode code_for_jsonrpc_error(int code) {
  switch (code) {
    case kMethodNotFoundCode:
      return StatusCode::unimplemented;
    case kInvalidParamsCode:
      return StatusCode::invalid_argument;
    case kParseErrorCode:
    case kInvalidRequestCode:
    case kInternalErrorCode:
      // The server could not read what this channel wrote, or failed
      // outside the handler: a fault of the plumbing, not of the call.
      return StatusCode::internal;
    default:
      return StatusCode::unknown;
  }
}

// The member `name` of `value` when that is an object; nullptr otherwise.
const rapidjson::Value* member(const rapidjson::Value& value, const char* name) {
  if (!value.IsObject()) return nullptr;
  rapidjson::Value::ConstMemberIterator found = value.FindMember(name);
  return found == value.MemberEnd() ? nullptr : &found->value;
}

Status status_of(const JsonRpcError& error) {
  StatusCode code = code_for_jsonrpc_error(error.code());
  std::string message = error.what();
  rapidjson::Document object;
  object.Parse(error.error_json().data(), error.error_json().size());
  const rapidjson::Value* data = object.HasParseError() ? nullptr : member(object, "data");
  if (data != nullptr && data->IsString()) {
    message += ": ";
    message.append(data->GetString(), data->GetStringLength());
  }
  // conduit's servers (and any that follow them) carry a handler's status
  // in data.grpc_code; it is more exact than the error code.
  const rapidjson::Value* grpc_code = data == nullptr ? nullptr : member(*data, "grpc_code");
  if (grpc_code != nullptr && grpc_code->IsInt()) {
    const int number = grpc_code->GetInt();
    const bool known = number > 0 && number <= static_cast<int>(StatusCode::unauthenticated);
    code = known ? static_cast<StatusCode>(number) : StatusCode::unknown;
  }
  return {code, std::move(message)};
}

// JSON-RPC params are an array or an object, or absent.
bool is_array_or_object(std::string_view json) {
  const std::size_t first = json.find_first_not_of(" \t\r\n");
  return first != std::string_view::npos && (json[first] == '[' || json[first] == '{');
}

// The params that carry `request`: none for a type without fields.
Status params_of(const pb::Message& request, std::string& params) {
  if (request.GetDescriptor()->field_count() == 0) return {};
  try {
    params = message_to_json(request);
  } catch (const Error& error) {
    return {StatusCode::invalid_argument, error.what()};
  }
  if (!is_array_or_object(params)) {
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
  Status read = json_params_to_message(result, response);
  if (!read.ok()) {
    return {StatusCode::internal, "the result of " + method.name() + " is not a " +
                                      response.GetDescriptor()->full_name() + ": " +
                                      read.message()};
  }
  return {};
}

}  // namespace

RpcError::RpcError(Status status) : Error(status.to_string()), status_(std::move(status)) {}

JsonRpcChannel::JsonRpcChannel(std::string_view uri, std::chrono::milliseconds timeout)
    : client_(uri, timeout), timeout_(timeout) {}

Status JsonRpcChannel::call(const pb::MethodDescriptor& method, const pb::Message& request,
                            pb::Message& response, const CallOptions& options) {
  std::string params;
  if (Status written = params_of(request, params); !written.ok()) return written;
  client_.set_timeout(options.timeout.count() > 0 ? options.timeout : timeout_);
  std::string result;
  try {
    result = client_.call(method.name(), params);
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
  } catch (const Error& error) {
    // The others come from finding the server: a host name that does not
    // resolve, a shm: server that never sent its rings.
    return {StatusCode::unavailable, error.what()};
  } catch (const std::exception& error) {
    return {StatusCode::internal, error.what()};
  }
  return read_result(method, result, response);
}

}  // namespace conduit::rpc
