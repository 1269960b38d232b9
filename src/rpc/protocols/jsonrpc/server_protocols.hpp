// JSON-RPC 2.0 as a server speaks it: over HTTP/1.1 (POST /jsonrpc and /,
// through the shared front end), as one JSON text per line on a raw stream,
// with Content-Length headers (the LSP convention, for stdio and pipes), and
// one text per ring message over shared memory.
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "rpc/protocol.hpp"

namespace conduit::rpc::jsonrpc {

// CallContext::protocol of its calls, and its name in the protocol table.
inline constexpr std::string_view kName = "jsonrpc";

std::vector<std::unique_ptr<StreamProtocol>> stream_protocols();
std::unique_ptr<MessageProtocol> message_protocol();
std::vector<http1::Route> http_routes();

}  // namespace conduit::rpc::jsonrpc
