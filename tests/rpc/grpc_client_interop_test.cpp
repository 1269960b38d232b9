// gRPC's interop cases (the descriptions in gRPC's interop-test document)
// run by conduit's client, GrpcChannel, against a grpc.testing.TestService
// written with Debian's grpcio alone, and against conduit's own server: the
// same checks, so that each side is held to the other.
#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <optional>
#include <string>

#include "conduit/ipc/pipe.hpp"
#include "conduit/ipc/process.hpp"
#include "conduit/rpc/grpc_channel.hpp"
#include "conduit/rpc/server.hpp"
#include "grpc/testing/empty.pb.h"
#include "grpc/testing/messages.pb.h"
#include "interop/grpc_testing.hpp"
#include "test_support.hpp"

namespace conduit::rpc {
namespace {

using namespace std::chrono_literals;
using ::grpc::testing::SimpleRequest;
using ::grpc::testing::SimpleResponse;
using ::grpc::testing::StreamingInputCallRequest;
using ::grpc::testing::StreamingInputCallResponse;
using ::grpc::testing::StreamingOutputCallRequest;
using ::grpc::testing::StreamingOutputCallResponse;

// tests/rpc/interop/grpcio_server.py: prints "ready PORT", stops at the end
// of its stdin.
class GrpcioServer {
 public:
  GrpcioServer() {
    ipc::PipePair input = ipc::PipePair::create();
    ipc::PipePair output = ipc::PipePair::create();
    ipc::SpawnOptions options;
    options.argv = {"/usr/bin/python3",
                    std::string(CONDUIT_SOURCE_DIR) + "/tests/rpc/interop/grpcio_server.py",
                    GRPC_PROTO_DIR};
    options.stdin_fd = input.read_end.get();
    options.stdout_fd = output.write_end.get();
    process_.emplace(ipc::Process::spawn(options));
    stdin_ = std::move(input.write_end);
    input.read_end.reset();
    output.write_end.reset();
    std::string line;
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (line.find('\n') == std::string::npos && std::chrono::steady_clock::now() < deadline) {
      pollfd ready{output.read_end.get(), POLLIN, 0};
      if (::poll(&ready, 1, 1000) != 1) continue;
      char c;
      if (::read(output.read_end.get(), &c, 1) != 1) break;
      line += c;
    }
    if (line.rfind("ready ", 0) == 0) port_ = line.substr(6, line.size() - 7);
  }
  ~GrpcioServer() {
    stdin_.reset();  // end of stdin: the server stops
    if (!process_->wait_for(10s)) process_->kill(SIGKILL);
  }
  std::string target() const { return "127.0.0.1:" + port_; }
  bool ready() const { return !port_.empty(); }

 private:
  std::optional<ipc::Process> process_;
  ipc::FileDescriptor stdin_;
  std::string port_;
};

// The server a case runs against: grpcio's, or conduit's (in this process).
class InteropCases : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "grpcio") {
      grpcio_.emplace();
      ASSERT_TRUE(grpcio_->ready()) << "the grpcio server did not start";
      target_ = grpcio_->target();
    } else {
      add_grpc_testing(services_);
      server_ = std::make_unique<Server>(services_);
      target_ = server_->listen("tcp://127.0.0.1:0").substr(6);
      server_->start();
    }
    channel_.emplace(target_, 10s);
  }
  void TearDown() override {
    channel_.reset();
    if (server_) server_->shutdown(1s);
  }
  bool is_conduit() const { return GetParam() == "conduit"; }

  static std::string zeros(std::size_t size) { return std::string(size, '\0'); }

  std::optional<GrpcioServer> grpcio_;
  ServiceTable services_;
  std::unique_ptr<Server> server_;
  std::string target_;
  std::optional<GrpcChannel> channel_;
};

constexpr char kTest[] = "/grpc.testing.TestService/";
std::string method(const char* name) {
  return std::string(kTest) + name;
}

TEST_P(InteropCases, EmptyUnary) {
  std::string response = "not empty";
  ASSERT_TRUE(channel_->call_raw(method("EmptyCall"), "", response, 10s).ok());
  EXPECT_TRUE(response.empty());
}

TEST_P(InteropCases, LargeUnary) {
  SimpleRequest request;
  request.set_response_size(314159);
  request.mutable_payload()->set_body(zeros(271828));
  std::string response;
  Status status =
      channel_->call_raw(method("UnaryCall"), request.SerializeAsString(), response, 10s);
  ASSERT_TRUE(status.ok()) << status.to_string();
  SimpleResponse parsed;
  ASSERT_TRUE(parsed.ParseFromString(response));
  EXPECT_EQ(parsed.payload().body(), zeros(314159));
}

