// The protocols conduit speaks, in the order their recognisers are tried on
// a connection's first bytes and their client URIs are matched. A protocol
// joins with one line here (and the include of its folder's protocol.hpp).
#include "rpc/protocol.hpp"
#include "rpc/protocols/grpc/protocol.hpp"
#include "rpc/protocols/jsonrpc/protocol.hpp"

namespace conduit::rpc {

const std::vector<std::unique_ptr<Protocol>>& protocols() {
  static const std::vector<std::unique_ptr<Protocol>> table = [] {
    std::vector<std::unique_ptr<Protocol>> all;
    all.push_back(jsonrpc::make_protocol());
    all.push_back(grpc::make_protocol());
    return all;
  }();
  return table;
}

}  // namespace conduit::rpc
