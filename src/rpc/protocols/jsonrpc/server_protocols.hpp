// The server sides of JSON-RPC 2.0: HTTP/1.1, one text per line, and
// Content-Length framing.
#pragma once

#include <memory>
#include <vector>

#include "rpc/connection.hpp"

namespace conduit::rpc::jsonrpc {

// Appends JSON-RPC's entries to the server's protocol table.
void add_server_protocols(std::vector<std::unique_ptr<ServerProtocol>>& table);
// ... and to the table of protocols spoken in whole messages (shm).
void add_message_protocols(std::vector<std::unique_ptr<MessageProtocol>>& table);

}  // namespace conduit::rpc::jsonrpc
