// conduit's gRPC client (GrpcChannel): generated stubs over gRPC to conduit's
// own server on TCP, a UNIX socket and shared memory, status, metadata,
// deadlines, reconnection (gRPC's interop cases, against grpcio too, are in
// grpc_client_interop_test.cpp).
#include <google/protobuf/struct.pb.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <mutex>
#include <thread>

#include "conduit/interop/jsonrpc_examples.conduit.h"
#include "conduit/ipc/pipe.hpp"
#include "conduit/ipc/process.hpp"
#include "conduit/ipc/unix_socket.hpp"
#include "conduit/rpc/grpc_channel.hpp"
#include "conduit/rpc/grpc_reflection.hpp"
#include "conduit/rpc/server.hpp"
#include "grpc/testing/messages.pb.h"
#include "rpc/protocols/grpc/wire.hpp"
#include "interop/grpc_testing.hpp"
#include "rpc/transports/shm_transport.hpp"
#include "test_support.hpp"

namespace conduit::rpc {
namespace {

using namespace std::chrono_literals;
using interop::JsonRpcExamplesStub;
using testing::TempDir;

// Bytes of a rich status (a google.rpc.Status as a handler would serialize
// it): code 3, message "see the details", then a NUL and a byte above 0x7f.
const std::string kDetails("\x08\x03\x12\x0fsee the details\x1a\x02\x00\xff", 21);

// subtract and echo of the examples (echo of "sleep" sleeps 500 ms first),
// and grpc.testing.TestService, on loopback TCP and a UNIX socket.
class GrpcClient : public ::testing::Test {
 protected:
  void SetUp() override {
    services_.add<interop::SubtractRequest, google::protobuf::Value>(
        "conduit.interop.JsonRpcExamples/subtract",
        [](CallContext&, const interop::SubtractRequest& request, google::protobuf::Value& out) {
          out.set_number_value(request.minuend() - request.subtrahend());
          return Status();
        });
    services_.add<google::protobuf::Value, google::protobuf::Value>(
        "conduit.interop.JsonRpcExamples/echo",
        [](CallContext&, const google::protobuf::Value& request, google::protobuf::Value& out) {
          if (request.string_value() == "sleep") std::this_thread::sleep_for(500ms);
          if (request.string_value() == "fail")
            return Status(StatusCode::failed_precondition, "asked to fail: ünïcode\n%");
          if (request.string_value() == "fail with details")
            return Status(StatusCode::invalid_argument, "see the details", kDetails);
          out.CopyFrom(request);
          return Status();
        });
    add_grpc_testing(services_);
    add_grpc_reflection(services_);
    start();
  }
  void TearDown() override { server_->shutdown(1s); }

  void start() {
    server_ = std::make_unique<Server>(services_);
    tcp_ = server_->listen(tcp_.empty() ? "tcp://127.0.0.1:0" : tcp_);
    unix_ = server_->listen("unix:" + dir_.path() + "/grpc.sock");
    shm_ = server_->listen("shm+unix:" + dir_.path() + "/grpc-shm.sock");
    server_->start();
  }

  std::string tcp_target() const { return tcp_.substr(6); }  // HOST:PORT
  std::string unix_target() const { return unix_; }          // unix:/path
  std::string shm_target() const { return shm_; }            // shm+unix:/path

