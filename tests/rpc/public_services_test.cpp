// Reflection and health for a user's own service, turned on through the
// public headers alone: `conduit call --list` and a health check see it.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <set>
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
// once on a pool of connections; over a raw stream at once on one
// connection, replies matched by id.
class SharedJsonRpcChannel : public ::testing::Test {
 protected:
  void SetUp() override {
    services_.add<test::Scalars, test::Repeated>(
        "conduit.test.Inventory/Lookup",
        [this](CallContext& context, const test::Scalars& request, test::Repeated& response) {
          {
            std::lock_guard lock(peers_mutex_);
            peers_.insert(context.peer.address);
          }
          const int now = ++in_flight_;
          for (int seen = most_in_flight_; now > seen;)
            if (most_in_flight_.compare_exchange_weak(seen, now)) break;
          // i32 1000 and above: that many microseconds; else 150 ms.
          std::this_thread::sleep_for(request.i32() >= 1000
                                          ? std::chrono::microseconds(request.i32())
                                          : std::chrono::microseconds(150000));
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
  std::mutex peers_mutex_;
  std::set<std::string> peers_;
};

TEST_F(SharedJsonRpcChannel, OverHttpCallsRunAtOnceOnAPoolOfConnections) {
  JsonRpcChannel channel("http://" + address_ + "/jsonrpc", 5s);
  call_from_four_threads(channel);
  EXPECT_GE(most_in_flight_.load(), 2);
  EXPECT_LE(most_in_flight_.load(), static_cast<int>(JsonRpcChannel::kMostHttpConnections));
}

TEST_F(SharedJsonRpcChannel, OverARawStreamCallsRunAtOnceOnOneConnection) {
  JsonRpcChannel channel("tcp://" + address_, 5s);
  call_from_four_threads(channel);
  EXPECT_GE(most_in_flight_.load(), 2);
  std::lock_guard lock(peers_mutex_);
  EXPECT_EQ(peers_.size(), 1u);
}

TEST_F(SharedJsonRpcChannel, OverARawStreamRepliesAnsweredOutOfOrderReachTheirOwnCalls) {
  JsonRpcChannel channel("tcp://" + address_, 5s);
  const auto& lookup = *test::Scalars::descriptor()
                            ->file()
                            ->FindServiceByName("Inventory")
                            ->FindMethodByName("Lookup");
  // The first call takes 400 ms, the second 1 ms: the server answers the
  // second first.
  test::Scalars slow, fast;
  slow.set_i32(400000);
  fast.set_i32(1000);
  test::Repeated slow_response, fast_response;
  std::mutex mutex;
  std::vector<std::string> order;
  std::promise<void> both;
  std::atomic<int> done{0};
  Status slow_status(StatusCode::unknown, "not answered"), fast_status = slow_status;
  channel.async_call(lookup, slow, slow_response, {}, [&](Status status) {
    slow_status = status;
    std::lock_guard lock(mutex);
    order.push_back("slow");
    if (++done == 2) both.set_value();
  });
  channel.async_call(lookup, fast, fast_response, {}, [&](Status status) {
    fast_status = status;
    std::lock_guard lock(mutex);
    order.push_back("fast");
    if (++done == 2) both.set_value();
  });
  ASSERT_EQ(both.get_future().wait_for(5s), std::future_status::ready);
  ASSERT_TRUE(slow_status.ok()) << slow_status.to_string();
  ASSERT_TRUE(fast_status.ok()) << fast_status.to_string();
  EXPECT_EQ(order, (std::vector<std::string>{"fast", "slow"}));
  ASSERT_EQ(slow_response.i32_size(), 1);
  ASSERT_EQ(fast_response.i32_size(), 1);
  EXPECT_EQ(slow_response.i32(0), 400000);
  EXPECT_EQ(fast_response.i32(0), 1000);
}

}  // namespace
}  // namespace conduit::rpc