TEST_P(InteropCases, ClientCompressedUnary) {
  SimpleRequest request;
  request.set_response_size(314159);
  request.mutable_payload()->set_body(zeros(271828));
  request.mutable_expect_compressed()->set_value(true);
  std::string response;
  if (is_conduit()) {
    // The probe: a server that checks expect_compressed refuses a request
    // that came uncompressed (grpcio's cannot tell, so it is asked only here).
    EXPECT_EQ(
        channel_->call_raw(method("UnaryCall"), request.SerializeAsString(), response, 10s).code(),
        StatusCode::invalid_argument);
  }
  channel_->set_compress_requests(true);
  Status status =
      channel_->call_raw(method("UnaryCall"), request.SerializeAsString(), response, 10s);
  ASSERT_TRUE(status.ok()) << status.to_string();
  SimpleResponse parsed;
  ASSERT_TRUE(parsed.ParseFromString(response));
  EXPECT_EQ(parsed.payload().body().size(), 314159u);
  channel_->set_compress_requests(false);
  request.mutable_expect_compressed()->set_value(false);
  status = channel_->call_raw(method("UnaryCall"), request.SerializeAsString(), response, 10s);
  EXPECT_TRUE(status.ok()) << status.to_string();
}

TEST_P(InteropCases, ServerCompressedUnary) {
  for (bool compressed : {true, false}) {
    SimpleRequest request;
    request.set_response_size(314159);
    request.mutable_payload()->set_body(zeros(271828));
    request.mutable_response_compressed()->set_value(compressed);
    std::string response;
    std::multimap<std::string, std::string> received;
    Status status = channel_->call_raw(method("UnaryCall"), request.SerializeAsString(), response,
                                       10s, {}, &received);
    ASSERT_TRUE(status.ok()) << status.to_string();
    SimpleResponse parsed;
    ASSERT_TRUE(parsed.ParseFromString(response));
    EXPECT_EQ(parsed.payload().body(), zeros(314159));
    auto encoding = received.find("grpc-encoding");
    if (compressed) {
      ASSERT_NE(encoding, received.end()) << "the response came uncompressed";
      EXPECT_EQ(encoding->second, "gzip");
    }
  }
}

TEST_P(InteropCases, ClientStreaming) {
  GrpcChannel::Stream call = channel_->open(method("StreamingInputCall"), 10s);
  for (int size : {27182, 8, 1828, 45904}) {
    StreamingInputCallRequest request;
    request.mutable_payload()->set_body(zeros(size));
    ASSERT_TRUE(call.write(request.SerializeAsString()));
  }
  call.writes_done();
  std::string response;
  ASSERT_TRUE(call.read(response));
  StreamingInputCallResponse parsed;
  ASSERT_TRUE(parsed.ParseFromString(response));
  EXPECT_EQ(parsed.aggregated_payload_size(), 74922);
  EXPECT_FALSE(call.read(response));
  Status status = call.finish();
  EXPECT_TRUE(status.ok()) << status.to_string();
}

TEST_P(InteropCases, ClientCompressedStreaming) {
  GrpcChannel::Stream call = channel_->open(method("StreamingInputCall"), 10s, {}, true);
  StreamingInputCallRequest request;
  request.mutable_expect_compressed()->set_value(true);
  request.mutable_payload()->set_body(zeros(27182));
  ASSERT_TRUE(call.write(request.SerializeAsString(), /*compress=*/true));
  request.mutable_expect_compressed()->set_value(false);
  request.mutable_payload()->set_body(zeros(45904));
  ASSERT_TRUE(call.write(request.SerializeAsString(), /*compress=*/false));
  call.writes_done();
  std::string response;
  ASSERT_TRUE(call.read(response));
  StreamingInputCallResponse parsed;
  ASSERT_TRUE(parsed.ParseFromString(response));
  EXPECT_EQ(parsed.aggregated_payload_size(), 73086);
  Status status = call.finish();
  EXPECT_TRUE(status.ok()) << status.to_string();
}

TEST_P(InteropCases, ServerStreaming) {
  StreamingOutputCallRequest request;
  const int sizes[] = {31415, 9, 2653, 58979};
  for (int size : sizes) request.add_response_parameters()->set_size(size);
  GrpcChannel::Stream call = channel_->open(method("StreamingOutputCall"), 10s);
  ASSERT_TRUE(call.write(request.SerializeAsString()));
  call.writes_done();
  std::string response;
  for (int size : sizes) {
    ASSERT_TRUE(call.read(response)) << "a response is missing";
    StreamingOutputCallResponse parsed;
    ASSERT_TRUE(parsed.ParseFromString(response));
    EXPECT_EQ(parsed.payload().body(), zeros(size));
  }
  EXPECT_FALSE(call.read(response)) << "more responses than asked for";
  Status status = call.finish();
  EXPECT_TRUE(status.ok()) << status.to_string();
}

