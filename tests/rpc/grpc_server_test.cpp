// What a gRPC request carries reaches the handler, and what the handler sets
// reaches the client: metadata (text and -bin), the grpc-timeout deadline,
// response metadata, and a client's RST_STREAM as the call's cancellation.
// Requests are made with nghttp (nghttp2-client) and with raw HTTP/2 frames.
#include <google/protobuf/struct.pb.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <mutex>
#include <thread>

#include "conduit/ipc/tcp_socket.hpp"
#include "conduit/rpc/grpc_channel.hpp"
#include "conduit/rpc/server.hpp"
#include "conduit/rpc/service.hpp"
#include "generated_kinds_test.pb.h"
#include "rpc/protocols/grpc/wire.hpp"
#include "test_support.hpp"

namespace conduit::rpc {
namespace {

using namespace std::chrono_literals;
using testing::TempDir;

constexpr const char* kEcho = "/conduit.interop.JsonRpcExamples/echo";

// A server whose echo records what its calls saw. A request of the string
// "wait" makes the handler wait (up to 5 s) for its call to be cancelled.
class RecordingServer {
 public:
  RecordingServer() {
    services_.add<google::protobuf::Value, google::protobuf::Value>(
        "conduit.interop.JsonRpcExamples/echo",
        [this](CallContext& context, const google::protobuf::Value& request,
               google::protobuf::Value& response) {
          {
            std::lock_guard lock(mutex_);
            metadata_ = context.metadata;
            deadline_ = context.deadline;
          }
          if (request.string_value() == "wait") {
            started_ = true;
            const auto give_up = std::chrono::steady_clock::now() + 5s;
            while (!context.cancelled() && std::chrono::steady_clock::now() < give_up)
              std::this_thread::sleep_for(5ms);
            saw_cancel_ = context.cancelled();
          }
          context.response_metadata.emplace("x-answer", "forty-two");
          context.response_metadata.emplace("x-answer-bin", std::string("\x00\xff\x01", 3));
          response.CopyFrom(request);
          return Status();
        });
    ServerOptions options;
    options.threads = 2;
    server_ = std::make_unique<Server>(services_, options);
    std::string address = server_->listen("tcp://127.0.0.1:0");
    port_ = static_cast<std::uint16_t>(std::stoi(address.substr(address.rfind(':') + 1)));
    server_->start();
  }
  ~RecordingServer() { server_->shutdown(1s); }

  std::uint16_t port() const { return port_; }
  Server& server() { return *server_; }
  std::multimap<std::string, std::string> metadata() {
    std::lock_guard lock(mutex_);
    return metadata_;
  }
  std::optional<CallContext::Clock::time_point> deadline() {
    std::lock_guard lock(mutex_);
    return deadline_;
  }
  bool started() const { return started_; }
  bool saw_cancel() const { return saw_cancel_; }

