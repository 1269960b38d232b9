// The JSON-RPC server over real sockets and pipes: every transport, the
// three framings told apart on one port, bad and hostile input, and a
// graceful shutdown. Clients are conduit's and raw sockets.
#include <gtest/gtest.h>
#include <poll.h>
#include <rapidjson/document.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "cli_support.hpp"
#include "conduit/interop/jsonrpc_examples.pb.h"
#include "conduit/ipc/channel.hpp"
#include "conduit/ipc/tcp_socket.hpp"
#include "conduit/ipc/unix_socket.hpp"
#include "conduit/rpc/jsonrpc_client.hpp"
#include "conduit/rpc/server.hpp"
#include "interop/jsonrpc_examples.hpp"
#include "raw_wire.hpp"
#include "test_support.hpp"

namespace conduit::rpc {
namespace {

using namespace std::chrono_literals;
using testing::ms_until_closed;
using testing::read_until_closed;
using testing::send_all;
using testing::TempDir;

// A server with the specification's example methods, on loopback TCP and a
// UNIX socket in a private directory.
class JsonRpcServer : public ::testing::Test {
 protected:
  void SetUp() override {
    add_jsonrpc_examples(services_);
    ServerOptions options;
    options.threads = 2;
    options.max_message_bytes = 1 << 20;
    options.request_timeout = 500ms;
    options.jsonrpc.max_depth = 64;
    server_ = std::make_unique<Server>(services_, options);
    tcp_ = server_->listen("tcp://127.0.0.1:0");
    unix_ = server_->listen("unix:" + dir_.path() + "/rpc.sock");
    server_->start();
    port_ = static_cast<std::uint16_t>(std::stoi(tcp_.substr(tcp_.rfind(':') + 1)));
  }
  void TearDown() override { server_->shutdown(1s); }

  std::string http() const { return "http://127.0.0.1:" + std::to_string(port_) + "/jsonrpc"; }

  // A raw TCP connection for writing exactly what a test wants.
  ipc::TcpSocket raw() const { return ipc::TcpSocket::connect("127.0.0.1", port_); }

  // Reads one line (a JSON text) within `timeout`.
  static std::string read_line(int fd, std::chrono::milliseconds timeout = 5s) {
    std::string text;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (text.find('\n') == std::string::npos) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return text + "<timeout>";
      pollfd ready{fd, POLLIN, 0};
      if (::poll(&ready, 1, static_cast<int>(left.count())) <= 0) continue;
      char c;
      if (::recv(fd, &c, 1, 0) <= 0) return text + "<closed>";
      text += c;
    }
    return text;
  }

  // The server still answers a fresh client correctly.
  void expect_still_serving() {
    JsonRpcClient client(http(), 5s);
    EXPECT_EQ(client.call("subtract", "[42,23]"), "19");
  }

  static int error_code_of(const std::string& text) {
    rapidjson::Document document;
    document.Parse(text.data(), text.size());
    if (!document.IsObject() || !document.HasMember("error")) return 0;
    return document["error"]["code"].GetInt();
  }