TEST_P(InteropCases, PingPong) {
  const int request_sizes[] = {27182, 8, 1828, 45904};
  const int response_sizes[] = {31415, 9, 2653, 58979};
  GrpcChannel::Stream call = channel_->open(method("FullDuplexCall"), 10s);
  for (int i = 0; i < 4; ++i) {
    StreamingOutputCallRequest request;
    request.add_response_parameters()->set_size(response_sizes[i]);
    request.mutable_payload()->set_body(zeros(request_sizes[i]));
    ASSERT_TRUE(call.write(request.SerializeAsString()));
    std::string response;
    ASSERT_TRUE(call.read(response)) << "no response to request " << i;
    StreamingOutputCallResponse parsed;
    ASSERT_TRUE(parsed.ParseFromString(response));
    EXPECT_EQ(parsed.payload().body(), zeros(response_sizes[i]));
  }
  call.writes_done();
  std::string response;
  EXPECT_FALSE(call.read(response));
  Status status = call.finish();
  EXPECT_TRUE(status.ok()) << status.to_string();
}

TEST_P(InteropCases, EmptyStream) {
  GrpcChannel::Stream call = channel_->open(method("FullDuplexCall"), 10s);
  call.writes_done();
  std::string response;
  EXPECT_FALSE(call.read(response));
  Status status = call.finish();
  EXPECT_TRUE(status.ok()) << status.to_string();
}

TEST_P(InteropCases, TimeoutOnSleepingServer) {
  GrpcChannel::Stream call = channel_->open(method("FullDuplexCall"), 1ms);
  StreamingOutputCallRequest request;
  request.mutable_payload()->set_body(zeros(27182));
  call.write(request.SerializeAsString());  // may fail: the deadline may have passed
  EXPECT_EQ(call.finish().code(), StatusCode::deadline_exceeded);
  std::string response;
  EXPECT_TRUE(channel_->call_raw(method("EmptyCall"), "", response, 10s).ok())
      << "the channel is not usable after a deadline";
}

TEST_P(InteropCases, CancelAfterBegin) {
  GrpcChannel::Stream call = channel_->open(method("StreamingInputCall"), 10s);
  call.cancel();
  EXPECT_EQ(call.finish().code(), StatusCode::cancelled);
  std::string response;
  EXPECT_TRUE(channel_->call_raw(method("EmptyCall"), "", response, 10s).ok());
}

TEST_P(InteropCases, CancelAfterFirstResponse) {
  GrpcChannel::Stream call = channel_->open(method("FullDuplexCall"), 10s);
  StreamingOutputCallRequest request;
  request.add_response_parameters()->set_size(31415);
  request.mutable_payload()->set_body(zeros(27182));
  ASSERT_TRUE(call.write(request.SerializeAsString()));
  std::string response;
  ASSERT_TRUE(call.read(response));
  call.cancel();
  EXPECT_EQ(call.finish().code(), StatusCode::cancelled);
  EXPECT_TRUE(channel_->call_raw(method("EmptyCall"), "", response, 10s).ok());
}

TEST_P(InteropCases, CustomMetadata) {
  const std::string trailing("\x0a\x0b\x0a\x0b\x0a\x0b", 6);
  const std::multimap<std::string, std::string> metadata = {
      {"x-grpc-test-echo-initial", "test_initial_metadata_value"},
      {"x-grpc-test-echo-trailing-bin", trailing}};
  SimpleRequest request;
  request.set_response_size(314159);
  request.mutable_payload()->set_body(zeros(271828));
  std::string response;
  std::multimap<std::string, std::string> received;
  Status status = channel_->call_raw(method("UnaryCall"), request.SerializeAsString(), response,
                                     10s, metadata, &received);
  ASSERT_TRUE(status.ok()) << status.to_string();
  ASSERT_EQ(received.count("x-grpc-test-echo-initial"), 1u);
  EXPECT_EQ(received.find("x-grpc-test-echo-initial")->second, "test_initial_metadata_value");
  ASSERT_EQ(received.count("x-grpc-test-echo-trailing-bin"), 1u);
  EXPECT_EQ(received.find("x-grpc-test-echo-trailing-bin")->second, trailing);

  GrpcChannel::Stream call = channel_->open(method("FullDuplexCall"), 10s, metadata);
  StreamingOutputCallRequest stream_request;
  stream_request.add_response_parameters()->set_size(314159);
  stream_request.mutable_payload()->set_body(zeros(271828));
  ASSERT_TRUE(call.write(stream_request.SerializeAsString()));
  ASSERT_TRUE(call.read(response));
  call.writes_done();
  status = call.finish();
  ASSERT_TRUE(status.ok()) << status.to_string();
  ASSERT_EQ(call.received().count("x-grpc-test-echo-initial"), 1u);
  EXPECT_EQ(call.received().find("x-grpc-test-echo-initial")->second,
            "test_initial_metadata_value");
  ASSERT_EQ(call.received().count("x-grpc-test-echo-trailing-bin"), 1u);
  EXPECT_EQ(call.received().find("x-grpc-test-echo-trailing-bin")->second, trailing);
}

