// The protocols a server recognises, tried in this order on a connection's
// first bytes. A protocol joins with one line here.
#include "rpc/connection.hpp"
#include "rpc/protocols/grpc/server_protocol.hpp"
#include "rpc/protocols/jsonrpc/server_protocols.hpp"

namespace conduit::rpc {

const std::vector<std::unique_ptr<ServerProtocol>>& server_protocols() {
  static const std::vector<std::unique_ptr<ServerProtocol>> table = [] {
    std::vector<std::unique_ptr<ServerProtocol>> protocols;
    grpc::add_server_protocols(protocols);  // "PRI * HTTP/2.0": before HTTP/1.1
    jsonrpc::add_server_protocols(protocols);
    return protocols;
  }();
  return table;
}

const std::vector<std::unique_ptr<MessageProtocol>>& message_protocols() {
  static const std::vector<std::unique_ptr<MessageProtocol>> table = [] {
    std::vector<std::unique_ptr<MessageProtocol>> protocols;
    jsonrpc::add_message_protocols(protocols);
    return protocols;
  }();
  return table;
}

}  // namespace conduit::rpc