  TempDir dir_;
  ServiceTable services_;
  std::unique_ptr<Server> server_;
  std::string tcp_, unix_;
  std::uint16_t port_ = 0;
};

TEST_F(JsonRpcServer, AnswersOverHttp) {
  JsonRpcClient client(http(), 5s);
  EXPECT_EQ(client.call("subtract", "[42,23]"), "19");
  EXPECT_EQ(client.call("subtract", R"({"subtrahend":23,"minuend":42})"), "19");
  EXPECT_EQ(client.call("get_data"), R"(["hello",5])");
}

TEST_F(JsonRpcServer, AnswersOneTextPerLineOnTheSameTcpPort) {
  JsonRpcClient client("tcp://127.0.0.1:" + std::to_string(port_), 5s);
  EXPECT_EQ(client.call("sum", "[1,2,4]"), "7");
  EXPECT_EQ(client.call("echo", R"({"a":[1,"two",null]})"), R"({"a":[1,"two",null]})");
}

TEST_F(JsonRpcServer, AnswersOverAUnixSocket) {
  JsonRpcClient client(unix_, 5s);
  EXPECT_EQ(client.call("subtract", "[5,7]"), "-2");
}

TEST_F(JsonRpcServer, ErrorsComeBackAsJsonRpcErrorObjects) {
  JsonRpcClient client(http(), 5s);
  try {
    client.call("foobar", "[]");
    FAIL() << "foobar exists";
  } catch (const JsonRpcError& error) {
    EXPECT_EQ(error.code(), -32601);
    EXPECT_CONTAINS(error.error_json(), "Method not found");
  }
  try {
    client.call("subtract", "[1,2,3]");
    FAIL() << "three params accepted";
  } catch (const JsonRpcError& error) {
    EXPECT_EQ(error.code(), -32602);
  }
}

TEST_F(JsonRpcServer, KeepsTheConnectionAcrossCallsAndNotifications) {
  JsonRpcClient client(http(), 5s);
  for (int i = 0; i < 50; ++i) {
    client.notify("notify_hello", "[7]");
    EXPECT_EQ(client.call("subtract", "[" + std::to_string(i) + ",1]"), std::to_string(i - 1));
  }
}

TEST_F(JsonRpcServer, ReconnectsAfterTheServerClosedAnIdleConnection) {
  JsonRpcClient client("tcp://127.0.0.1:" + std::to_string(port_), 5s);
  EXPECT_EQ(client.call("subtract", "[2,1]"), "1");
  // A second server on a new port cannot replace this one's, so close the
  // connection from the server side by restarting the whole server.
  server_->shutdown(0ms);
  server_ = std::make_unique<Server>(services_);
  std::string again = server_->listen("tcp://127.0.0.1:" + std::to_string(port_));
  server_->start();
  EXPECT_EQ(client.call("subtract", "[3,1]"), "2");
}

TEST_F(JsonRpcServer, InvalidJsonGetsAParseErrorAndTheConnectionGoesOn) {
  auto socket = raw();
  send_all(socket.fd(),
           "{\"jsonrpc\": \"2.0\", \"method\": \"foobar, \"params\": \"bar\", \"baz]\n");
  EXPECT_EQ(error_code_of(read_line(socket.fd())), -32700);
  send_all(socket.fd(), R"({"jsonrpc":"2.0","method":"subtract","params":[42,23],"id":7})"
                        "\n");
  EXPECT_CONTAINS(read_line(socket.fd()), R"("result":19)");
}

TEST_F(JsonRpcServer, TenThousandDeepArrayIsRefusedWithoutACrash) {
  auto socket = raw();
  std::string deep = R"({"jsonrpc":"2.0","method":"echo","id":1,"params":)" +
                     std::string(10000, '[') + std::string(10000, ']') + "}\n";
  send_all(socket.fd(), deep);
  int code = error_code_of(read_line(socket.fd()));
  EXPECT_TRUE(code == -32600 || code == -32700) << code;
  expect_still_serving();
}

TEST_F(JsonRpcServer, HundredMegabyteBodyIsRefusedBeforeItIsSent) {
  auto socket = raw();
  send_all(socket.fd(),
           "POST /jsonrpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           "Content-Length: 100000000\r\n\r\n");
  std::string reply = read_until_closed(socket.fd());
  EXPECT_EQ(reply.rfind("HTTP/1.1 413", 0), 0u) << reply;
  EXPECT_CONTAINS(reply, "-32600");
  expect_still_serving();
}

TEST_F(JsonRpcServer, SlowClientIsCutOffByTheRequestTimeout) {
  auto socket = raw();
  send_all(socket.fd(), "POST /jsonrpc HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"jso");
  auto started = std::chrono::steady_clock::now();
  std::string reply = read_until_closed(socket.fd(), 10s);
  EXPECT_EQ(reply.find("<timeout>"), std::string::npos) << "the server never hung up";
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
  expect_still_serving();
}

TEST_F(JsonRpcServer, ClientThatDisconnectsMidCallLeavesTheServerServing) {
  for (int i = 0; i < 20; ++i) {
    auto socket = raw();
    send_all(socket.fd(), R"({"jsonrpc":"2.0","method":"sum","params":[1,2,)");
  }
  {
    auto socket = raw();
    send_all(socket.fd(), R"({"jsonrpc":"2.0","method":"sum","params":[1,2],"id":1})"
                          "\n");
    ::shutdown(socket.fd(), SHUT_RDWR);
  }
  expect_still_serving();
}

TEST_F(JsonRpcServer, UnknownProtocolIsClosedAndOthersAreServed) {
  auto socket = raw();
  send_all(socket.fd(), "\x16\x03\x01 this is not a protocol conduit speaks\r\n");
  EXPECT_EQ(read_until_closed(socket.fd()), "");
  expect_still_serving();
}

TEST_F(JsonRpcServer, HttpRoutesAndMediaTypesAreChecked) {
  auto socket = raw();
  send_all(socket.fd(), "GET /jsonrpc HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(read_until_closed(socket.fd()).rfind("HTTP/1.1 405", 0), 0u);
  auto other = raw();
  send_all(other.fd(),
           "POST /elsewhere HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           "Content-Length: 2\r\nConnection: close\r\n\r\n{}");
  EXPECT_EQ(read_until_closed(other.fd()).rfind("HTTP/1.1 404", 0), 0u);
  auto text = raw();
  send_all(text.fd(),
           "POST /jsonrpc HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
           "Content-Length: 2\r\nConnection: close\r\n\r\n{}");
  EXPECT_EQ(read_until_closed(text.fd()).rfind("HTTP/1.1 415", 0), 0u);
}

TEST_F(JsonRpcServer, NotificationOnlyHttpRequestGets204) {
  auto socket = raw();
  std::string body = R"({"jsonrpc":"2.0","method":"update","params":[1]})";
  send_all(socket.fd(),
           "POST /jsonrpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           "Content-Length: " +
               std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body);
  std::string reply = read_until_closed(socket.fd());
  EXPECT_EQ(reply.rfind("HTTP/1.1 204", 0), 0u) << reply;
}

TEST_F(JsonRpcServer, ContentLengthFramingOnTheSamePort) {
  auto socket = raw();
  std::string body = R"({"jsonrpc":"2.0","method":"subtract","params":[42,23],"id":1})";
  send_all(socket.fd(), "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  ::shutdown(socket.fd(), SHUT_WR);
  std::string reply = read_until_closed(socket.fd());
  EXPECT_EQ(reply.rfind("Content-Length: ", 0), 0u) << reply;
  EXPECT_CONTAINS(reply, R"("result":19)");
}

TEST_F(JsonRpcServer, ManyClientsAtOnceEachGetTheirOwnAnswers) {
  std::vector<std::thread> threads;
  std::atomic<int> right{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      JsonRpcClient client(unix_, 5s);
      for (int i = 0; i < 25; ++i)
        if (client.call("subtract", "[" + std::to_string(t * 100 + i) + ",0]") ==
            std::to_string(t * 100 + i))
          ++right;
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(right.load(), 200);
}

TEST_F(JsonRpcServer, ShutdownFinishesAndRemovesTheSocketFile) {
  JsonRpcClient client(unix_, 5s);
  EXPECT_EQ(client.call("subtract", "[1,1]"), "0");
  server_->shutdown(1s);
  EXPECT_FALSE(std::filesystem::exists(unix_.substr(5)));
  EXPECT_THROW(client.call("subtract", "[1,1]"), Error);
}

// A server whose `echo` takes `delay` before it answers: calls in flight
// when shutdown begins.
class SlowServer {
 public:
  explicit SlowServer(std::chrono::milliseconds delay) {
    const auto* echo = ::conduit::interop::SubtractRequest::descriptor()
                           ->file()
                           ->FindServiceByName("JsonRpcExamples")
                           ->FindMethodByName("echo");
    services_.add_dynamic(*echo, [delay](CallContext&, const google::protobuf::Message& request,
                                         google::protobuf::Message& response) {
      std::this_thread::sleep_for(delay);
      response.CopyFrom(request);
      return Status();
    });
    server_ = std::make_unique<Server>(services_);
    address_ = server_->listen("tcp://127.0.0.1:0");
    server_->start();
  }
  Server& server() { return *server_; }
  std::string uri() const { return "http://" + address_.substr(6) + "/jsonrpc"; }

 private:
  ServiceTable services_;
  std::unique_ptr<Server> server_;
  std::string address_;
};

TEST(JsonRpcShutdown, CallInFlightFinishesWithinTheGrace) {
  SlowServer slow(300ms);
  std::string result;
  std::thread caller([&] {
    JsonRpcClient client(slow.uri(), 5s);
    result = client.call("echo", R"(["still answered"])");
  });
  std::this_thread::sleep_for(100ms);  // the call is in the handler now
  auto started = std::chrono::steady_clock::now();
  slow.server().shutdown(3s);
  caller.join();
  EXPECT_EQ(result, R"(["still answered"])");
  EXPECT_LT(std::chrono::steady_clock::now() - started, 2s) << "shutdown waited for nothing";
  JsonRpcClient late(slow.uri(), 1s);
  EXPECT_THROW(late.call("echo", "[1]"), Error) << "a new call was served after shutdown";
}

TEST(JsonRpcShutdown, CallLongerThanTheGraceIsCutOff) {
  SlowServer slow(2000ms);
  bool failed = false;
  std::thread caller([&] {
    JsonRpcClient client(slow.uri(), 5s);
    try {
      client.call("echo", "[1]");
    } catch (const Error&) {
      failed = true;
    }
  });
  std::this_thread::sleep_for(100ms);
  auto started = std::chrono::steady_clock::now();
  slow.server().shutdown(200ms);
  caller.join();
  EXPECT_TRUE(failed) << "the call outlived the grace period";
  EXPECT_LT(std::chrono::steady_clock::now() - started, 4s);
}

// Timeouts of a server whose idle timeout (400 ms) is shorter than its
// request timeout (1 s), and of a connection that goes from one to the other.
class JsonRpcTimeouts : public ::testing::Test {
 protected:
  void SetUp() override {
    add_jsonrpc_examples(services_);
    ServerOptions options;
    options.threads = 1;
    options.idle_timeout = 400ms;
    options.request_timeout = 1000ms;
    server_ = std::make_unique<Server>(services_, options);
    std::string address = server_->listen("tcp://127.0.0.1:0");
    port_ = static_cast<std::uint16_t>(std::stoi(address.substr(address.rfind(':') + 1)));
    server_->start();
  }
  void TearDown() override { server_->shutdown(1s); }

  // One call on `socket` as a line; its reply.
  static std::string call(int fd, int id) {
    std::string request = R"({"jsonrpc":"2.0","method":"subtract","params":[)" +
                          std::to_string(id) + R"(,1],"id":)" + std::to_string(id) + "}\n";
    EXPECT_EQ(::send(fd, request.data(), request.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(request.size()));
    std::string reply;
    char c;
    pollfd ready{fd, POLLIN, 0};
    while (reply.find('\n') == std::string::npos && ::poll(&ready, 1, 2000) == 1 &&
           ::recv(fd, &c, 1, 0) == 1)
      reply += c;
    return reply;
  }

  ServiceTable services_;
  std::unique_ptr<Server> server_;
  std::uint16_t port_ = 0;
};

TEST_F(JsonRpcTimeouts, IdleConnectionIsClosedAfterTheIdleTimeout) {
  auto socket = ipc::TcpSocket::connect("127.0.0.1", port_);
  EXPECT_CONTAINS(call(socket.fd(), 5), R"("result":4)");
  long long waited = ms_until_closed(socket.fd());
  EXPECT_GE(waited, 300);
  EXPECT_LT(waited, 2000) << "the idle connection was not closed";
}

TEST_F(JsonRpcTimeouts, BusyConnectionOutlivesManyIdleTimeouts) {
  // A call every 100 ms for 1.5 s: each read's deadline lies later than the
  // one before, and the connection must stay open all along.
  auto socket = ipc::TcpSocket::connect("127.0.0.1", port_);
  for (int i = 1; i <= 15; ++i) {
    const std::string reply = call(socket.fd(), i);
    ASSERT_NE(reply.find("\"result\":" + std::to_string(i - 1)), std::string::npos)
        << "call " << i << ": " << reply;
    std::this_thread::sleep_for(100ms);
  }
}

TEST_F(JsonRpcTimeouts, RequestStartedLateIsCutOffByTheRequestTimeout) {
  // Idle for a while, then half a request: the request timeout (1 s) counts
  // from the first bytes of the request, not from the last call.
  auto socket = ipc::TcpSocket::connect("127.0.0.1", port_);
  EXPECT_CONTAINS(call(socket.fd(), 3), R"("result":2)");
  std::this_thread::sleep_for(250ms);
  const std::string half = R"({"jsonrpc":"2.0","method":)";
  ASSERT_EQ(::send(socket.fd(), half.data(), half.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(half.size()));
  long long waited = ms_until_closed(socket.fd());
  EXPECT_GE(waited, 800);
  EXPECT_LT(waited, 2500) << "the unfinished request was not cut off";
}

TEST_F(JsonRpcTimeouts, TricklingClientIsCutOffOneRequestTimeoutAfterItBegan) {
  // A byte every 150 ms: every read brings something, but the request as a
  // whole must arrive within the request timeout (1 s).
  auto socket = ipc::TcpSocket::connect("127.0.0.1", port_);
  const std::string request = R"({"jsonrpc":"2.0","method":"subtract","params":[2,1],"id":1})";
  auto started = std::chrono::steady_clock::now();
  bool cut_off = false;
  for (char c : request) {
    if (::send(socket.fd(), &c, 1, MSG_NOSIGNAL) != 1) {
      cut_off = true;
      break;
    }
    pollfd ready{socket.fd(), POLLIN, 0};
    if (::poll(&ready, 1, 150) == 1) {
      char byte;
      if (::recv(socket.fd(), &byte, 1, 0) <= 0) {
        cut_off = true;
        break;
      }
    }
  }
  auto elapsed = std::chrono::steady_clock::now() - started;
  EXPECT_TRUE(cut_off) << "the trickling request was served whole";
  EXPECT_GE(elapsed, 800ms);
  EXPECT_LT(elapsed, 2500ms);
}

// `conduit serve --listen stdio`: a spawned child answering on its stdin and
// stdout with Content-Length framing (the LSP convention).
TEST(JsonRpcStdio, ChildServesOnItsStdinAndStdout) {
  auto [channel, child] = ipc::Channel::spawn(
      {testing::conduit_binary(), "serve", "--listen", "stdio"}, {}, /*raw=*/true);
  std::string body = R"({"jsonrpc":"2.0","method":"subtract","params":[42,23],"id":1})";
  channel.send("Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  std::string reply;
  while (reply.find("}") == std::string::npos || reply.find("\r\n\r\n") == std::string::npos) {
    ipc::Received received = channel.receive(5s);
    ASSERT_EQ(received.status, ipc::ReceiveStatus::message) << reply;
    reply.append(reinterpret_cast<const char*>(received.message.data()), received.message.size());
  }
  EXPECT_EQ(reply.rfind("Content-Length: ", 0), 0u) << reply;
  EXPECT_CONTAINS(reply, R"("result":19)");
  { auto closing = std::move(channel); }  // the child sees end of file and exits
  auto status = child.wait_for(5s);
  ASSERT_TRUE(status.has_value()) << "the child did not exit when its stdin closed";
  EXPECT_TRUE(status->success()) << status->describe();
}

}  // namespace
}  // namespace conduit::rpc