  TempDir dir_;
  ServiceTable services_;
  std::unique_ptr<Server> server_;
  std::string tcp_, unix_, shm_;
};

TEST_F(GrpcClient, GeneratedStubCallsOverTcpUnixSocketsAndSharedMemory) {
  for (const std::string& target : {tcp_target(), unix_target(), shm_target()}) {
    GrpcChannel channel(target, 5s);
    JsonRpcExamplesStub stub(channel);
    interop::SubtractRequest request;
    request.set_minuend(42);
    request.set_subtrahend(23);
    EXPECT_EQ(stub.subtract(request).number_value(), 19) << target;
    google::protobuf::Value nested;
    (*nested.mutable_struct_value()->mutable_fields())["list"]
        .mutable_list_value()
        ->add_values()
        ->set_string_value("x");
    google::protobuf::Value echoed;
    ASSERT_TRUE(stub.echo(nested, &echoed).ok()) << target;
    EXPECT_EQ(echoed.SerializeAsString(), nested.SerializeAsString());
    google::protobuf::Value big;
    big.set_string_value(std::string(3 << 20, 'b'));
    EXPECT_EQ(stub.echo(big).string_value().size(), big.string_value().size()) << target;
  }
}

TEST_F(GrpcClient, OneChannelSharedByThreadsServesEveryCall) {
  GrpcChannel channel(tcp_target(), 10s);
  JsonRpcExamplesStub stub(channel);
  std::atomic<int> right{0};
  std::vector<std::string> wrong;
  std::mutex wrong_mutex;
  testing::on_threads(4, [&](int t) {
    for (int i = 0; i < 150; ++i) {
      interop::SubtractRequest request;
      request.set_minuend(1000 * t + i);
      request.set_subtrahend(t);
      google::protobuf::Value difference;
      const Status status = stub.subtract(request, &difference);
      if (status.ok() && difference.number_value() == 1000 * t + i - t) {
        ++right;
      } else {
        std::lock_guard lock(wrong_mutex);
        wrong.push_back(status.to_string());
      }
    }
  });
  EXPECT_EQ(right.load(), 600) << (wrong.empty() ? "" : wrong.front());
}

TEST_F(GrpcClient, ServerStatusMessageAndDetailsComeBackAsTheyWereSet) {
  for (const std::string& target : {tcp_target(), shm_target()}) {
    SCOPED_TRACE(target);
    GrpcChannel channel(target, 5s);
    JsonRpcExamplesStub stub(channel);
    google::protobuf::Value fail;
    fail.set_string_value("fail");
    google::protobuf::Value out;
    Status status = stub.echo(fail, &out);
    EXPECT_EQ(status.code(), StatusCode::failed_precondition);
    EXPECT_EQ(status.message(), "asked to fail: ünïcode\n%");
    EXPECT_TRUE(status.details().empty());
    fail.set_string_value("fail with details");
    status = stub.echo(fail, &out);
    EXPECT_EQ(status.code(), StatusCode::invalid_argument);
    EXPECT_EQ(status.details(), kDetails) << "grpc-status-details-bin was not passed through";
    std::string response;
    status = channel.call_raw("/no.such.Service/Method", "", response, 5s);
    EXPECT_EQ(status.code(), StatusCode::unimplemented) << status.to_string();
  }
}

TEST_F(GrpcClient, CallOptionsCarryMetadataBothWaysThroughTheTypedCall) {
  GrpcChannel channel(tcp_target(), 5s);
  const auto* method = google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(
      "grpc.testing.TestService.UnaryCall");
  ASSERT_NE(method, nullptr);
  ::grpc::testing::SimpleRequest request;
  request.set_response_size(3);
  ::grpc::testing::SimpleResponse response;
  std::multimap<std::string, std::string> received;
  CallOptions options;
  options.metadata = {{"x-grpc-test-echo-initial", "bearer-ish"},
                      {"x-grpc-test-echo-trailing-bin", std::string("\x00\xff", 2)}};
  options.received = &received;
  const Status status = channel.call(*method, request, response, options);
  ASSERT_TRUE(status.ok()) << status.to_string();
  EXPECT_EQ(response.payload().body().size(), 3u);
  ASSERT_EQ(received.count("x-grpc-test-echo-initial"), 1u);
  EXPECT_EQ(received.find("x-grpc-test-echo-initial")->second, "bearer-ish");
  ASSERT_EQ(received.count("x-grpc-test-echo-trailing-bin"), 1u);
  EXPECT_EQ(received.find("x-grpc-test-echo-trailing-bin")->second, std::string("\x00\xff", 2));
}

TEST_F(GrpcClient, MetadataGoesOutAndComesBackWithBinaryValues) {
  for (const std::string& target : {unix_target(), shm_target()}) {
    SCOPED_TRACE(target);
    GrpcChannel channel(target, 5s);
    ::grpc::testing::SimpleRequest request;
    request.set_response_size(10);
    std::string response;
    std::multimap<std::string, std::string> received;
    Status status = channel.call_raw(
        "/grpc.testing.TestService/UnaryCall", request.SerializeAsString(), response, 5s,
        {{"x-grpc-test-echo-initial", "initial value"},
         {"x-grpc-test-echo-trailing-bin", std::string("\x00\x01\xfe\xff", 4)}},
        &received);
    ASSERT_TRUE(status.ok()) << status.to_string();
    ::grpc::testing::SimpleResponse parsed;
    ASSERT_TRUE(parsed.ParseFromString(response));
    EXPECT_EQ(parsed.payload().body().size(), 10u);
    ASSERT_EQ(received.count("x-grpc-test-echo-initial"), 1u);
    EXPECT_EQ(received.find("x-grpc-test-echo-initial")->second, "initial value");
    ASSERT_EQ(received.count("x-grpc-test-echo-trailing-bin"), 1u);
    EXPECT_EQ(received.find("x-grpc-test-echo-trailing-bin")->second,
              std::string("\x00\x01\xfe\xff", 4));
  }
}

TEST_F(GrpcClient, CompressedResponseIsExpanded) {
  GrpcChannel channel(tcp_target(), 5s);
  ::grpc::testing::SimpleRequest request;
  request.set_response_size(100000);
  request.mutable_response_compressed()->set_value(true);
  std::string response;
  std::multimap<std::string, std::string> received;
  Status status = channel.call_raw("/grpc.testing.TestService/UnaryCall",
                                   request.SerializeAsString(), response, 5s, {}, &received);
  ASSERT_TRUE(status.ok()) << status.to_string();
  ASSERT_EQ(received.count("grpc-encoding"), 1u) << "the server did not compress";
  EXPECT_EQ(received.find("grpc-encoding")->second, "gzip");
  ::grpc::testing::SimpleResponse parsed;
  ASSERT_TRUE(parsed.ParseFromString(response));
  EXPECT_EQ(parsed.payload().body(), std::string(100000, '\0'));
}

TEST_F(GrpcClient, ResponseOverTheClientsLimitIsResourceExhaustedAndTheChannelGoesOn) {
  for (const std::string& target : {tcp_target(), shm_target()}) {
    SCOPED_TRACE(target);
    GrpcChannel channel(target, 5s);
    channel.set_max_response_bytes(100000);
    ::grpc::testing::SimpleRequest request;
    request.set_response_size(200000);
    std::string response;
    Status status = channel.call_raw("/grpc.testing.TestService/UnaryCall",
                                     request.SerializeAsString(), response, 5s);
    EXPECT_EQ(status.code(), StatusCode::resource_exhausted) << status.to_string();
    EXPECT_NE(status.message().find("client's limit of 100000"), std::string::npos)
        << status.message();
    // Compressed, the message is small on the wire; expanded, it is not.
    request.mutable_response_compressed()->set_value(true);
    status = channel.call_raw("/grpc.testing.TestService/UnaryCall", request.SerializeAsString(),
                              response, 5s);
    EXPECT_EQ(status.code(), StatusCode::resource_exhausted) << status.to_string();
    EXPECT_NE(status.message().find("expands beyond"), std::string::npos) << status.message();
    request.set_response_size(1000);
    status = channel.call_raw("/grpc.testing.TestService/UnaryCall", request.SerializeAsString(),
                              response, 5s);
    EXPECT_TRUE(status.ok()) << status.to_string();
  }
}

TEST_F(GrpcClient, SlowCallIsDeadlineExceededAndTheNextCallIsServed) {
  for (const std::string& target : {tcp_target(), shm_target()}) {
    SCOPED_TRACE(target);
    GrpcChannel channel(target, 5s);
    JsonRpcExamplesStub stub(channel);
    google::protobuf::Value sleep;
    sleep.set_string_value("sleep");
    google::protobuf::Value out;
    CallOptions quick;
    quick.timeout = 100ms;
    const auto started = std::chrono::steady_clock::now();
    EXPECT_EQ(stub.echo(sleep, &out, quick).code(), StatusCode::deadline_exceeded);
    EXPECT_LT(std::chrono::steady_clock::now() - started, 400ms);
    interop::SubtractRequest request;
    request.set_minuend(2);
    request.set_subtrahend(1);
    EXPECT_EQ(stub.subtract(request).number_value(), 1) << "the late answer was taken for this one";
  }
}

TEST_F(GrpcClient, NothingListeningIsUnavailable) {
  GrpcChannel channel("unix:" + dir_.path() + "/nobody.sock", 2s);
  std::string response;
  EXPECT_EQ(channel.call_raw("/grpc.testing.TestService/EmptyCall", "", response, 2s).code(),
            StatusCode::unavailable);
  EXPECT_THROW(GrpcChannel("no-port-here"), InvalidUri);
}

// A "server" that is not one: it accepts on a UNIX socket and answers each
// connection with `reply` (nothing at all when empty), then waits.
class HostileServer {
 public:
  HostileServer(const std::string& path, std::string reply)
      : socket_(
            ipc::BoundUnixSocket::bind(ipc::UnixAddress::parse(path), ipc::UnixSocketType::stream)),
        thread_([this, reply = std::move(reply)] {
          pollfd ready{socket_.fd(), POLLIN, 0};
          if (::poll(&ready, 1, 5000) != 1) return;
          ipc::UnixSocket connection = socket_.accept();
          if (!reply.empty())
            (void)::send(connection.fd(), reply.data(), reply.size(), MSG_NOSIGNAL);
          std::unique_lock lock(mutex_);
          done_.wait_for(lock, 5s, [this] { return stop_; });
        }) {}
  ~HostileServer() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    done_.notify_all();
    thread_.join();
  }

