// A protocol joins without touching the core: a protocol defined here, in a
// test, registers itself before main(), and a server serves its HTTP/1.1
// route and its own first bytes beside JSON-RPC and gRPC, while the shared
// HTTP/1.1 front end answers 404, 405 and 415 for what no route takes.
#include <gtest/gtest.h>

#include <algorithm>
#include <ostream>

#include "conduit/error.hpp"
#include "conduit/ipc/tcp_socket.hpp"
#include "conduit/rpc/jsonrpc_client.hpp"
#include "conduit/rpc/server.hpp"
#include "raw_wire.hpp"
#include "rpc/connection.hpp"
#include "rpc/protocol.hpp"
#include "interop/jsonrpc_examples.hpp"
#include "test_support.hpp"

namespace conduit::rpc {
namespace {

using namespace std::chrono_literals;
using testing::read_until_closed;
using testing::send_all;

// Answers "MIRROR <text>\n" with "<text reversed>\n" on a raw stream, and
// POST /mirror (text/plain) with the body reversed.
class MirrorStream final : public StreamProtocol {
 public:
  std::string_view name() const override { return "mirror"; }
  Match match(std::string_view first) const override {
    constexpr std::string_view kWord = "MIRROR ";
    const std::size_t n = std::min(first.size(), kWord.size());
    if (first.substr(0, n) != kWord.substr(0, n)) return Match::no;
    return first.size() >= kWord.size() ? Match::yes : Match::need_more;
  }
  asio::awaitable<void> serve(Connection& connection, std::string pending) const override {
    char chunk[256];
    while (pending.find('\n') == std::string::npos) {
      const std::size_t n =
          co_await connection.read_some(asio::buffer(chunk), Connection::Awaiting::rest_of_request);
      if (n == 0) co_return;
      pending.append(chunk, n);
    }
    std::string text = pending.substr(7, pending.find('\n') - 7);
    std::reverse(text.begin(), text.end());
    co_await connection.write(text + "\n");
  }
};

class Mirror final : public Protocol {
 public:
  std::string_view name() const override { return "mirror"; }
  std::string_view title() const override { return "Mirror"; }
  std::vector<std::unique_ptr<StreamProtocol>> stream_protocols() const override {
    std::vector<std::unique_ptr<StreamProtocol>> all;
    all.push_back(std::make_unique<MirrorStream>());
    return all;
  }
  std::vector<http1::Route> http_routes() const override {
    http1::Route route;
    route.protocol = "mirror";
    route.path = "/mirror";
    route.content_types = {"text/plain"};
    route.handler = [](const http1::Request& request, CallContext& context) {
      http1::Response response;
      response.content_type = "text/plain";
      response.body = request.body;
      std::reverse(response.body.begin(), response.body.end());
      response.extra_headers = "X-Protocol: " + context.protocol + "\r\n";
      return response;
    };
    return {route};
  }
  std::string serve_summary() const override { return "Mirror: POST /mirror, or MIRROR text"; }
  std::vector<UriForm> client_uris() const override {
    return {{"mirror:TEXT", "a test's protocol"}};
  }
  bool takes_uri(std::string_view uri) const override { return uri.starts_with("mirror:"); }
  std::unique_ptr<ClientChannel> make_channel(std::string_view uri,
                                              std::chrono::milliseconds) const override {
    throw InvalidUri(std::string(uri) + ": the mirror protocol has no client");
  }
  CallExit call_from_command_line(const CommandLineCall&, std::istream&, std::ostream&,
                                  std::ostream& err) const override {
    err << "the mirror protocol has no client\n";
    return CallExit::usage;
  }
};

// Before main(): before any server reads the protocol table.
const bool kRegistered = [] {
  register_protocol(std::make_unique<Mirror>());
  return true;
}();

class ProtocolRegistry : public ::testing::Test {
 protected:
  void SetUp() override {
    add_jsonrpc_examples(services_);
    server_ = std::make_unique<Server>(services_);
    const std::string bound = server_->listen("tcp://127.0.0.1:0");
    port_ = static_cast<std::uint16_t>(std::stoi(bound.substr(bound.rfind(':') + 1)));
    server_->start();
  }
  void TearDown() override { server_->shutdown(1s); }

