// The server side of gRPC: HTTP/2 with prior knowledge (h2c), recognised by
// the HTTP/2 connection preface on any listener.
#pragma once

#include <memory>
#include <vector>

#include "rpc/connection.hpp"

namespace conduit::rpc::grpc {

// Appends gRPC's entry to the server's protocol table.
void add_server_protocols(std::vector<std::unique_ptr<ServerProtocol>>& table);

}  // namespace conduit::rpc::grpc