 private:
  ipc::BoundUnixSocket socket_;
  std::mutex mutex_;
  std::condition_variable done_;
  bool stop_ = false;
  std::thread thread_;
};

TEST_F(GrpcClient, AServerThatSendsGarbageIsAnErrorNotAHang) {
  const std::string path = dir_.path() + "/garbage.sock";
  HostileServer server(path, std::string(64, '\xff'));
  GrpcChannel channel("unix:" + path, 5s);
  std::string response;
  const auto started = std::chrono::steady_clock::now();
  Status status = channel.call_raw("/grpc.testing.TestService/EmptyCall", "", response, 5s);
  EXPECT_EQ(status.code(), StatusCode::internal) << status.to_string();
  EXPECT_NE(status.message().find("HTTP/2"), std::string::npos) << status.message();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 2s);
}

TEST_F(GrpcClient, AServerThatNeverAnswersIsDeadlineExceeded) {
  const std::string path = dir_.path() + "/silent.sock";
  HostileServer server(path, "");
  GrpcChannel channel("unix:" + path, 5s);
  std::string response;
  const auto started = std::chrono::steady_clock::now();
  Status status = channel.call_raw("/grpc.testing.TestService/EmptyCall", "", response, 200ms);
  EXPECT_EQ(status.code(), StatusCode::deadline_exceeded) << status.to_string();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 2s);
}

