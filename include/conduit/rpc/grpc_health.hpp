// grpc.health.v1.Health (grpc/health/v1/health.proto from Debian's
// grpc-proto): what load balancers and `grpc_health_probe` ask a server.
#pragma once

#include "conduit/rpc/service.hpp"

namespace conduit::rpc {

// Adds Check and Watch to `table`, answering about the services `table`
// holds (it must outlive its use):
//   Check  SERVING for "" (the server as a whole) and for every service in
//          the table; NOT_FOUND for any other name
//   Watch  the same status at once (SERVICE_UNKNOWN for an unknown name),
//          then keeps the stream open until the client cancels it or the
//          server stops (a table never changes while it serves, so no second
//          message follows)
// Throws Error when they are already there.
void add_grpc_health(ServiceTable& table);

}  // namespace conduit::rpc
