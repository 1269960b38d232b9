// JSON-RPC 2.0's entry in the protocol table.
#pragma once

#include <memory>

#include "rpc/protocol.hpp"

namespace conduit::rpc::jsonrpc {

std::unique_ptr<Protocol> make_protocol();

}  // namespace conduit::rpc::jsonrpc
