#include "interop/grpc_testing.hpp"

#include "grpc/testing/empty.pb.h"
#include "grpc/testing/messages.pb.h"
#include "grpc/testing/test.pb.h"

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

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
  if (request.expect_compressed().value() && !context.request_compressed) {
    return {StatusCode::invalid_argument,
            "expect_compressed is set, but the request came uncompressed"};
  }
  context.compress_response = request.response_compressed().value();
  if (request.response_size() < 0)
    return {StatusCode::invalid_argument, "response_size is negative"};
  testing::Payload& payload = *response.mutable_payload();
  payload.set_type(testing::COMPRESSABLE);
  payload.mutable_body()->assign(static_cast<std::size_t>(request.response_size()), '\0');
  return {};
}

// Waits `microseconds`, or less when the call is cancelled meanwhile.
void pause(CallContext& context, std::int32_t microseconds) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(microseconds);
  while (!context.cancelled() && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
        until - std::chrono::steady_clock::now(), std::chrono::milliseconds(5)));
}

// The responses one StreamingOutputCallRequest asks for; false when the
// call went away.
bool respond(CallContext& context, const testing::StreamingOutputCallRequest& request,
             StreamWriter<testing::StreamingOutputCallResponse>& responses) {
  for (const testing::ResponseParameters& parameters : request.response_parameters()) {
    if (parameters.interval_us() > 0) pause(context, parameters.interval_us());
    if (parameters.size() < 0) return false;
    testing::StreamingOutputCallResponse response;
    testing::Payload& payload = *response.mutable_payload();
    payload.set_type(testing::COMPRESSABLE);
    payload.mutable_body()->assign(static_cast<std::size_t>(parameters.size()), '\0');
    if (!responses.write(response)) return false;
  }
  return true;
}

Status status_asked(const testing::StreamingOutputCallRequest& request) {
  if (request.has_response_status() && request.response_status().code() != 0) {
    return {static_cast<StatusCode>(request.response_status().code()),
            request.response_status().message()};
  }
  return {};
}

Status streaming_output_call(CallContext& context,
                             const testing::StreamingOutputCallRequest& request,
                             StreamWriter<testing::StreamingOutputCallResponse>& responses) {
  echo_metadata(context);
  // Compression is chosen for the whole call: any response asking for it.
  for (const auto& parameters : request.response_parameters())
    if (parameters.compressed().value()) context.compress_response = true;
  if (!respond(context, request, responses))
    return {StatusCode::cancelled, "the call ended while responses were being sent"};
  return status_asked(request);
}

Status streaming_input_call(CallContext& context,
                            StreamReader<testing::StreamingInputCallRequest>& requests,
                            testing::StreamingInputCallResponse& response) {
  echo_metadata(context);
  std::int64_t total = 0;
  testing::StreamingInputCallRequest request;
  while (requests.read(request)) {
    if (request.expect_compressed().value() && !context.request_compressed) {
      return {StatusCode::invalid_argument,
              "expect_compressed is set, but a request came uncompressed"};
    }
    total += static_cast<std::int64_t>(request.payload().body().size());
  }
  if (context.cancelled()) return {StatusCode::cancelled, "the client cancelled the call"};
  response.set_aggregated_payload_size(static_cast<std::int32_t>(total));
  return {};
}

Status full_duplex_call(CallContext& context,
                        StreamReader<testing::StreamingOutputCallRequest>& requests,
                        StreamWriter<testing::StreamingOutputCallResponse>& responses) {
  echo_metadata(context);
  testing::StreamingOutputCallRequest request;
  while (requests.read(request)) {
    if (Status asked = status_asked(request); !asked.ok()) return asked;
    if (!respond(context, request, responses))
      return {StatusCode::cancelled, "the call ended while responses were being sent"};
  }
  if (context.cancelled()) return {StatusCode::cancelled, "the client cancelled the call"};
  return {};
}

// What a half-duplex call keeps of its requests before it answers: without
// a bound, a client that never half-closes makes the server hold all it sends.
constexpr std::size_t kMaxHalfDuplexBytes = 8 << 20;

Status half_duplex_call(CallContext& context,
                        StreamReader<testing::StreamingOutputCallRequest>& requests,
                        StreamWriter<testing::StreamingOutputCallResponse>& responses) {
  echo_metadata(context);
  std::vector<testing::StreamingOutputCallRequest> all;
  std::size_t kept = 0;
  testing::StreamingOutputCallRequest request;
  while (requests.read(request)) {
    kept += request.ByteSizeLong();
    if (kept > kMaxHalfDuplexBytes) {
      return {StatusCode::resource_exhausted,
              "HalfDuplexCall keeps at most " + std::to_string(kMaxHalfDuplexBytes) +
                  " bytes of requests before it answers; half-close sooner"};
    }
    all.push_back(request);
  }
  if (context.cancelled()) return {StatusCode::cancelled, "the client cancelled the call"};
  for (const auto& each : all) {
    if (!respond(context, each, responses))
      return {StatusCode::cancelled, "the call ended while responses were being sent"};
  }
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
  table
      .add_server_stream<testing::StreamingOutputCallRequest, testing::StreamingOutputCallResponse>(
          "grpc.testing.TestService/StreamingOutputCall", streaming_output_call);
  table.add_client_stream<testing::StreamingInputCallRequest, testing::StreamingInputCallResponse>(
      "grpc.testing.TestService/StreamingInputCall", streaming_input_call);
  table.add_bidi_stream<testing::StreamingOutputCallRequest, testing::StreamingOutputCallResponse>(
      "grpc.testing.TestService/FullDuplexCall", full_duplex_call);
  table.add_bidi_stream<testing::StreamingOutputCallRequest, testing::StreamingOutputCallResponse>(
      "grpc.testing.TestService/HalfDuplexCall", half_duplex_call);
}

}  // namespace conduit::rpc
