// The server side of gRPC: HTTP/2 with prior knowledge (h2c), recognised by
// the HTTP/2 connection preface on any listener.
#pragma once

#include <memory>
#include <string_view>

#include "rpc/protocol.hpp"

namespace conduit::rpc::grpc {

// CallContext::protocol of its calls, and its name in the protocol table.
inline constexpr std::string_view kName = "grpc";

std::unique_ptr<StreamProtocol> make_stream_protocol();

}  // namespace conduit::rpc::grpc
