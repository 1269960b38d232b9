#include "rpc/services/grpc_testing.hpp"

#include "grpc/testing/empty.pb.h"
#include "grpc/testing/messages.pb.h"
#include "grpc/testing/test.pb.h"

namespace conduit::rpc {

namespace {

namespace testing = ::grpc::testing;

// The metadata the interop tests ask to have echoed.
void echo_metadata(CallContext& context) {
  for (const auto& [key, value] : context.metadata) {
    if (key == "x-grpc-test-echo-initial") context.response_metadata.emplace(key, value);
    if (key == "x-grpc-test-echo-trailing-bin") context.response_trailers.emplace(key, value);
  }
}

Status unary_call(CallContext& context, const testing::SimpleRequest& request,
                  testing::SimpleResponse& response) {
  echo_metadata(context);
  if (request.has_response_status() && request.response_status().code() != 0) {
    return {static_cast<StatusCode>(request.response_status().code()),
            request.response_status().message()};
  }
  if (request.expect_compressed().value()) {
    return {StatusCode::invalid_argument,
            "expect_compressed is set, but the request came uncompressed"};
  }
  if (request.response_size() < 0)
    return {StatusCode::invalid_argument, "response_size is negative"};
  testing::Payload& payload = *response.mutable_payload();
  payload.set_type(testing::COMPRESSABLE);
  payload.mutable_body()->assign(static_cast<std::size_t>(request.response_size()), '\0');
  return {};
}

}  // namespace

void add_grpc_testing(ServiceTable& table) {
  // The descriptors of test.proto (its services) come with its generated
  // code, which the linker keeps only when something refers to it: this
  // pointer does, and being volatile it is not optimised away.
  static const void* volatile test_proto = &descriptor_table_grpc_2ftesting_2ftest_2eproto;
  (void)test_proto;
  table.add<testing::Empty, testing::Empty>(
      "grpc.testing.TestService/EmptyCall",
      [](CallContext& context, const testing::Empty&, testing::Empty&) {
        echo_metadata(context);
        return Status();
      });
  table.add<testing::SimpleRequest, testing::SimpleResponse>("grpc.testing.TestService/UnaryCall",
                                                             unary_call);
  table.add<testing::SimpleRequest, testing::SimpleResponse>(
      "grpc.testing.TestService/CacheableUnaryCall", unary_call);
}

}  // namespace conduit::rpc
