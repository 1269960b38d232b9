// Reflection and health for a user's own service, turned on through the
// public headers alone: `conduit call --list` and a health check see it.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cli_support.hpp"
#include "conduit/rpc/client_channel.hpp"
#include "conduit/rpc/grpc_channel.hpp"
#include "conduit/rpc/grpc_health.hpp"
#include "conduit/rpc/grpc_reflection.hpp"
#include "conduit/rpc/server.hpp"
#include "proto_json_test.pb.h"
#include "test_support.hpp"

namespace conduit::rpc {
namespace {

using namespace std::chrono_literals;

class PublicServices : public ::testing::Test {
 protected:
  void SetUp() override {
    services_.add<test::Scalars, test::Repeated>(
        "conduit.test.Inventory/Lookup",
        [](CallContext&, const test::Scalars& request, test::Repeated& response) {
          response.add_i32(request.i32() * 2);
          return Status();
        });
    add_grpc_reflection(services_);
    add_grpc_health(services_);
    server_ = std::make_unique<Server>(services_);
    const std::string bound = server_->listen("tcp://127.0.0.1:0");
    target_ = "grpc://" + bound.substr(6);
    server_->start();
  }
  void TearDown() override { server_->shutdown(1s); }

  ServiceTable services_;
  std::unique_ptr<Server> server_;
  std::string target_;
};

TEST_F(PublicServices, ConduitCallListsTheUsersServiceThroughReflection) {
  testing::CommandResult result = testing::conduit({"call", "--list", target_});
  EXPECT_TRUE(result.status.success()) << result.status.describe() << result.err;
  EXPECT_CONTAINS(result.out, "conduit.test.Inventory");
  EXPECT_CONTAINS(result.out, "grpc.health.v1.Health");
}

TEST_F(PublicServices, ConduitCallReachesTheUsersMethodByName) {
  testing::CommandResult result =
      testing::conduit({"call", target_, "conduit.test.Inventory/Lookup", R"({"i32": 21})"});
  EXPECT_TRUE(result.status.success()) << result.status.describe() << result.err;
  EXPECT_CONTAINS(result.out, "42");
}

TEST_F(PublicServices, HealthAnswersServingForTheUsersService) {
  GrpcChannel channel(target_, 5s);
  // grpc.health.v1.HealthCheckRequest{service = "conduit.test.Inventory"},
  // and the response's status SERVING (1), by hand: field 1, a string.
  const std::string service = "conduit.test.Inventory";
  std::string request = std::string("\x0a", 1) + static_cast<char>(service.size()) + service;
  std::string response;
  const Status status = channel.call_raw("/grpc.health.v1.Health/Check", request, response, 5s);
  ASSERT_TRUE(status.ok()) << status.to_string();
  EXPECT_EQ(response, std::string("\x08\x01", 2));
  const Status unknown =
      channel.call_raw("/grpc.health.v1.Health/Check", std::string("\x0a\x01x", 3), response, 5s);
  EXPECT_EQ(unknown.code(), StatusCode::not_found);
}

// JSON-RPC: the same method by its bare name, and metadata as HTTP headers.
class JsonRpcMetadata : public ::testing::Test {
 protected:
  void SetUp() override {
    services_.add<test::Scalars, test::Repeated>(
        "conduit.test.Inventory/Lookup",
        [](CallContext& context, const test::Scalars&, test::Repeated& response) {
          for (const auto& [name, value] : context.metadata) response.add_text(name + "=" + value);
          return Status();
        });
    server_ = std::make_unique<Server>(services_);
    const std::string bound = server_->listen("tcp://127.0.0.1:0");
    address_ = bound.substr(6);
    server_->start();
  }
  void TearDown() override { server_->shutdown(1s); }

  const google::protobuf::MethodDescriptor& lookup() const {
    return *test::Scalars::descriptor()
                ->file()
                ->FindServiceByName("Inventory")
                ->FindMethodByName("Lookup");
  }

