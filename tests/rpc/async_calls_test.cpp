// Channels as their users share them: many threads, many calls in flight on
// one connection, and the asynchronous forms (callbacks, C++20 coroutines)
// with cancellation, against conduit's own server.
#include <google/protobuf/descriptor.h>
#include <google/protobuf/struct.pb.h>
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <future>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "conduit/interop/jsonrpc_examples.conduit.h"
#include "conduit/ipc/tcp_socket.hpp"
#include "conduit/rpc/grpc_channel.hpp"
#include "conduit/rpc/server.hpp"
#include "grpc/testing/messages.pb.h"
#include "interop/grpc_testing.hpp"
#include "raw_wire.hpp"
#include "test_support.hpp"

namespace conduit::rpc {
namespace {

namespace asio = boost::asio;
namespace pb = google::protobuf;
using namespace std::chrono_literals;

const pb::MethodDescriptor& method(const std::string& name) {
  const pb::MethodDescriptor* found = pb::DescriptorPool::generated_pool()->FindMethodByName(name);
  if (found == nullptr) throw std::logic_error("no method " + name);
  return *found;
}

// A request echo holds until it is cancelled: {"wait": true}.
pb::Value wait_request() {
  pb::Value request;
  (*request.mutable_struct_value()->mutable_fields())["wait"].set_bool_value(true);
  return request;
}

// subtract (recording the caller's address), echo ({"wait": ...} holds the call
// until it is cancelled, up to 5 s, and records that it was), and
// grpc.testing.TestService, on loopback TCP and a UNIX socket.
class Calls : public ::testing::Test {
 protected:
  void SetUp() override {
    services_.add<interop::SubtractRequest, pb::Value>(
        "conduit.interop.JsonRpcExamples/subtract",
        [this](CallContext& context, const interop::SubtractRequest& request, pb::Value& out) {
          {
            std::lock_guard lock(mutex_);
            peers_.insert(context.peer.address);
          }
          out.set_number_value(request.minuend() - request.subtrahend());
          return Status();
        });
    services_.add<pb::Value, pb::Value>(
        "conduit.interop.JsonRpcExamples/echo",
        [this](CallContext& context, const pb::Value& request, pb::Value& out) {
          if (request.struct_value().fields().contains("wait")) {
            waiting_ = true;
            const auto until = std::chrono::steady_clock::now() + 5s;
            while (!context.cancelled() && std::chrono::steady_clock::now() < until)
              std::this_thread::sleep_for(5ms);
            if (context.cancelled()) saw_cancel_ = true;
            return Status(StatusCode::cancelled, "gone");
          }
          out.CopyFrom(request);
          return Status();
        });
    add_grpc_testing(services_);
    server_ = std::make_unique<Server>(services_);
    tcp_ = server_->listen("tcp://127.0.0.1:0");
    unix_ = server_->listen("unix:" + dir_.path() + "/calls.sock");
    server_->start();
  }
  void TearDown() override { server_->shutdown(1s); }

  std::string grpc_target() const { return tcp_.substr(6); }

  // Waits up to 5 s for the "wait" call to be seen cancelled by the server.
  bool server_saw_cancel() {
    for (int i = 0; i < 500 && !saw_cancel_; ++i) std::this_thread::sleep_for(10ms);
    return saw_cancel_;
  }
  void wait_until_waiting() {
    for (int i = 0; i < 500 && !waiting_; ++i) std::this_thread::sleep_for(10ms);
  }