TEST_F(GrpcClient, ReconnectsAfterTheServerRestarted) {
  GrpcChannel channel(tcp_target(), 5s);
  JsonRpcExamplesStub stub(channel);
  interop::SubtractRequest request;
  request.set_minuend(5);
  request.set_subtrahend(3);
  EXPECT_EQ(stub.subtract(request).number_value(), 2);
  server_->shutdown(0ms);
  start();  // the same TCP port
  EXPECT_EQ(stub.subtract(request).number_value(), 2);
}

// ---- over shared memory (the server's shm+unix: listener) ----

TEST_F(GrpcClient, StreamsOverSharedMemory) {
  GrpcChannel channel(shm_target(), 5s);
  // Server streaming: one response per size asked for, in order.
  ::grpc::testing::StreamingOutputCallRequest out_request;
  for (int size : {1, 100, 70000, 0, 2 << 20})
    out_request.add_response_parameters()->set_size(size);
  std::vector<std::string> responses;
  Status status = channel.call_stream_raw("/grpc.testing.TestService/StreamingOutputCall",
                                          {out_request.SerializeAsString()}, responses, 10s);
  ASSERT_TRUE(status.ok()) << status.to_string();
  ASSERT_EQ(responses.size(), 5u);
  for (std::size_t i = 0; i < responses.size(); ++i) {
    ::grpc::testing::StreamingOutputCallResponse parsed;
    ASSERT_TRUE(parsed.ParseFromString(responses[i]));
    EXPECT_EQ(parsed.payload().body().size(),
              static_cast<std::size_t>(out_request.response_parameters(i).size()));
  }
  // Client streaming: the sizes of every request, added up.
  std::vector<std::string> requests;
  std::size_t total = 0;
  for (int size : {27182, 8, 1828, 45904, 3 << 20}) {
    ::grpc::testing::StreamingInputCallRequest in_request;
    in_request.mutable_payload()->set_body(std::string(size, 'i'));
    requests.push_back(in_request.SerializeAsString());
    total += size;
  }
  responses.clear();
  status = channel.call_stream_raw("/grpc.testing.TestService/StreamingInputCall", requests,
                                   responses, 10s);
  ASSERT_TRUE(status.ok()) << status.to_string();
  ASSERT_EQ(responses.size(), 1u);
  ::grpc::testing::StreamingInputCallResponse aggregated;
  ASSERT_TRUE(aggregated.ParseFromString(responses[0]));
  EXPECT_EQ(static_cast<std::size_t>(aggregated.aggregated_payload_size()), total);
}