  // Sends one HTTP request (Connection: close) and returns the whole reply.
  std::string http(std::string_view method, std::string_view path, std::string_view content_type,
                   std::string_view body) const {
    ipc::TcpSocket socket = ipc::TcpSocket::connect("127.0.0.1", port_);
    std::string request = std::string(method) + " " + std::string(path) +
                          " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n";
    if (!content_type.empty()) request += "Content-Type: " + std::string(content_type) + "\r\n";
    request += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + std::string(body);
    send_all(socket.fd(), request);
    return read_until_closed(socket.fd());
  }

  ServiceTable services_;
  std::unique_ptr<Server> server_;
  std::uint16_t port_ = 0;
};

TEST_F(ProtocolRegistry, TheTestProtocolIsInTheTableAfterTheBuiltInOnes) {
  ASSERT_TRUE(kRegistered);
  ASSERT_GE(protocols().size(), 3u);
  EXPECT_EQ(protocols().back()->name(), "mirror");
  EXPECT_EQ(protocol_for_uri("mirror:abc"), protocols().back().get());
  EXPECT_CONTAINS(client_uri_forms(), "mirror:TEXT");
}

TEST_F(ProtocolRegistry, ARegisteredRouteIsServedByItsProtocol) {
  const std::string reply = http("POST", "/mirror", "text/plain; charset=utf-8", "abc");
  EXPECT_EQ(reply.rfind("HTTP/1.1 200", 0), 0u) << reply;
  EXPECT_CONTAINS(reply, "X-Protocol: mirror");
  EXPECT_EQ(reply.substr(reply.size() - 3), "cba") << reply;
}

TEST_F(ProtocolRegistry, AnUnknownPathIs404NamingTheRoutes) {
  const std::string reply = http("POST", "/nowhere", "text/plain", "abc");
  EXPECT_EQ(reply.rfind("HTTP/1.1 404", 0), 0u) << reply;
  EXPECT_CONTAINS(reply, "POST /mirror (mirror)");
  EXPECT_CONTAINS(reply, "POST /jsonrpc (jsonrpc)");
}

TEST_F(ProtocolRegistry, AWrongMethodIs405WithAllow) {
  const std::string reply = http("GET", "/mirror", "", "");
  EXPECT_EQ(reply.rfind("HTTP/1.1 405", 0), 0u) << reply;
  EXPECT_CONTAINS(reply, "Allow: POST");
}

TEST_F(ProtocolRegistry, AWrongMediaTypeIs415NamingTheOnesTaken) {
  const std::string reply = http("POST", "/mirror", "application/json", "{}");
  EXPECT_EQ(reply.rfind("HTTP/1.1 415", 0), 0u) << reply;
  EXPECT_CONTAINS(reply, "text/plain");
}

TEST_F(ProtocolRegistry, JsonRpcKeepsItsRoutesBesideTheNewOne) {
  const std::string body = R"({"jsonrpc":"2.0","method":"subtract","params":[42,23],"id":1})";
  const std::string reply = http("POST", "/", "application/json", body);
  EXPECT_EQ(reply.rfind("HTTP/1.1 200", 0), 0u) << reply;
  EXPECT_CONTAINS(reply, R"("result":19)");
  JsonRpcClient client("tcp://127.0.0.1:" + std::to_string(port_));
  EXPECT_EQ(client.call("subtract", "[42,23]"), "19");
}

TEST_F(ProtocolRegistry, TheProtocolsOwnFirstBytesReachIt) {
  ipc::TcpSocket socket = ipc::TcpSocket::connect("127.0.0.1", port_);
  send_all(socket.fd(), "MIRROR hello\n");
  EXPECT_EQ(read_until_closed(socket.fd()), "olleh\n");
}

TEST_F(ProtocolRegistry, RegisteringOnceServersRunIsRefused) {
  EXPECT_THROW(register_protocol(std::make_unique<Mirror>()), Error);
}

}  // namespace
}  // namespace conduit::rpc
