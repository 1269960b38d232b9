// The protocols conduit speaks, in the order their recognisers are tried on
// a connection's first bytes and their client URIs are matched. A protocol
// joins with one line here (and the include of its folder's protocol.hpp).
#include "rpc/protocol.hpp"
#include "rpc/protocols/grpc/protocol.hpp"
#include "rpc/protocols/jsonrpc/protocol.hpp"

namespace conduit::rpc {

std::vector<std::unique_ptr<Protocol>> protocol_table() {
  std::vector<std::unique_ptr<Protocol>> all;
  all.push_back(jsonrpc::make_protocol());
  all.push_back(grpc::make_protocol());
  return all;
}

}  // namespace conduit::rpc