TEST_P(InteropCases, StatusCodeAndMessage) {
  SimpleRequest request;
  request.mutable_response_status()->set_code(2);
  request.mutable_response_status()->set_message("test status message");
  std::string response;
  Status status =
      channel_->call_raw(method("UnaryCall"), request.SerializeAsString(), response, 10s);
  EXPECT_EQ(status.code(), StatusCode::unknown);
  EXPECT_EQ(status.message(), "test status message");

  GrpcChannel::Stream call = channel_->open(method("FullDuplexCall"), 10s);
  StreamingOutputCallRequest stream_request;
  stream_request.mutable_response_status()->set_code(2);
  stream_request.mutable_response_status()->set_message("test status message");
  ASSERT_TRUE(call.write(stream_request.SerializeAsString()));
  call.writes_done();
  status = call.finish();
  EXPECT_EQ(status.code(), StatusCode::unknown);
  EXPECT_EQ(status.message(), "test status message");
}

TEST(GrpcClientInterop, RichStatusDetailsFromAGrpcioServerArePassedOn) {
  GrpcioServer peer;
  ASSERT_TRUE(peer.ready()) << "the grpcio server did not start";
  GrpcChannel channel(peer.target(), 10s);
  SimpleRequest request;
  request.mutable_response_status()->set_code(3);
  request.mutable_response_status()->set_message("with details");
  std::string response;
  Status status = channel.call_raw(method("UnaryCall"), request.SerializeAsString(), response, 10s);
  EXPECT_EQ(status.code(), StatusCode::invalid_argument);
  EXPECT_EQ(status.message(), "with details");
  EXPECT_EQ(status.details(), std::string("\x08\x03\x12\x0cwith details"));
}

TEST_P(InteropCases, SpecialStatusMessage) {
  SimpleRequest request;
  request.mutable_response_status()->set_code(2);
  request.mutable_response_status()->set_message(
      "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \U0001f608\t\n");
  std::string response;
  Status status =
      channel_->call_raw(method("UnaryCall"), request.SerializeAsString(), response, 10s);
  EXPECT_EQ(status.code(), StatusCode::unknown);
  EXPECT_EQ(status.message(), request.response_status().message());
}

TEST_P(InteropCases, UnimplementedMethodAndService) {
  std::string response;
  EXPECT_EQ(channel_->call_raw(method("UnimplementedCall"), "", response, 10s).code(),
            StatusCode::unimplemented);
  EXPECT_EQ(
      channel_->call_raw("/grpc.testing.UnimplementedService/UnimplementedCall", "", response, 10s)
          .code(),
      StatusCode::unimplemented);
}

INSTANTIATE_TEST_SUITE_P(Servers, InteropCases, ::testing::Values("grpcio", "conduit"),
                         [](const auto& info) { return info.param; });

// Beyond the interop cases: a deadline against grpcio's SlowCall, after
// which the next call is served on the same channel.
TEST(GrpcClientInterop, DeadlineAgainstAGrpcioServerLeavesTheChannelUsable) {
  GrpcioServer peer;
  ASSERT_TRUE(peer.ready()) << "the grpcio server did not start";
  GrpcChannel channel(peer.target(), 10s);
  std::string response;
  SimpleRequest slow;
  slow.set_response_size(1000);  // the server sleeps 1 s
  EXPECT_EQ(channel.call_raw(method("SlowCall"), slow.SerializeAsString(), response, 100ms).code(),
            StatusCode::deadline_exceeded);
  EXPECT_TRUE(channel.call_raw(method("EmptyCall"), "", response, 10s).ok());
}

}  // namespace
}  // namespace conduit::rpc