  ServiceTable services_;
  std::unique_ptr<Server> server_;
  std::string address_;
};

TEST_F(JsonRpcMetadata, GoesAsHttpHeadersAndReachesTheHandler) {
  JsonRpcChannel channel("http://" + address_ + "/jsonrpc", 5s);
  CallOptions options;
  options.metadata = {{"authorization", "Bearer t0k3n"}};
  test::Repeated response;
  const Status status = channel.call(lookup(), test::Scalars(), response, options);
  ASSERT_TRUE(status.ok()) << status.to_string();
  ASSERT_EQ(response.text_size(), 1);
  EXPECT_EQ(response.text(0), "authorization=Bearer t0k3n");
  // The next call without metadata sends none.
  ASSERT_TRUE(channel.call(lookup(), test::Scalars(), response, {}).ok());
  EXPECT_EQ(response.text_size(), 0);
}

TEST_F(JsonRpcMetadata, OverARawStreamIsRefusedNamingHttp) {
  JsonRpcChannel channel("tcp://" + address_, 5s);
  CallOptions options;
  options.metadata = {{"authorization", "Bearer t0k3n"}};
  test::Repeated response;
  const Status status = channel.call(lookup(), test::Scalars(), response, options);
  EXPECT_EQ(status.code(), StatusCode::invalid_argument);
  EXPECT_CONTAINS(status.message(), "http://");
}

TEST_F(JsonRpcMetadata, AHeaderHttpCannotCarryIsRefused) {
  JsonRpcChannel channel("http://" + address_ + "/jsonrpc", 5s);
  test::Repeated response;
  for (const auto& [name, value] : std::multimap<std::string, std::string>{
           {"x-evil", "a\r\nInjected: yes"}, {"bad name", "v"}, {"", "v"}}) {
    CallOptions options;
    options.metadata = {{name, value}};
    const Status status = channel.call(lookup(), test::Scalars(), response, options);
    EXPECT_EQ(status.code(), StatusCode::invalid_argument) << name;
  }
}

// One JsonRpcChannel shared by threads: over http:// their calls run at
// once on a pool of connections; over a raw stream one after another.
class SharedJsonRpcChannel : public ::testing::Test {
 protected:
  void SetUp() override {
    services_.add<test::Scalars, test::Repeated>(
        "conduit.test.Inventory/Lookup",
        [this](CallContext&, const test::Scalars& request, test::Repeated& response) {
          const int now = ++in_flight_;
          for (int seen = most_in_flight_; now > seen;)
            if (most_in_flight_.compare_exchange_weak(seen, now)) break;
          std::this_thread::sleep_for(150ms);
          --in_flight_;
          response.add_i32(request.i32());
          return Status();
        });
    ServerOptions options;
    options.threads = 4;
    server_ = std::make_unique<Server>(services_, options);
    const std::string bound = server_->listen("tcp://127.0.0.1:0");
    address_ = bound.substr(6);
    server_->start();
  }
  void TearDown() override { server_->shutdown(1s); }

  // Four threads, three calls each, through `channel`; every answer checked.
  void call_from_four_threads(JsonRpcChannel& channel) {
    const auto& lookup = *test::Scalars::descriptor()
                              ->file()
                              ->FindServiceByName("Inventory")
                              ->FindMethodByName("Lookup");
    std::atomic<int> right{0};
    testing::on_threads(4, [&](int t) {
      for (int i = 0; i < 3; ++i) {
        test::Scalars request;
        request.set_i32(10 * t + i);
        test::Repeated response;
        if (channel.call(lookup, request, response, {}).ok() && response.i32_size() == 1 &&
            response.i32(0) == 10 * t + i)
          ++right;
      }
    });
    EXPECT_EQ(right.load(), 12);
  }

  ServiceTable services_;
  std::unique_ptr<Server> server_;
  std::string address_;
  std::atomic<int> in_flight_{0}, most_in_flight_{0};
};

TEST_F(SharedJsonRpcChannel, OverHttpCallsRunAtOnceOnAPoolOfConnections) {
  JsonRpcChannel channel("http://" + address_ + "/jsonrpc", 5s);
  call_from_four_threads(channel);
  EXPECT_GE(most_in_flight_.load(), 2);
  EXPECT_LE(most_in_flight_.load(), static_cast<int>(JsonRpcChannel::kMostHttpConnections));
}

TEST_F(SharedJsonRpcChannel, OverARawStreamCallsGoOneAfterAnother) {
  JsonRpcChannel channel("tcp://" + address_, 5s);
  call_from_four_threads(channel);
  EXPECT_EQ(most_in_flight_.load(), 1);
}

}  // namespace
}  // namespace conduit::rpc
