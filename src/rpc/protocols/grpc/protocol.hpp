// gRPC's entry in the protocol table.
#pragma once

#include <memory>

#include "rpc/protocol.hpp"

namespace conduit::rpc::grpc {

std::unique_ptr<Protocol> make_protocol();

}  // namespace conduit::rpc::grpc
