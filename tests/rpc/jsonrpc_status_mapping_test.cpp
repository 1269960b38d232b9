// JSON-RPC error objects and Status, both ways (status_mapping.hpp).
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <string>

#include "rpc/protocols/jsonrpc/status_mapping.hpp"

namespace conduit::rpc::jsonrpc {
namespace {

// The Status a client reads from the error object a server writes.
Status round_trip(const Status& status) {
  const ErrorObject error = error_for_status(status);
  rapidjson::Document data;
  data.Parse(error.data.data(), error.data.size());
  EXPECT_FALSE(data.HasParseError()) << error.data;
  return status_for_error(error.code, error.message, &data);
}

TEST(JsonRpcStatusMapping, EveryCodeAndMessageSurvivesTheRoundTrip) {
  for (int number = 1; number <= static_cast<int>(StatusCode::unauthenticated); ++number) {
    const Status status(static_cast<StatusCode>(number), "why " + std::to_string(number));
    EXPECT_EQ(round_trip(status), status) << number;
  }
}

TEST(JsonRpcStatusMapping, DeadlineExceededIsAServerErrorWithItsGrpcCode) {
  const ErrorObject error =
      error_for_status(Status(StatusCode::deadline_exceeded, "the call's deadline passed"));
  EXPECT_EQ(error.code, -32004);
  EXPECT_EQ(error.message, "the call's deadline passed");
  EXPECT_EQ(error.data, R"({"grpc_code":4,"grpc_status":"DEADLINE_EXCEEDED"})");
}

TEST(JsonRpcStatusMapping, AFailureWithoutMessageIsNamedByItsCode) {
  EXPECT_EQ(error_for_status(Status(StatusCode::not_found, "")).message, "NOT_FOUND");
}

TEST(JsonRpcStatusMapping, OkOrAnUnknownNumberIsUnknown) {
  EXPECT_EQ(error_for_status(Status()).code, -32002);
  EXPECT_EQ(error_for_status(Status(static_cast<StatusCode>(42), "x")).code, -32002);
}

TEST(JsonRpcStatusMapping, MessagesThatAreNotUtf8AreMadeValid) {
  EXPECT_EQ(error_for_status(Status(StatusCode::internal, "bad \xff")).message, "bad \xEF\xBF\xBD");
}

TEST(JsonRpcStatusMapping, ErrorsWithoutAGrpcCodeMapByTheirCode) {
  EXPECT_EQ(status_for_error(-32601, "Method not found", nullptr).code(),
            StatusCode::unimplemented);
  EXPECT_EQ(status_for_error(-32602, "Invalid params", nullptr).code(),
            StatusCode::invalid_argument);
  for (int code : {-32600, -32700, -32603})
    EXPECT_EQ(status_for_error(code, "x", nullptr).code(), StatusCode::internal) << code;
  for (int code : {-32000, -1, 0, 42})
    EXPECT_EQ(status_for_error(code, "x", nullptr).code(), StatusCode::unknown) << code;
}

TEST(JsonRpcStatusMapping, StringDataFollowsTheMessage) {
  rapidjson::Document data;
  const std::string_view json = R"("params[1] (subtrahend): expected a number, got a string")";
  data.Parse(json.data(), json.size());
  EXPECT_EQ(status_for_error(-32602, "Invalid params", &data),
            Status(StatusCode::invalid_argument,
                   "Invalid params: params[1] (subtrahend): expected a number, got a string"));
}

TEST(JsonRpcStatusMapping, GrpcCodeOutsideGrpcsIsUnknown) {
  rapidjson::Document data;
  const std::string_view json = R"({"grpc_code": 99})";
  data.Parse(json.data(), json.size());
  EXPECT_EQ(status_for_error(-32099, "x", &data).code(), StatusCode::unknown);
}

}  // namespace
}  // namespace conduit::rpc::jsonrpc
