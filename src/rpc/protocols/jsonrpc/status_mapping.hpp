// JSON-RPC error objects and conduit's Status, both ways, in one place.
//
//   Status -> error object (a server)        error object -> Status (a client)
//   a handler's failure:                     data.grpc_code present: that code
//     code    -32000 - gRPC code             -32601 Method not found: UNIMPLEMENTED
//     message the status message (or the     -32602 Invalid params:   INVALID_ARGUMENT
//             code's name when empty)        -32600, -32700, -32603:  INTERNAL
//     data    {"grpc_code": 4,               any other code:          UNKNOWN
//              "grpc_status": "DEADLINE_EXCEEDED"}
//
// A client's Status keeps the error's message, followed by its data when
// that is a string (the detail conduit's server puts there: "Invalid params:
// params[1] (subtrahend): expected a number, got a string").
#pragma once

#include <rapidjson/document.h>

#include <string>
#include <string_view>

#include "conduit/rpc/status.hpp"

namespace conduit::rpc::jsonrpc {

// The error codes of the JSON-RPC 2.0 specification.
constexpr int kParseErrorCode = -32700;
constexpr int kInvalidRequestCode = -32600;
constexpr int kMethodNotFoundCode = -32601;
constexpr int kInvalidParamsCode = -32602;
constexpr int kInternalErrorCode = -32603;
// Handler failures are -32000 - (gRPC status code), in the range the
// specification reserves for implementation-defined server errors.
constexpr int kServerErrorBase = -32000;

// An error object.
struct ErrorObject {
  int code = 0;
  std::string message;  // valid UTF-8
  std::string data;     // error.data as compact JSON; empty: no data
};

// The error object for a call that failed with `status`. A failure reported
// with OK, or with a number gRPC does not define, is UNKNOWN, as gRPC
// itself maps such statuses.
ErrorObject error_for_status(const Status& status);

// The Status for an error object with `code`, `message` and `data`
// (nullptr: none).
Status status_for_error(int code, std::string_view message, const rapidjson::Value* data);

}  // namespace conduit::rpc::jsonrpc
