// `conduit call` for gRPC servers: the schema comes from server reflection.
#pragma once

#include <iosfwd>
#include <string>
#include <string_view>

#include "rpc/protocol.hpp"

namespace conduit::rpc::grpc {

// The target a GrpcChannel takes for a command-line URI: "grpc://HOST:PORT"
// → "HOST:PORT", "grpc+unix:/path" → "unix:/path", "grpc+shm+unix:/path" →
// "shm+unix:/path". Throws InvalidUri.
std::string channel_target(std::string_view uri);

// Calls `call.method` ("package.Service/Method") with `call.params` (proto3
// JSON; for a client-streaming method without params, one request per line
// of `in`) and prints each response as JSON on a line of its own, flushed as
// it arrives; with `call.list`, prints the services and methods instead.
CallExit call_from_command_line(const CommandLineCall& call, std::istream& in, std::ostream& out,
                                std::ostream& err);

}  // namespace conduit::rpc::grpc
