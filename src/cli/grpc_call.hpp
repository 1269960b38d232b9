// `conduit call` for gRPC servers: the schema comes from server reflection.
#pragma once

#include <chrono>
#include <string>

namespace conduit::cli {

// Whether `uri` is grpc://HOST:PORT or grpc+unix:/path.
bool is_grpc_uri(const std::string& uri);

// Calls `method` ("package.Service/Method") with `params` (proto3 JSON; for
// a client-streaming method without params, one request per line of
// standard input) and prints each response as JSON on a line of its own;
// with `list_only`, prints the services and methods instead. Returns the
// exit code: 0 done, 1 the call failed (its status on stderr), 2 the server
// could not be reached or the arguments are wrong.
int grpc_call(const std::string& uri, const std::string& method, const std::string& params,
              bool list_only, std::chrono::milliseconds timeout);

}  // namespace conduit::cli
