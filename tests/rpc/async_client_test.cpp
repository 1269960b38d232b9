// The asynchronous JSON-RPC client against a real server: coroutines and
// callbacks on an io_context, over HTTP, lines on TCP and a UNIX socket.
#include "conduit/rpc/async_jsonrpc_client.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <thread>

#include "conduit/interop/jsonrpc_examples.pb.h"
#include "conduit/rpc/server.hpp"
#include "interop/jsonrpc_examples.hpp"
#include "test_support.hpp"

namespace conduit::rpc {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

class AsyncClient : public ::testing::Test {
 protected:
  void SetUp() override {
    add_jsonrpc_examples(services_);
    server_ = std::make_unique<Server>(services_);
    std::string tcp = server_->listen("tcp://127.0.0.1:0");
    unix_ = server_->listen("unix:" + dir_.path() + "/rpc.sock");
    server_->start();
    lines_ = tcp;
    http_ = "http://" + tcp.substr(6) + "/jsonrpc";
  }
  void TearDown() override { server_->shutdown(1s); }

  // Runs the io_context until `work` finishes; fails the test on a hang.
  void run(asio::io_context& io) {
    std::thread stopper([&] {
      for (int i = 0; i < 100 && !io.stopped(); ++i) std::this_thread::sleep_for(50ms);
      io.stop();
    });
    io.run();
    stopper.join();
  }

  testing::TempDir dir_;
  ServiceTable services_;
  std::unique_ptr<Server> server_;
  std::string http_, lines_, unix_;
};

TEST_F(AsyncClient, CoroutineCallsOverEveryStreamTransport) {
  asio::io_context io;
  std::vector<std::string> results;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        for (const std::string& uri : {http_, lines_, unix_}) {
          AsyncJsonRpcClient client(io.get_executor(), uri, 5s);
          results.push_back(co_await client.call("subtract", "[42,23]"));
          results.push_back(co_await client.call("get_data"));
        }
      },
      [&](std::exception_ptr error) {
        if (error) std::rethrow_exception(error);
      });
  run(io);
  EXPECT_EQ(results, (std::vector<std::string>{"19", R"(["hello",5])", "19", R"(["hello",5])",
                                                "19", R"(["hello",5])"}));
}

TEST_F(AsyncClient, CallbackGetsTheResultOrTheError) {
  asio::io_context io;
  AsyncJsonRpcClient client(io.get_executor(), http_, 5s);
  std::string result;
  std::exception_ptr failure;
  client.call("sum", "[1,2,4]", [&](std::exception_ptr error, std::string value) {
    ASSERT_FALSE(error);
    result = value;
    client.call("foobar", "[]", [&](std::exception_ptr error, std::string) { failure = error; });
  });
  run(io);
  EXPECT_EQ(result, "7");
  ASSERT_TRUE(failure);
  try {
    std::rethrow_exception(failure);
  } catch (const JsonRpcError& error) {
    EXPECT_EQ(error.code(), -32601);
  }
}

TEST_F(AsyncClient, ManyClientsInterleaveOnOneThread) {
  asio::io_context io;
  int right = 0;
  for (int c = 0; c < 6; ++c) {
    asio::co_spawn(
        io,
        [&, c]() -> asio::awaitable<void> {
          AsyncJsonRpcClient client(io.get_executor(), c % 2 ? unix_ : http_, 5s);
          for (int i = 0; i < 30; ++i) {
            std::string result = co_await client.call(
                "subtract", "[" + std::to_string(c * 1000 + i) + ",0]");
            if (result == std::to_string(c * 1000 + i)) ++right;
          }
        },
        asio::detached);
  }
  run(io);
  EXPECT_EQ(right, 180);
}

TEST_F(AsyncClient, NoReplyWithinTheTimeoutIsAnError) {
  // A listening socket that never answers: accepted by the kernel's backlog.
  asio::io_context io;
  asio::ip::tcp::acceptor silent(io, {asio::ip::make_address("127.0.0.1"), 0});
  std::string uri = "tcp://127.0.0.1:" + std::to_string(silent.local_endpoint().port());
  AsyncJsonRpcClient client(io.get_executor(), uri, 200ms);
  std::exception_ptr failure;
  auto started = std::chrono::steady_clock::now();
  client.call("sum", "[1]", [&](std::exception_ptr error, std::string) { failure = error; });
  run(io);
  ASSERT_TRUE(failure);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 3s);
  try {
    std::rethrow_exception(failure);
  } catch (const Error& error) {
    EXPECT_CONTAINS(std::string(error.what()), "within 200 ms");
  }
}

TEST_F(AsyncClient, ReconnectsAfterTheServerRestarted) {
  asio::io_context io;
  std::string port = lines_.substr(lines_.rfind(':') + 1);
  AsyncJsonRpcClient client(io.get_executor(), lines_, 5s);
  std::vector<std::string> results;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        results.push_back(co_await client.call("subtract", "[2,1]"));
        server_->shutdown(0ms);
        server_ = std::make_unique<Server>(services_);
        server_->listen("tcp://127.0.0.1:" + port);
        server_->start();
        results.push_back(co_await client.call("subtract", "[3,1]"));
      },
      [](std::exception_ptr error) {
        if (error) std::rethrow_exception(error);
      });
  run(io);
  EXPECT_EQ(results, (std::vector<std::string>{"1", "2"}));
}

TEST(AsyncClientUri, SharedMemoryIsRefusedWithTheReason) {
  asio::io_context io;
  try {
    AsyncJsonRpcClient client(io.get_executor(), "shm+unix:/tmp/x.sock");
    FAIL() << "shm+unix: accepted";
  } catch (const InvalidUri& error) {
    EXPECT_CONTAINS(std::string(error.what()), "JsonRpcClient");
  }
}

}  // namespace
}  // namespace conduit::rpc
