// Each protocol's status mapping, both directions: every Status code a
// handler may return reaches the client as the same code and message.
#include "rpc/protocols/grpc/status_mapping.hpp"

#include <gtest/gtest.h>

#include <map>

#include "conduit/rpc/status.hpp"
#include "rpc/protocols/grpc/wire.hpp"

namespace conduit::rpc {
namespace {

std::vector<StatusCode> every_code() {
  std::vector<StatusCode> codes;
  for (int code = 0; code <= static_cast<int>(StatusCode::unauthenticated); ++code)
    codes.push_back(static_cast<StatusCode>(code));
  return codes;
}

// As the client keeps them: "-bin" values decoded.
std::multimap<std::string, std::string> as_received(
    const std::vector<std::pair<std::string, std::string>>& trailers) {
  std::multimap<std::string, std::string> received;
  for (const auto& [key, value] : trailers)
    received.emplace(key, grpc::is_binary_header(key) ? grpc::base64_decode(value).value() : value);
  return received;
}

TEST(GrpcStatusMapping, EveryCodeMessageAndDetailsRoundTrip) {
  for (StatusCode code : every_code()) {
    const Status sent(code, "why: 100% \"sure\", caf\xc3\xa9\n",
                      std::string("\x08\x05\x00\xff", 4));
    const Status back =
        grpc::status_from_trailers(as_received(grpc::status_to_trailers(sent)), 200);
    EXPECT_EQ(back.code(), code);
    EXPECT_EQ(back.message(), sent.message());
    EXPECT_EQ(back.details(), sent.details());
  }
}

TEST(GrpcStatusMapping, TheMessageIsPercentEncodedOnTheWire) {
  const auto trailers = grpc::status_to_trailers(Status(StatusCode::internal, "a%b\n"));
  ASSERT_EQ(trailers.size(), 2u);
  EXPECT_EQ(trailers[0], (std::pair<std::string, std::string>{"grpc-status", "13"}));
  EXPECT_EQ(trailers[1], (std::pair<std::string, std::string>{"grpc-message", "a%25b%0A"}));
}

TEST(GrpcStatusMapping, AnOkStatusIsGrpcStatusZeroAlone) {
  const auto trailers = grpc::status_to_trailers(Status());
  ASSERT_EQ(trailers.size(), 1u);
  EXPECT_EQ(trailers[0].second, "0");
}

TEST(GrpcStatusMapping, ACodeOutsideGrpcsIsUnknown) {
  for (const char* text : {"17", "-1", "x", "", "99999999999"}) {
    const Status status = grpc::status_from_trailers({{"grpc-status", text}}, 200);
    EXPECT_EQ(status.code(), StatusCode::unknown) << text;
  }
}

TEST(GrpcStatusMapping, AnswersWithoutGrpcStatusFollowGrpcsHttpMapping) {
  EXPECT_EQ(grpc::status_from_trailers({}, 404).code(), StatusCode::unimplemented);
  EXPECT_EQ(grpc::status_from_trailers({}, 503).code(), StatusCode::unavailable);
  EXPECT_EQ(grpc::status_from_trailers({}, 401).code(), StatusCode::unauthenticated);
  EXPECT_EQ(grpc::status_from_trailers({}, 200).code(), StatusCode::internal);
  EXPECT_EQ(grpc::status_from_trailers({}, 418).code(), StatusCode::unknown);
  EXPECT_EQ(grpc::status_from_trailers({}, 200, 8).code(), StatusCode::internal);
}

}  // namespace
}  // namespace conduit::rpc
