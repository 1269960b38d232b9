#include "conduit/rpc/client_channel.hpp"

#include <utility>

namespace conduit::rpc {

RpcError::RpcError(Status status) : Error(status.to_string()), status_(std::move(status)) {}

}  // namespace conduit::rpc