 private:
  ServiceTable services_;
  std::unique_ptr<Server> server_;
  std::uint16_t port_ = 0;
  std::mutex mutex_;
  std::multimap<std::string, std::string> metadata_;
  std::optional<CallContext::Clock::time_point> deadline_;
  std::atomic<bool> started_{false};
  std::atomic<bool> saw_cancel_{false};
};

std::string framed_value(const std::string& text) {
  google::protobuf::Value value;
  value.set_string_value(text);
  return grpc::frame_message(value.SerializeAsString());
}

// nghttp -v posting `body` to echo with extra headers: what it printed.
std::string nghttp(std::uint16_t port, const std::string& body,
                   const std::vector<std::string>& headers) {
  TempDir dir;
  const std::string file = dir.path() + "/body";
  std::ofstream(file, std::ios::binary) << body;
  std::vector<std::string> argv = {
      "nghttp", "-v", "-d", file, "-H", "content-type: application/grpc", "-H", "te: trailers"};
  for (const auto& header : headers) {
    argv.push_back("-H");
    argv.push_back(header);
  }
  argv.push_back("http://127.0.0.1:" + std::to_string(port) + kEcho);
  return testing::run_command(argv, 20s).out;
}

TEST(GrpcServer, MetadataAndDeadlineReachTheHandler) {
  RecordingServer server;
  const auto before = std::chrono::steady_clock::now();
  const std::string output =
      nghttp(server.port(), framed_value("hello"),
             {"x-custom: plain value", "x-trace-bin: AAEC/w", "grpc-timeout: 5S"});
  EXPECT_CONTAINS(output, "grpc-status: 0");
  auto metadata = server.metadata();
  ASSERT_EQ(metadata.count("x-custom"), 1u) << output;
  EXPECT_EQ(metadata.find("x-custom")->second, "plain value");
  ASSERT_EQ(metadata.count("x-trace-bin"), 1u);
  EXPECT_EQ(metadata.find("x-trace-bin")->second, std::string("\x00\x01\x02\xff", 4));
  EXPECT_EQ(metadata.count("content-type"), 0u) << "protocol headers are not metadata";
  EXPECT_EQ(metadata.count("grpc-timeout"), 0u);
  auto deadline = server.deadline();
  ASSERT_TRUE(deadline);
  EXPECT_GT(*deadline, before + 4s);
  EXPECT_LT(*deadline, std::chrono::steady_clock::now() + 5s);
}

TEST(GrpcServer, LongestGrpcTimeoutIsNoDeadlineAndTheCallRuns) {
  RecordingServer server;
  // 99999999 hours: more nanoseconds than an int64 holds.
  const std::string output =
      nghttp(server.port(), framed_value("hello"), {"grpc-timeout: 99999999H"});
  EXPECT_CONTAINS(output, "grpc-status: 0");
  EXPECT_FALSE(server.deadline()) << "a deadline centuries away is no deadline worth tracking";
}

TEST(GrpcServer, ResponseMetadataGoesOutWithBinaryValuesInBase64) {
  RecordingServer server;
  const std::string output = nghttp(server.port(), framed_value("hello"), {});
  EXPECT_CONTAINS(output, "x-answer: forty-two");
  EXPECT_CONTAINS(output, "x-answer-bin: AP8B");
  EXPECT_CONTAINS(output, "grpc-status: 0");
}

TEST(GrpcServer, MalformedBinaryMetadataFailsTheCallNotTheServer) {
  RecordingServer server;
  const std::string output = nghttp(server.port(), framed_value("x"), {"x-trace-bin: !!!"});
  EXPECT_EQ(output.find("grpc-status: 0"), std::string::npos) << output;
  EXPECT_CONTAINS(nghttp(server.port(), framed_value("again"), {}), "grpc-status: 0");
}

// ---- raw frames, for what nghttp cannot do: reset a stream mid-call ----

std::string frame(std::uint8_t type, std::uint8_t flags, std::uint32_t stream,
                  const std::string& payload) {
  std::string out;
  const auto length = static_cast<std::uint32_t>(payload.size());
  out += static_cast<char>(length >> 16);
  out += static_cast<char>(length >> 8);
  out += static_cast<char>(length);
  out += static_cast<char>(type);
  out += static_cast<char>(flags);
  for (int shift : {24, 16, 8, 0}) out += static_cast<char>(stream >> shift);
  return out + payload;
}

// A header field with a literal name, not indexed (names and values under
// 127 bytes).
std::string literal(const std::string& name, const std::string& value) {
  return std::string(1, '\0') + static_cast<char>(name.size()) + name +
         static_cast<char>(value.size()) + value;
}

TEST(GrpcServer, ClientResetCancelsTheCallInTheHandler) {
  RecordingServer server;
  auto socket = ipc::TcpSocket::connect("127.0.0.1", server.port());
  const std::string headers = literal(":method", "POST") + literal(":scheme", "http") +
                              literal(":path", kEcho) + literal(":authority", "test") +
                              literal("content-type", "application/grpc") +
                              literal("te", "trailers");
  std::string bytes = std::string(grpc::kPreface) + frame(4, 0, 0, "") + frame(1, 0x4, 1, headers) +
                      frame(0, 0x1, 1, framed_value("wait"));
  ASSERT_EQ(::send(socket.fd(), bytes.data(), bytes.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(bytes.size()));
  ASSERT_TRUE(testing::eventually([&] { return server.started(); }, 5s));
  const std::string reset = frame(3, 0, 1, std::string("\0\0\0\x08", 4));  // CANCEL
  ASSERT_EQ(::send(socket.fd(), reset.data(), reset.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(reset.size()));
  EXPECT_TRUE(testing::eventually([&] { return server.saw_cancel(); }, 3s))
      << "the handler never saw the reset";
}

// Frames read until the peer closes or `timeout`: (type, payload) pairs.
std::vector<std::pair<int, std::string>> read_frames(int fd, std::chrono::milliseconds timeout,
                                                     bool& closed) {
  std::string bytes;
  closed = false;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd ready{fd, POLLIN, 0};
    if (left.count() <= 0 || ::poll(&ready, 1, static_cast<int>(left.count())) != 1) break;
    char chunk[4096];
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) {
      closed = true;
      break;
    }
    bytes.append(chunk, static_cast<std::size_t>(n));
  }
  std::vector<std::pair<int, std::string>> frames;
  while (bytes.size() >= 9) {
    const std::size_t length = (std::size_t{static_cast<std::uint8_t>(bytes[0])} << 16) |
                               (std::size_t{static_cast<std::uint8_t>(bytes[1])} << 8) |
                               static_cast<std::uint8_t>(bytes[2]);
    if (bytes.size() < 9 + length) break;
    frames.emplace_back(static_cast<std::uint8_t>(bytes[3]), bytes.substr(9, length));
    bytes.erase(0, 9 + length);
  }
  return frames;
}

TEST(GrpcServer, ShutdownSaysGoawayToAnIdleConnectionAndDoesNotWaitTheGrace) {
  RecordingServer server;
  auto socket = ipc::TcpSocket::connect("127.0.0.1", server.port());
  const std::string hello = std::string(grpc::kPreface) + frame(4, 0, 0, "");
  ASSERT_EQ(::send(socket.fd(), hello.data(), hello.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(hello.size()));
  bool closed = false;
  auto first = read_frames(socket.fd(), 300ms, closed);  // the server's SETTINGS
  ASSERT_FALSE(first.empty());
  ASSERT_FALSE(closed);
  const auto started = std::chrono::steady_clock::now();
  std::thread stopper([&] { server.server().shutdown(5s); });
  auto frames = read_frames(socket.fd(), 3s, closed);
  stopper.join();
  EXPECT_TRUE(closed) << "the connection stayed open";
  auto goaway = std::find_if(frames.begin(), frames.end(),
                             [](const auto& frame) { return frame.first == 7; });
  ASSERT_NE(goaway, frames.end()) << "no GOAWAY before the close";
  ASSERT_EQ(goaway->second.size(), 8u);
  EXPECT_EQ(goaway->second.substr(4), std::string(4, '\0')) << "GOAWAY with an error code";
  EXPECT_LT(std::chrono::steady_clock::now() - started, 2s) << "shutdown waited out its grace";
}

// ---- streaming calls on threads of their own ----

constexpr const char* kHold = "/conduit.test.kinds.Plotter/MIRROR";

// A server whose bidirectional method holds each call (without reading)
// until released, cancelled, or 10 s have passed.
class HoldingServer {
 public:
  explicit HoldingServer(ServerOptions options) {
    services_.add_bidi_stream<test::kinds::Point, test::kinds::Point>(
        "conduit.test.kinds.Plotter/MIRROR",
        [this](CallContext& context, StreamReader<test::kinds::Point>&,
               StreamWriter<test::kinds::Point>&) {
          ++holding_;
          const auto give_up = std::chrono::steady_clock::now() + 10s;
          while (!released_ && !context.cancelled() && std::chrono::steady_clock::now() < give_up)
            std::this_thread::sleep_for(2ms);
          return Status();
        });
    server_ = std::make_unique<Server>(services_, options);
    address_ = server_->listen("tcp://127.0.0.1:0").substr(6);
    server_->start();
  }
  ~HoldingServer() {
    released_ = true;
    server_->shutdown(1s);
  }

  const std::string& address() const { return address_; }
  int holding() const { return holding_; }
  void release() { released_ = true; }

 private:
  ServiceTable services_;
  std::unique_ptr<Server> server_;
  std::string address_;
  std::atomic<int> holding_{0};
  std::atomic<bool> released_{false};
};

TEST(GrpcServer, StreamingCallsBeyondTheServersCapEndResourceExhausted) {
  constexpr int kCap = 40;
  constexpr int kCalls = 100;
  ServerOptions options;
  options.threads = 2;
  options.max_streaming_calls = kCap;
  HoldingServer server(options);
  const long threads_before = testing::proc_status("Threads");
  std::mutex mutex;
  std::vector<Status> ended;
  std::vector<std::vector<std::string>> responses(kCalls);
  // Two connections: a connection carries at most 100 streams at once.
  std::vector<std::unique_ptr<GrpcChannel>> channels;
  for (int i = 0; i < 2; ++i) channels.push_back(std::make_unique<GrpcChannel>(server.address()));
  for (int i = 0; i < kCalls; ++i) {
    CallOptions call;
    call.timeout = 20s;
    channels[i % channels.size()]->start_raw(kHold, {}, responses[i], call, [&](Status status) {
      std::lock_guard lock(mutex);
      ended.push_back(std::move(status));
    });
  }
  const auto refused = [&] {
    std::lock_guard lock(mutex);
    return static_cast<int>(std::count_if(ended.begin(), ended.end(), [](const Status& status) {
      return status.code() == StatusCode::resource_exhausted;
    }));
  };
  // Each call either holds a thread or has been refused.
  testing::eventually([&] { return server.holding() + refused() == kCalls; }, 10s);
  const long threads_held = testing::proc_status("Threads");
  const int holding = server.holding();
  const int refused_calls = refused();
  server.release();
  ASSERT_TRUE(testing::eventually(
      [&] {
        std::lock_guard lock(mutex);
        return static_cast<int>(ended.size()) == kCalls;
      },
      20s));
  EXPECT_EQ(holding, kCap) << "streaming calls that held a thread each at once";
  EXPECT_EQ(refused_calls, kCalls - kCap);
  EXPECT_LE(threads_held - threads_before, kCap + 8) << "threads grew with the calls";
  for (const Status& status : ended) {
    if (status.code() == StatusCode::resource_exhausted) {
      EXPECT_CONTAINS(status.message(), "max_streaming_calls");
    } else {
      EXPECT_TRUE(status.ok()) << status.to_string();
    }
  }
  // Once calls have ended, their threads are free again for new calls.
  std::vector<std::string> more;
  EXPECT_TRUE(channels[0]->call_stream_raw(kHold, {}, more, 5s).ok());
}

}  // namespace
}  // namespace conduit::rpc