  testing::TempDir dir_;
  ServiceTable services_;
  std::unique_ptr<Server> server_;
  std::string tcp_, unix_;
  std::mutex mutex_;
  std::set<std::string> peers_;
  std::atomic<bool> waiting_{false}, saw_cancel_{false};
};

// One bidirectional stream: `count` requests of distinct sizes, each
// answered by a response of the size asked; true when every one came back.
bool full_duplex(ClientStream& stream, int seed, int count) {
  for (int i = 0; i < count; ++i) {
    ::grpc::testing::StreamingOutputCallRequest request;
    request.add_response_parameters()->set_size(seed % 50 + i);
    if (!stream.write(request.SerializeAsString())) return false;
    std::string bytes;
    ::grpc::testing::StreamingOutputCallResponse response;
    if (!stream.read(bytes) || !response.ParseFromString(bytes) ||
        response.payload().body().size() != static_cast<std::size_t>(seed % 50 + i))
      return false;
  }
  stream.writes_done();
  std::string extra;
  return !stream.read(extra) && stream.finish().ok();
}

TEST_F(Calls, SixteenThreadsShareOneGrpcConnectionForTenThousandMixedCalls) {
  GrpcChannel channel(grpc_target(), 20s);
  interop::JsonRpcExamplesStub stub(channel);
  const pb::MethodDescriptor& duplex = method("grpc.testing.TestService.FullDuplexCall");
  const pb::MethodDescriptor& out = method("grpc.testing.TestService.StreamingOutputCall");
  std::atomic<int> right{0};
  std::mutex wrong_mutex;
  std::vector<std::string> wrong;
  auto fail = [&](std::string what) {
    std::lock_guard lock(wrong_mutex);
    wrong.push_back(std::move(what));
  };
  testing::on_threads(16, [&](int t) {
    for (int i = 0; i < 625; ++i) {
      const int kind = (t + i) % 8;
      if (kind == 0) {  // a bidirectional stream of three exchanges
        std::unique_ptr<ClientStream> stream = channel.open(duplex, {});
        if (full_duplex(*stream, t * 1000 + i, 3))
          ++right;
        else
          fail("full duplex " + std::to_string(t) + "/" + std::to_string(i));
      } else if (kind == 1) {  // a server stream of four responses
        ::grpc::testing::StreamingOutputCallRequest request;
        for (int size : {1, t, i % 7, 3}) request.add_response_parameters()->set_size(size);
        std::unique_ptr<ClientStream> stream = channel.open(out, {});
        stream->write(request.SerializeAsString());
        stream->writes_done();
        std::string bytes;
        int got = 0;
        bool sizes_right = true;
        while (stream->read(bytes)) {
          ::grpc::testing::StreamingOutputCallResponse response;
          sizes_right = sizes_right && response.ParseFromString(bytes) && got < 4 &&
                        response.payload().body().size() ==
                            static_cast<std::size_t>(request.response_parameters(got).size());
          ++got;
        }
        const Status status = stream->finish();
        if (status.ok() && got == 4 && sizes_right)
          ++right;
        else
          fail("server stream: " + status.to_string());
      } else {
        interop::SubtractRequest request;
        request.set_minuend(100000 * t + i);
        request.set_subtrahend(t);
        pb::Value difference;
        const Status status = stub.subtract(request, &difference);
        if (status.ok() && difference.number_value() == 100000 * t + i - t)
          ++right;
        else
          fail("subtract: " + status.to_string());
      }
    }
  });
  EXPECT_EQ(right.load(), 10000) << (wrong.empty() ? "" : wrong.front());
  std::lock_guard lock(mutex_);
  EXPECT_EQ(peers_.size(), 1u) << "the server saw the calls on more than one connection";
}

// The same over JSON-RPC, which carries unary calls only: one connection
// over lines (replies matched by id), at most the pool's over HTTP.
TEST_F(Calls, SixteenThreadsShareOneJsonRpcChannelForTenThousandCalls) {
  for (const std::string& uri : {tcp_, "http://" + tcp_.substr(6) + "/jsonrpc"}) {
    SCOPED_TRACE(uri);
    {
      std::lock_guard lock(mutex_);
      peers_.clear();
    }
    JsonRpcChannel channel(uri, 20s);
    interop::JsonRpcExamplesStub stub(channel);
    std::atomic<int> right{0};
    std::mutex wrong_mutex;
    std::string wrong;
    testing::on_threads(16, [&](int t) {
      for (int i = 0; i < 625; ++i) {
        interop::SubtractRequest request;
        request.set_minuend(100000 * t + i);
        request.set_subtrahend(t);
        pb::Value difference;
        const Status status = stub.subtract(request, &difference);
        if (status.ok() && difference.number_value() == 100000 * t + i - t) {
          ++right;
        } else {
          std::lock_guard lock(wrong_mutex);
          wrong = status.to_string();
        }
      }
    });
    EXPECT_EQ(right.load(), 10000) << wrong;
    std::lock_guard lock(mutex_);
    if (uri.starts_with("http://"))
      EXPECT_LE(peers_.size(), JsonRpcChannel::kMostHttpConnections);
    else
      EXPECT_EQ(peers_.size(), 1u);
  }
}

TEST_F(Calls, AChannelGoesAtOnceThoughItsCallsHadDeadlinesFarAway) {
  const auto started = std::chrono::steady_clock::now();
  {
    GrpcChannel channel(grpc_target(), 60s);
    interop::JsonRpcExamplesStub stub(channel);
    interop::SubtractRequest request;
    request.set_minuend(2);
    EXPECT_EQ(stub.subtract(request).number_value(), 2);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
}

TEST_F(Calls, AStreamOpenOnOneThreadHoldsUpNoOtherCallOfAnyThread) {
  GrpcChannel channel(grpc_target(), 10s);
  interop::JsonRpcExamplesStub stub(channel);
  GrpcChannel::Stream stream = channel.open("/grpc.testing.TestService/FullDuplexCall", 5s);
  interop::SubtractRequest request;
  request.set_minuend(3);
  request.set_subtrahend(1);
  EXPECT_EQ(stub.subtract(request).number_value(), 2);  // the same thread
  std::thread other([&] { EXPECT_EQ(stub.subtract(request).number_value(), 2); });
  other.join();
  stream.writes_done();
  EXPECT_TRUE(stream.finish().ok());
}

// A channel used only through blocking calls has no I/O thread: the waiting
// callers run its I/O, one at a time, for each other.
TEST_F(Calls, BlockingCallsOfOtherThreadsGoOnWhileTheThreadRunningTheIoWaitsForASlowCall) {
  GrpcChannel channel(grpc_target(), 10s);
  interop::JsonRpcExamplesStub stub(channel);
  const pb::MethodDescriptor& echo = method("conduit.interop.JsonRpcExamples.echo");
  CallOptions slow_options;
  slow_options.canceller = std::make_shared<CallCanceller>();
  std::atomic<bool> slow_returned{false};
  std::thread slow([&] {
    pb::Value request = wait_request(), response;
    EXPECT_EQ(channel.call(echo, request, response, slow_options).code(), StatusCode::cancelled);
    slow_returned = true;
  });
  wait_until_waiting();
  std::atomic<int> answered{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      interop::SubtractRequest request;
      for (int i = 0; i < 100; ++i) {
        request.set_minuend(t * 1000 + i);
        request.set_subtrahend(t);
        if (stub.subtract(request).number_value() == t * 999 + i) ++answered;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(answered.load(), 800);
  EXPECT_FALSE(slow_returned.load()) << "the slow call should still be waiting";
  slow_options.canceller->cancel();
  slow.join();
  EXPECT_TRUE(server_saw_cancel());
}

TEST_F(Calls, WhenTheThreadRunningTheIoHasItsAnswerAnotherWaitingCallerTakesOver) {
  GrpcChannel channel(grpc_target(), 10s);
  const pb::MethodDescriptor& echo = method("conduit.interop.JsonRpcExamples.echo");
  auto call_waiting = [&](std::shared_ptr<CallCanceller> canceller, Status& status) {
    pb::Value request = wait_request(), response;
    CallOptions options;
    options.canceller = std::move(canceller);
    status = channel.call(echo, request, response, options);
  };
  auto first_canceller = std::make_shared<CallCanceller>();
  auto second_canceller = std::make_shared<CallCanceller>();
  Status first_status, second_status;
  std::thread first([&] { call_waiting(first_canceller, first_status); });
  wait_until_waiting();
  waiting_ = false;
  std::atomic<bool> second_returned{false};
  std::thread second([&] {
    call_waiting(second_canceller, second_status);
    second_returned = true;
  });
  wait_until_waiting();
  // Whichever thread runs the I/O gets its answer first; the other must
  // then run it for its own call, or its cancellation never goes out.
  first_canceller->cancel();
  first.join();
  second_canceller->cancel();
  for (int i = 0; i < 300 && !second_returned; ++i) std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(second_returned.load()) << "the second call was left with nobody running its I/O";
  second.join();
  EXPECT_EQ(first_status.code(), StatusCode::cancelled) << first_status.to_string();
  EXPECT_EQ(second_status.code(), StatusCode::cancelled) << second_status.to_string();
}

TEST_F(Calls, AnAsyncCallOnAChannelSoFarUsedBlockingCompletesAndKeepsBeingServed) {
  GrpcChannel channel(grpc_target(), 10s);
  interop::JsonRpcExamplesStub stub(channel);
  const pb::MethodDescriptor& echo = method("conduit.interop.JsonRpcExamples.echo");
  const pb::MethodDescriptor& subtract = method("conduit.interop.JsonRpcExamples.subtract");
  interop::SubtractRequest request;
  request.set_minuend(5);
  request.set_subtrahend(3);
  EXPECT_EQ(stub.subtract(request).number_value(), 2);  // blocking: no I/O thread yet
  CallOptions slow_options;
  slow_options.canceller = std::make_shared<CallCanceller>();
  Status slow_status;
  std::thread slow([&] {
    pb::Value wait = wait_request(), response;
    slow_status = channel.call(echo, wait, response, slow_options);
  });
  wait_until_waiting();
  // The first asynchronous call, while a blocking caller runs the I/O.
  for (int round = 0; round < 2; ++round) {
    pb::Value response;
    std::promise<Status> done;
    channel.async_call(subtract, request, response, {},
                       [&](Status status) { done.set_value(std::move(status)); });
    auto future = done.get_future();
    ASSERT_EQ(future.wait_for(5s), std::future_status::ready) << "round " << round;
    EXPECT_TRUE(future.get().ok());
    EXPECT_EQ(response.number_value(), 2);
    if (round == 0) {  // the blocking caller goes: the I/O thread carries on
      slow_options.canceller->cancel();
      slow.join();
    }
  }
  EXPECT_EQ(slow_status.code(), StatusCode::cancelled) << slow_status.to_string();
  EXPECT_EQ(stub.subtract(request).number_value(), 2);
}

// Over HTTP/1.1 a handler runs with no read of its connection under way:
// the server sees the client close while it runs, and only that (a request
// sent behind it is no reason to cancel it).
TEST_F(Calls, AnHttpCallIsCancelledWhenItsClientClosesButNotWhenMoreRequestsArrive) {
  const std::string body = R"({"jsonrpc":"2.0","method":"echo","params":{"wait":true},"id":1})";
  const std::string request =
      "POST /jsonrpc HTTP/1.1\r\nHost: x\r\nContent-Type: "
      "application/json\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body;
  const std::string port = tcp_.substr(tcp_.rfind(':') + 1);
  auto socket = std::make_optional(ipc::TcpSocket::connect("127.0.0.1", std::stoi(port)));
  testing::send_all(socket->fd(), request);
  wait_until_waiting();
  ASSERT_TRUE(waiting_.load());
  testing::send_all(socket->fd(), request);  // pipelined behind it
  std::this_thread::sleep_for(200ms);
  EXPECT_FALSE(saw_cancel_.load()) << "a pipelined request cancelled the call before it";
  socket.reset();  // the client gives up
  EXPECT_TRUE(server_saw_cancel());
}

// The asynchronous forms, for each protocol's channel.
struct AsyncCase {
  const char* name;
  bool grpc;
  const char* listener;  // "tcp" or "unix"
  const char* form;      // JSON-RPC's URI form
};

void PrintTo(const AsyncCase& c, std::ostream* out) {
  *out << c.name;
}

class AsyncCalls : public Calls, public ::testing::WithParamInterface<AsyncCase> {
 protected:
  std::unique_ptr<ClientChannel> channel() {
    const AsyncCase& c = GetParam();
    const std::string bound = std::string(c.listener) == "tcp" ? tcp_ : unix_;
    if (c.grpc)
      return std::make_unique<GrpcChannel>(bound.starts_with("tcp://") ? bound.substr(6) : bound,
                                           10s);
    const std::string form = c.form;
    if (form == "http") return make_channel("http://" + tcp_.substr(6) + "/jsonrpc", 10s);
    return std::make_unique<JsonRpcChannel>(bound, 10s);
  }
};

TEST_P(AsyncCalls, CallbackFormAnswersEachCallOnceWithItsOwnResponse) {
  std::unique_ptr<ClientChannel> channel = this->channel();
  const pb::MethodDescriptor& subtract = method("conduit.interop.JsonRpcExamples.subtract");
  constexpr int kCalls = 200;
  std::vector<interop::SubtractRequest> requests(kCalls);
  std::vector<pb::Value> responses(kCalls);
  std::vector<Status> statuses(kCalls);
  std::atomic<int> done{0};
  std::promise<void> all;
  for (int i = 0; i < kCalls; ++i) {
    requests[i].set_minuend(i * 3);
    requests[i].set_subtrahend(i);
    channel->async_call(subtract, requests[i], responses[i], {}, [&, i](Status status) {
      statuses[i] = std::move(status);
      if (++done == kCalls) all.set_value();
    });
  }
  ASSERT_EQ(all.get_future().wait_for(20s), std::future_status::ready);
  for (int i = 0; i < kCalls; ++i) {
    ASSERT_TRUE(statuses[i].ok()) << i << ": " << statuses[i].to_string();
    EXPECT_EQ(responses[i].number_value(), 2 * i);
  }
}

TEST_P(AsyncCalls, CoroutineFormAwaitsTheStatusOnItsOwnExecutor) {
  asio::io_context io;  // outlives the channel, which posts completions to it
  std::unique_ptr<ClientChannel> channel = this->channel();
  const std::thread::id io_thread = std::this_thread::get_id();
  std::vector<double> results;
  bool on_own_thread = true;
  Status failed;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        interop::JsonRpcExamplesStub stub(*channel);
        for (int i = 0; i < 20; ++i) {
          interop::SubtractRequest request;
          request.set_minuend(50);
          request.set_subtrahend(i);
          pb::Value difference;
          Status status =
              co_await stub.async_subtract(request, difference, {}, asio::use_awaitable);
          on_own_thread = on_own_thread && std::this_thread::get_id() == io_thread;
          if (!status.ok()) failed = status;
          results.push_back(difference.number_value());
        }
      },
      asio::detached);
  io.run_for(20s);
  ASSERT_TRUE(failed.ok()) << failed.to_string();
  ASSERT_EQ(results.size(), 20u);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(results[i], 50 - i);
  EXPECT_TRUE(on_own_thread);
}

TEST_P(AsyncCalls, CancellingAnAsyncCallEndsItCancelledAndReachesTheServer) {
  std::unique_ptr<ClientChannel> channel = this->channel();
  const pb::MethodDescriptor& echo = method("conduit.interop.JsonRpcExamples.echo");
  pb::Value request = wait_request(), response;
  CallOptions options;
  options.canceller = std::make_shared<CallCanceller>();
  std::promise<Status> ended;
  channel->async_call(echo, request, response, options,
                      [&](Status status) { ended.set_value(std::move(status)); });
  wait_until_waiting();
  ASSERT_TRUE(waiting_.load());
  options.canceller->cancel();
  auto future = ended.get_future();
  ASSERT_EQ(future.wait_for(2s), std::future_status::ready);
  EXPECT_EQ(future.get().code(), StatusCode::cancelled);
  // gRPC resets the stream; JSON-RPC closes the connection (over HTTP/1.1,
  // the one the call went on), which the server sees while the call runs.
  EXPECT_TRUE(server_saw_cancel());
  // The channel goes on.
  pb::Value later, again;
  (*later.mutable_struct_value()->mutable_fields())["after"].set_bool_value(true);
  const Status after = channel->call(echo, later, again, {});
  EXPECT_TRUE(after.ok()) << after.to_string();
  EXPECT_TRUE(again.struct_value().fields().contains("after"));
}

TEST_P(AsyncCalls, AnAsioCancellationOfTheAwaitingCoroutineCancelsTheCall) {
  using namespace asio::experimental::awaitable_operators;
  asio::io_context io;  // outlives the channel, which posts completions to it
  std::unique_ptr<ClientChannel> channel = this->channel();
  const pb::MethodDescriptor& echo = method("conduit.interop.JsonRpcExamples.echo");
  bool timer_won = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        pb::Value request = wait_request(), response;
        asio::steady_timer timer(co_await asio::this_coro::executor, 300ms);
        auto winner =
            co_await (channel->async_call(echo, request, response, {}, asio::use_awaitable) ||
                      timer.async_wait(asio::use_awaitable));
        timer_won = winner.index() == 1;
      },
      asio::detached);
  io.run_for(10s);
  EXPECT_TRUE(timer_won);
  if (std::string(GetParam().form) != "http") {
    EXPECT_TRUE(server_saw_cancel());
  }
}

INSTANTIATE_TEST_SUITE_P(Protocols, AsyncCalls,
                         ::testing::Values(AsyncCase{"grpc_tcp", true, "tcp", ""},
                                           AsyncCase{"grpc_unix", true, "unix", ""},
                                           AsyncCase{"jsonrpc_http", false, "tcp", "http"},
                                           AsyncCase{"jsonrpc_lines", false, "tcp", "lines"},
                                           AsyncCase{"jsonrpc_unix", false, "unix", "lines"}),
                         [](const auto& info) { return std::string(info.param.name); });

// Streams without blocking: a coroutine writes and reads a bidirectional
// gRPC stream through the typed reader-writer and its async forms.
TEST_F(Calls, ACoroutineDrivesABidirectionalStreamAsynchronously) {
  asio::io_context io;  // outlives the channel, which posts completions to it
  GrpcChannel channel(grpc_target(), 10s);
  const pb::MethodDescriptor& duplex = method("grpc.testing.TestService.FullDuplexCall");
  std::vector<std::size_t> sizes;
  Status finished(StatusCode::unknown, "not finished");
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        ClientReaderWriter<::grpc::testing::StreamingOutputCallRequest,
                           ::grpc::testing::StreamingOutputCallResponse>
            stream(channel.open(duplex, {}));
        for (int size : {5, 0, 70000, 12}) {
          ::grpc::testing::StreamingOutputCallRequest request;
          request.add_response_parameters()->set_size(size);
          if (!co_await stream.async_write(request, asio::use_awaitable)) break;
          ::grpc::testing::StreamingOutputCallResponse response;
          if (!co_await stream.async_read(response, asio::use_awaitable)) break;
          sizes.push_back(response.payload().body().size());
        }
        stream.writes_done();
        ::grpc::testing::StreamingOutputCallResponse extra;
        EXPECT_FALSE(co_await stream.async_read(extra, asio::use_awaitable));
        finished = co_await stream.async_finish(asio::use_awaitable);
      },
      asio::detached);
  io.run_for(10s);
  EXPECT_TRUE(finished.ok()) << finished.to_string();
  EXPECT_EQ(sizes, (std::vector<std::size_t>{5, 0, 70000, 12}));
}

