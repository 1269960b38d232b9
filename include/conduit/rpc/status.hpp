// The outcome of a call, in gRPC's vocabulary, which every protocol maps to
// its own error form (JSON-RPC error objects, XML-RPC faults, GIOP
// exceptions, gRPC trailers).
#pragma once

#include <string>
#include <string_view>

namespace conduit::rpc {

// gRPC's status codes, with gRPC's numbers.
enum class StatusCode {
  ok = 0,
  cancelled = 1,
  unknown = 2,
  invalid_argument = 3,
  deadline_exceeded = 4,
  not_found = 5,
  already_exists = 6,
  permission_denied = 7,
  resource_exhausted = 8,
  failed_precondition = 9,
  aborted = 10,
  out_of_range = 11,
  unimplemented = 12,
  internal = 13,
  unavailable = 14,
  data_loss = 15,
  unauthenticated = 16,
};

// "OK", "INVALID_ARGUMENT", ...; "UNKNOWN" for numbers outside the list.
std::string_view status_code_name(StatusCode code);

// A value type: a code, a message for people, and optional details (the
// serialized google.rpc.Status gRPC carries in grpc-status-details-bin).
class Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message, std::string details = {})
      : code_(code), message_(std::move(message)), details_(std::move(details)) {}

  static Status ok_status() { return {}; }

  bool ok() const { return code_ == StatusCode::ok; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  const std::string& details() const { return details_; }
  // "INVALID_ARGUMENT: minuend must be a number".
  std::string to_string() const;

  friend bool operator==(const Status&, const Status&) = default;

 private:
  StatusCode code_ = StatusCode::ok;
  std::string message_;
  std::string details_;
};

}  // namespace conduit::rpc
