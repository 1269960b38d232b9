// grpc.testing.TestService, as gRPC's interoperability test descriptions
// ask a server to behave (grpc/testing/test.proto from Debian's grpc-proto).
#pragma once

#include "conduit/rpc/service.hpp"

namespace conduit::rpc {

// Adds grpc.testing.TestService to `table`:
//   EmptyCall           Empty in, Empty out
//   UnaryCall,          a payload of response_size zero bytes (compressed
//   CacheableUnaryCall  when response_compressed asks); the status in
//                       response_status when it is set; INVALID_ARGUMENT when
//                       expect_compressed is set and the request was not
//   StreamingOutputCall one response per response_parameters entry, each
//                       after its interval, with a payload of its size
//   StreamingInputCall  the total payload size of every request (checking
//                       expect_compressed as UnaryCall does)
//   FullDuplexCall      for each request as it comes, its responses (and
//                       its response_status, which ends the call)
//   HalfDuplexCall      the same, once the client has sent every request
// Every one echoes "x-grpc-test-echo-initial" into the response headers and
// "x-grpc-test-echo-trailing-bin" into the trailers. UnimplementedCall and
// grpc.testing.UnimplementedService are left out, so they answer
// UNIMPLEMENTED.
// Throws Error when one of them is already there.
void add_grpc_testing(ServiceTable& table);

}  // namespace conduit::rpc