TEST_F(GrpcClient, ClientKilledMidStreamOverSharedMemoryLeavesTheServerServing) {
  // `conduit call` over shm asks reflection first, then the stream, whose
  // second message comes 2 s after the first; it is killed in between.
  ipc::SpawnOptions options;
  options.argv = {CONDUIT_BINARY, "call", "grpc+" + shm_target(),
                  "grpc.testing.TestService/StreamingOutputCall",
                  R"({"responseParameters":[{"size":5},{"size":5,"intervalUs":2000000}]})"};
  ipc::PipePair output = ipc::PipePair::create();
  options.stdout_fd = output.write_end.get();
  ipc::Process caller = ipc::Process::spawn(options);
  output.write_end.reset();
  pollfd ready{output.read_end.get(), POLLIN, 0};
  ASSERT_EQ(::poll(&ready, 1, 10000), 1) << "no first response within 10 s";
  char first[256] = {};
  ASSERT_GT(::read(output.read_end.get(), first, sizeof first - 1), 0)
      << "conduit call ended without a response";
  EXPECT_NE(std::string(first).find("payload"), std::string::npos) << first;
  caller.kill(SIGKILL);
  ASSERT_TRUE(caller.wait_for(5s));
  // Other clients are served, at once and after the stream has run out.
  for (int round = 0; round < 2; ++round) {
    GrpcChannel channel(shm_target(), 5s);
    JsonRpcExamplesStub stub(channel);
    interop::SubtractRequest request;
    request.set_minuend(7);
    request.set_subtrahend(round);
    EXPECT_EQ(stub.subtract(request).number_value(), 7 - round);
    if (round == 0) std::this_thread::sleep_for(2500ms);
  }
}

TEST_F(GrpcClient, GarbageOverSharedMemoryGetsGoawayAndOtherClientsAreServed) {
  shm::Link link = shm::connect_link(shm_target().substr(9));
  link.send(std::string(grpc::kPreface) + std::string(40, '\xee'));
  std::string answer;
  bool timed_out = false;
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (std::chrono::steady_clock::now() < deadline) {
    std::optional<std::string_view> piece = link.receive(1s, &timed_out);
    if (!piece) {
      if (timed_out) continue;
      break;  // the server closed the link
    }
    answer.append(*piece);
  }
  ASSERT_FALSE(timed_out) << "the server kept the link open";
  // The frames that came back: the server's SETTINGS, then GOAWAY.
  std::vector<int> types;
  for (std::size_t at = 0; at + 9 <= answer.size();) {
    const std::size_t length = (std::size_t{static_cast<std::uint8_t>(answer[at])} << 16) |
                               (std::size_t{static_cast<std::uint8_t>(answer[at + 1])} << 8) |
                               static_cast<std::uint8_t>(answer[at + 2]);
    types.push_back(static_cast<std::uint8_t>(answer[at + 3]));
    at += 9 + length;
  }
  EXPECT_NE(std::find(types.begin(), types.end(), 7), types.end()) << "no GOAWAY came";
  GrpcChannel channel(shm_target(), 5s);
  JsonRpcExamplesStub stub(channel);
  interop::SubtractRequest request;
  request.set_minuend(3);
  request.set_subtrahend(1);
  EXPECT_EQ(stub.subtract(request).number_value(), 2);
}

TEST_F(GrpcClient, ServerGoneOverSharedMemoryIsUnavailable) {
  GrpcChannel channel(shm_target(), 5s);
  JsonRpcExamplesStub stub(channel);
  interop::SubtractRequest request;
  request.set_minuend(5);
  request.set_subtrahend(3);
  EXPECT_EQ(stub.subtract(request).number_value(), 2);
  server_->shutdown(0ms);
  google::protobuf::Value out;
  const auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(stub.subtract(request, &out).code(), StatusCode::unavailable);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 3s);
  start();
}

}  // namespace
}  // namespace conduit::rpc
