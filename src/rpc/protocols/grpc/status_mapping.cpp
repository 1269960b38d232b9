#include "rpc/protocols/grpc/status_mapping.hpp"

#include <charconv>

#include "rpc/protocols/grpc/wire.hpp"

namespace conduit::rpc::grpc {

std::vector<std::pair<std::string, std::string>> status_to_trailers(const Status& status) {
  std::vector<std::pair<std::string, std::string>> trailers = {
      {"grpc-status", std::to_string(static_cast<int>(status.code()))}};
  if (!status.message().empty())
    trailers.emplace_back("grpc-message", percent_encode(status.message()));
  if (!status.details().empty())
    trailers.emplace_back("grpc-status-details-bin", base64_encode(status.details()));
  return trailers;
}

Status status_from_trailers(const std::multimap<std::string, std::string>& received,
                            int http_status, std::uint32_t reset_code) {
  auto status_field = received.find("grpc-status");
  if (status_field == received.end()) {
    if (reset_code != 0)
      return {StatusCode::internal,
              "the server reset the call (HTTP/2 error " + std::to_string(reset_code) + ")"};
    return {http_status == 200 ? StatusCode::internal : code_for_http_status(http_status),
            "no grpc-status in the answer (HTTP " + std::to_string(http_status) + ")"};
  }
  const std::string& text = status_field->second;
  int code = -1;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), code);
  if (error != std::errc() || end != text.data() + text.size() || code < 0 ||
      code > static_cast<int>(StatusCode::unauthenticated))
    code = static_cast<int>(StatusCode::unknown);
  std::string message;
  if (auto found = received.find("grpc-message"); found != received.end())
    message = percent_decode(found->second);
  std::string details;  // a rich status (google.rpc.Status), passed on as bytes
  if (auto found = received.find("grpc-status-details-bin"); found != received.end())
    details = found->second;
  return {static_cast<StatusCode>(code), message, details};
}

StatusCode code_for_http_status(int http_status) {
  switch (http_status) {
    case 400:
      return StatusCode::internal;
    case 401:
      return StatusCode::unauthenticated;
    case 403:
      return StatusCode::permission_denied;
    case 404:
      return StatusCode::unimplemented;
    case 429:
    case 502:
    case 503:
    case 504:
      return StatusCode::unavailable;
    default:
      return StatusCode::unknown;
  }
}

}  // namespace conduit::rpc::grpc
