#include "rpc/protocols/jsonrpc/status_mapping.hpp"

#include <utility>

#include "rpc/protocols/jsonrpc/json_writer.hpp"
#include "rpc/protocols/jsonrpc/utf8.hpp"

namespace conduit::rpc::jsonrpc {

namespace {

constexpr int kLastCode = static_cast<int>(StatusCode::unauthenticated);

StatusCode code_for_error(int code) {
  switch (code) {
    case kMethodNotFoundCode:
      return StatusCode::unimplemented;
    case kInvalidParamsCode:
      return StatusCode::invalid_argument;
    case kParseErrorCode:
    case kInvalidRequestCode:
    case kInternalErrorCode:
      // The server could not read what the client wrote, or failed outside
      // the handler: a fault of the plumbing, not of the call.
      return StatusCode::internal;
    default:
      return StatusCode::unknown;
  }
}

}  // namespace

ErrorObject error_for_status(const Status& status) {
  int number = static_cast<int>(status.code());
  if (number < 1 || number > kLastCode) number = static_cast<int>(StatusCode::unknown);
  const std::string_view name = status_code_name(static_cast<StatusCode>(number));
  ErrorObject error;
  error.code = kServerErrorBase - number;
  error.message = status.message().empty() ? std::string(name) : to_valid_utf8(status.message());
  JsonWriter data(error.data);
  data.start_object();
  data.key("grpc_code");
  data.number(static_cast<std::int64_t>(number));
  data.key("grpc_status");
  data.string(name);
  data.end_object();
  return error;
}

Status status_for_error(int code, std::string_view message, const rapidjson::Value* data) {
  StatusCode status_code = code_for_error(code);
  std::string text(message);
  if (data != nullptr && data->IsString()) {
    text += ": ";
    text.append(data->GetString(), data->GetStringLength());
  }
  // conduit's servers (and any that follow them) carry a handler's status
  // in data.grpc_code; it is more exact than the error code.
  if (data != nullptr && data->IsObject()) {
    const auto grpc_code = data->FindMember("grpc_code");
    if (grpc_code != data->MemberEnd() && grpc_code->value.IsInt()) {
      const int number = grpc_code->value.GetInt();
      status_code =
          number > 0 && number <= kLastCode ? static_cast<StatusCode>(number) : StatusCode::unknown;
    }
  }
  return {status_code, std::move(text)};
}

}  // namespace conduit::rpc::jsonrpc
