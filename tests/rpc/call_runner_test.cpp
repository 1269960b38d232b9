// The call runner every protocol runs its calls through: a call whose
// deadline passes ends DEADLINE_EXCEEDED in every protocol, each in its own
// error form, and the handler sees the deadline it has.
#include <google/protobuf/struct.pb.h>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "conduit/interop/jsonrpc_examples.pb.h"
#include "conduit/rpc/client_channel.hpp"
#include "conduit/rpc/grpc_channel.hpp"
#include "conduit/rpc/jsonrpc_client.hpp"
#include "conduit/rpc/server.hpp"
#include "test_support.hpp"

namespace conduit::rpc {
namespace {

using namespace std::chrono_literals;
namespace pb = google::protobuf;

// `echo` waits until its call's deadline has passed (at most 5 s), then
// answers OK: only the runner's deadline rule can make it fail.
class SlowEchoServer : public ::testing::Test {
 protected:
  void SetUp() override {
    services_.add<pb::Value, pb::Value>(
        "conduit.interop.JsonRpcExamples/echo",
        [this](CallContext& context, const pb::Value& request, pb::Value& response) {
          had_deadline_ = context.deadline.has_value();
          const auto give_up = std::chrono::steady_clock::now() + 5s;
          while (!context.expired() && std::chrono::steady_clock::now() < give_up)
            std::this_thread::sleep_for(5ms);
          response.CopyFrom(request);
          return Status();
        });
    ServerOptions options;
    options.threads = 2;
    options.call_timeout = 200ms;
    server_ = std::make_unique<Server>(services_, options);
    const std::string bound = server_->listen("tcp://127.0.0.1:0");
    host_port_ = bound.substr(6);
    server_->start();
  }
  void TearDown() override { server_->shutdown(1s); }

  const pb::MethodDescriptor& echo() const {
    return *pb::DescriptorPool::generated_pool()->FindMethodByName(
        "conduit.interop.JsonRpcExamples.echo");
  }

  ServiceTable services_;
  std::unique_ptr<Server> server_;
  std::string host_port_;
  std::atomic<bool> had_deadline_{false};
};

TEST_F(SlowEchoServer, JsonRpcCallPastTheServersCallTimeoutEndsDeadlineExceeded) {
  JsonRpcClient client("http://" + host_port_ + "/jsonrpc", 10s);
  const auto started = std::chrono::steady_clock::now();
  try {
    client.call("echo", "[1]");
    FAIL() << "the call succeeded past its deadline";
  } catch (const JsonRpcError& error) {
    // A handler's failure: -32000 - code, the gRPC code in data.
    EXPECT_EQ(error.code(), -32000 - static_cast<int>(StatusCode::deadline_exceeded))
        << error.error_json();
    EXPECT_CONTAINS(error.error_json(), "\"grpc_code\":4");
  }
  EXPECT_LT(std::chrono::steady_clock::now() - started, 3s);
  EXPECT_TRUE(had_deadline_.load());
}

TEST_F(SlowEchoServer, JsonRpcChannelSeesDeadlineExceededOverEveryFraming) {
  for (const std::string& uri : {"http://" + host_port_ + "/jsonrpc", "tcp://" + host_port_}) {
    auto channel = make_channel(uri, 10s);
    pb::Value request, response;
    request.mutable_list_value()->add_values()->set_number_value(1);  // params [1]
    const Status status = channel->call(echo(), request, response, CallOptions{});
    EXPECT_EQ(status.code(), StatusCode::deadline_exceeded) << uri << ": " << status.to_string();
  }
}

TEST_F(SlowEchoServer, GrpcCallPastTheServersCallTimeoutEndsDeadlineExceededAsWell) {
  auto channel = make_channel("grpc://" + host_port_, 10s);
  pb::Value request, response;
  request.set_number_value(1);
  const Status status = channel->call(echo(), request, response, CallOptions{});
  EXPECT_EQ(status.code(), StatusCode::deadline_exceeded) << status.to_string();
}

TEST_F(SlowEchoServer, TheClientsShorterDeadlineWinsOverTheServers) {
  GrpcChannel channel(host_port_, 10s);
  pb::Value request, response;
  request.set_number_value(1);
  const auto started = std::chrono::steady_clock::now();
  const Status status = channel.call(echo(), request, response, CallOptions{50ms});
  EXPECT_EQ(status.code(), StatusCode::deadline_exceeded) << status.to_string();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 190ms);
}

TEST(CallRunner, WithoutAnyDeadlineAHandlerSeesNone) {
  ServiceTable services;
  std::atomic<int> deadlines{-1};
  services.add<pb::Value, pb::Value>(
      "conduit.interop.JsonRpcExamples/echo",
      [&](CallContext& context, const pb::Value& request, pb::Value& response) {
        deadlines = context.deadline.has_value() ? 1 : 0;
        response.CopyFrom(request);
        return Status();
      });
  Server server(services);
  const std::string bound = server.listen("tcp://127.0.0.1:0");
  server.start();
  JsonRpcClient client(bound, 5s);
  EXPECT_EQ(client.call("echo", "[1]"), "[1]");
  EXPECT_EQ(deadlines.load(), 0);
  server.shutdown(1s);
}

}  // namespace
}  // namespace conduit::rpc
