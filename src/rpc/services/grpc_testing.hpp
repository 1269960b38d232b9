// grpc.testing.TestService, as gRPC's interoperability test descriptions
// ask a server to behave (grpc/testing/test.proto from Debian's grpc-proto).
#pragma once

#include "conduit/rpc/service.hpp"

namespace conduit::rpc {

// Adds the unary methods of grpc.testing.TestService to `table`:
//   EmptyCall           Empty in, Empty out
//   UnaryCall,          a payload of response_size zero bytes; the status
//   CacheableUnaryCall  in response_status when it is set; INVALID_ARGUMENT
//                       when expect_compressed is set (conduit takes no
//                       compressed requests yet)
// Both echo "x-grpc-test-echo-initial" into the response headers and
// "x-grpc-test-echo-trailing-bin" into the trailers. UnimplementedCall and
// grpc.testing.UnimplementedService are left out, so they answer
// UNIMPLEMENTED; the streaming methods are not served yet.
// Throws Error when one of them is already there.
void add_grpc_testing(ServiceTable& table);

}  // namespace conduit::rpc