TEST_F(Calls, AStreamThatCannotGoOverJsonRpcFinishesAsynchronouslyUnimplemented) {
  JsonRpcChannel channel(tcp_, 5s);
  const pb::MethodDescriptor& duplex = method("grpc.testing.TestService.FullDuplexCall");
  std::unique_ptr<ClientStream> stream = channel.open(duplex, {});
  std::promise<Status> ended;
  stream->async_finish([&](Status status) { ended.set_value(std::move(status)); });
  auto future = ended.get_future();
  ASSERT_EQ(future.wait_for(5s), std::future_status::ready);
  const Status status = future.get();
  EXPECT_EQ(status.code(), StatusCode::unimplemented);
  EXPECT_NE(status.message().find("streams"), std::string::npos) << status.message();
}

TEST_F(Calls, CancellingABlockingCallFromAnotherThreadReturnsItCancelled) {
  GrpcChannel channel(grpc_target(), 10s);
  const pb::MethodDescriptor& echo = method("conduit.interop.JsonRpcExamples.echo");
  pb::Value request = wait_request(), response;
  CallOptions options;
  options.canceller = std::make_shared<CallCanceller>();
  std::thread canceller([&] {
    wait_until_waiting();
    options.canceller->cancel();
  });
  const auto started = std::chrono::steady_clock::now();
  const Status status = channel.call(echo, request, response, options);
  canceller.join();
  EXPECT_EQ(status.code(), StatusCode::cancelled) << status.to_string();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 4s);
  EXPECT_TRUE(server_saw_cancel());
}

TEST_F(Calls, ABlockingCallFromACompletionOfTheSameChannelFailsRatherThanHangs) {
  GrpcChannel channel(grpc_target(), 5s);
  const pb::MethodDescriptor& echo = method("conduit.interop.JsonRpcExamples.echo");
  pb::Value request, first, second;
  request.set_string_value("x");
  std::promise<Status> inner;
  channel.async_call(echo, request, first, {},
                     [&](Status) { inner.set_value(channel.call(echo, request, second, {})); });
  auto future = inner.get_future();
  ASSERT_EQ(future.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(future.get().code(), StatusCode::failed_precondition);
}

}  // namespace
}  // namespace conduit::rpc
