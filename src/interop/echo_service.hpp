// conduit.interop.Echo (proto/conduit/interop/echo.proto): bytes in, the
// same bytes out. `conduit compare` measures the gRPC rows with it.
#pragma once

#include "conduit/rpc/service.hpp"

namespace conduit::rpc {

// Adds conduit.interop.Echo/bytes to `table`. Throws Error when it is
// already there.
void add_echo_service(ServiceTable& table);

}  // namespace conduit::rpc
