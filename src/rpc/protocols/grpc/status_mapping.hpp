// gRPC's status on the wire, both directions side by side: the trailers a
// server ends a call with, and the Status a client reads from what it
// received. conduit's Status codes are gRPC's own, so the code passes as its
// number; what needs care is the message (percent-encoded), the details of a
// rich status (grpc-status-details-bin), and answers without a grpc-status.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "conduit/rpc/status.hpp"

namespace conduit::rpc::grpc {

// grpc-status, grpc-message (percent-encoded; left out when empty) and
// grpc-status-details-bin (base64; left out when there are no details), as
// they go on the wire.
std::vector<std::pair<std::string, std::string>> status_to_trailers(const Status& status);

// The status of a call from its response headers and trailers, lower-case
// keys, "-bin" values already base64-decoded (as the client keeps them):
// - grpc-status as sent; a number outside gRPC's codes is UNKNOWN;
// - without a grpc-status: INTERNAL when the stream was reset
//   (`reset_code`, an HTTP/2 error code, not 0), else gRPC's mapping of the
//   HTTP status (code_for_http_status), INTERNAL for a 200 without one.
Status status_from_trailers(const std::multimap<std::string, std::string>& received,
                            int http_status, std::uint32_t reset_code = 0);

// gRPC's mapping of an HTTP status that came without a grpc-status
// (doc/http-grpc-status-mapping.md).
StatusCode code_for_http_status(int http_status);

}  // namespace conduit::rpc::grpc
