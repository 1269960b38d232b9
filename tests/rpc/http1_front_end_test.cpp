// The shared HTTP/1.1 front end as clients of every kind meet it: heads read
// strictly (RFC 9112), Content-Length and chunked bodies, pipelining,
// Expect: 100-continue, HEAD, HTTP/1.0; and what a server must refuse
// (request smuggling, folded lines, oversized heads and bodies), each with
// the status that says why.
#include <gtest/gtest.h>

#include <string>

#include "conduit/ipc/tcp_socket.hpp"
#include "conduit/rpc/jsonrpc_client.hpp"
#include "conduit/rpc/server.hpp"
#include "raw_wire.hpp"
#include "rpc/http1/request_head.hpp"
#include "interop/jsonrpc_examples.hpp"
#include "test_support.hpp"

namespace conduit::rpc::http1 {
namespace {

using namespace std::chrono_literals;
using testing::read_until;
using testing::read_until_closed;
using testing::send_all;

// ---- the head, parsed alone ---------------------------------------------------

std::optional<HeadError> parse(std::string_view text, RequestHead& head,
                               std::size_t max_body = 1 << 20) {
  return parse_head(text, max_body, head);
}

unsigned refused_with(std::string_view text) {
  RequestHead head;
  const auto error = parse(text, head);
  return error ? error->status : 0;
}

TEST(RequestHead, ReadsTheRequestLineAndFields) {
  RequestHead head;
  ASSERT_FALSE(
      parse("POST /jsonrpc?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n"
            "X-Token:   secret  \r\n\r\n",
            head));
  EXPECT_EQ(head.method, "POST");
  EXPECT_EQ(head.target, "/jsonrpc?x=1");
  EXPECT_EQ(head.minor_version, 1);
  EXPECT_EQ(head.content_length, 12u);
  EXPECT_FALSE(head.chunked);
  EXPECT_TRUE(head.keep_alive);
  EXPECT_EQ(head.field("x-token"), "secret");
  EXPECT_EQ(head.field("X-TOKEN"), "secret");
  EXPECT_EQ(head.field("absent"), "");
}

TEST(RequestHead, KeepAliveFollowsTheVersionAndConnection) {
  RequestHead head;
  ASSERT_FALSE(parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive, Close\r\n\r\n", head));
  EXPECT_FALSE(head.keep_alive);
  ASSERT_FALSE(parse("GET / HTTP/1.0\r\n\r\n", head));
  EXPECT_FALSE(head.keep_alive);
  ASSERT_FALSE(parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", head));
  EXPECT_TRUE(head.keep_alive);
}

TEST(RequestHead, EmptyLinesBeforeTheRequestLineAreSkipped) {
  const std::string text = "\r\n\r\nPOST / HTTP/1.1\r\nHost: a\r\n\r\nbody";
  ASSERT_EQ(head_end(text), text.size() - 4);
  RequestHead head;
  ASSERT_FALSE(parse(std::string_view(text).substr(0, *head_end(text)), head));
  EXPECT_EQ(head.method, "POST");
}

TEST(RequestHead, TheEndIsFoundOnlyOnceTheBlankLineArrived) {
  EXPECT_FALSE(head_end("POST / HTTP/1.1\r\nHost: a\r\n"));
  EXPECT_FALSE(head_end("POST / HTTP/1.1\r\nHost: a\r\n\r"));
  EXPECT_FALSE(head_end("\r\n\r\n"));
  EXPECT_EQ(head_end("GET / HTTP/1.1\r\nHost: a\r\n\r\nGET"), 27u);
}

TEST(RequestHead, DuplicateEqualContentLengthsAreOneLength) {
  RequestHead head;
  ASSERT_FALSE(
      parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n"
            "Content-Length: 7\r\n\r\n",
            head));
  EXPECT_EQ(head.content_length, 7u);
}

TEST(RequestHead, ChunkedAndExpectAreSeen) {
  RequestHead head;
  ASSERT_FALSE(
      parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n"
            "Expect: 100-Continue\r\n\r\n",
            head));
  EXPECT_TRUE(head.chunked);
  EXPECT_TRUE(head.expects_continue);
}

TEST(RequestHead, SmugglingShapesAreRefused) {
  // Both lengths, or two that differ: a proxy and this server could
  // disagree on where the request ends.
  EXPECT_EQ(refused_with("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n"),
            400u);
  EXPECT_EQ(refused_with("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                         "Content-Length: 6\r\n\r\n"),
            400u);
  EXPECT_EQ(refused_with("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n"), 400u);
  EXPECT_EQ(refused_with("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"), 400u);
  EXPECT_EQ(refused_with("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n"), 400u);
  EXPECT_EQ(refused_with("POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\n"), 400u);
  EXPECT_EQ(refused_with("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n"),
            400u);
  EXPECT_EQ(refused_with("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), 400u);
  EXPECT_EQ(refused_with("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
            400u);
}

TEST(RequestHead, MalformedHeadsAreRefused) {
  for (std::string_view head : {
           "POST / HTTP/1.1\r\nHost: a\r\n  folded\r\n\r\n",
           "POST / HTTP/1.1\nHost: a\n\n",
           "POST / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n",
           "POST / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n",
           "POST / HTTP/1.1\r\nHost: a\r\nX: a\x01z\r\n\r\n",
           "POST  / HTTP/1.1\r\nHost: a\r\n\r\n",
           "POST / HTTP/1.1 extra\r\nHost: a\r\n\r\n",
           "PO(ST / HTTP/1.1\r\nHost: a\r\n\r\n",
           "POST /\x7f HTTP/1.1\r\nHost: a\r\n\r\n",
           "POST / HTTX/1.1\r\nHost: a\r\n\r\n",
           "POST / HTTP/1.12\r\nHost: a\r\n\r\n",
           "\r\n",
       })
    EXPECT_EQ(refused_with(head), 400u) << head;
}

TEST(RequestHead, Http11NeedsExactlyOneHost) {
  RequestHead head;
  auto error = parse("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", head);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->status, 400u);
  EXPECT_CONTAINS(error->why, "Host");
  EXPECT_EQ(refused_with("POST / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400u);
  EXPECT_EQ(refused_with("POST / HTTP/1.0\r\n\r\n"), 0u);
}

TEST(RequestHead, UnsupportedVersionsAndCodingsHaveTheirOwnStatus) {
  EXPECT_EQ(refused_with("POST / HTTP/2.0\r\nHost: a\r\n\r\n"), 505u);
  EXPECT_EQ(refused_with("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            501u);
}

TEST(RequestHead, ALengthOverTheLimitIs413EvenWhenItOverflows) {
  RequestHead head;
  EXPECT_FALSE(parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n", head, 100));
  auto error = parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n", head, 100);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->status, 413u);
  EXPECT_EQ(head.target, "/");  // the route's error body can still be chosen
  EXPECT_EQ(refused_with("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: "
                         "99999999999999999999999999999\r\n\r\n"),
            413u);
}

TEST(ChunkSize, HexWithOrWithoutExtensions) {
  EXPECT_EQ(parse_chunk_size("0"), 0u);
  EXPECT_EQ(parse_chunk_size("1a"), 26u);
  EXPECT_EQ(parse_chunk_size("1A;name=value"), 26u);
  EXPECT_EQ(parse_chunk_size("ff ;x"), 255u);
  EXPECT_EQ(parse_chunk_size("fffffffffffffff"), 0xfffffffffffffffu);
  EXPECT_FALSE(parse_chunk_size(""));
  EXPECT_FALSE(parse_chunk_size(";x"));
  EXPECT_FALSE(parse_chunk_size(" 1"));
  EXPECT_FALSE(parse_chunk_size("-1"));
  EXPECT_FALSE(parse_chunk_size("0x10"));
  EXPECT_FALSE(parse_chunk_size("g"));
  EXPECT_FALSE(parse_chunk_size("1000000000000000"));  // 16 digits: could overflow
}

// ---- the front end, over a socket ---------------------------------------------

// Sends `bytes` unless the server closed meanwhile (it may refuse a request
// before it has all been sent); false once it has.
bool send_while_open(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

constexpr std::string_view kSubtract =
    R"({"jsonrpc":"2.0","method":"subtract","params":[42,23],"id":1})";

class FrontEnd : public ::testing::Test {
 protected:
  void SetUp() override {
    add_jsonrpc_examples(services_);
    ServerOptions options;
    options.max_message_bytes = 64 << 10;
    server_ = std::make_unique<Server>(services_, options);
    const std::string bound = server_->listen("tcp://127.0.0.1:0");
    port_ = static_cast<std::uint16_t>(std::stoi(bound.substr(bound.rfind(':') + 1)));
    server_->start();
  }
  void TearDown() override { server_->shutdown(1s); }

  ipc::TcpSocket connect() const { return ipc::TcpSocket::connect("127.0.0.1", port_); }

  // Sends `bytes` on a new connection and returns all the server answers
  // before it closes.
  std::string exchange(std::string_view bytes) const {
    ipc::TcpSocket socket = connect();
    send_all(socket.fd(), bytes);
    return read_until_closed(socket.fd());
  }

  static std::string post(std::string_view body, std::string_view more_headers = {}) {
    return "POST /jsonrpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
           std::string(more_headers) + "Content-Length: " + std::to_string(body.size()) +
           "\r\n\r\n" + std::string(body);
  }

  ServiceTable services_;
  std::unique_ptr<Server> server_;
  std::uint16_t port_ = 0;
};

TEST_F(FrontEnd, AChunkedBodyIsReassembled) {
  // The request cut into chunks of 10 bytes, one with an extension, and a
  // trailer field after the last.
  std::string request =
      "POST /jsonrpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
  for (std::size_t at = 0; at < kSubtract.size(); at += 10) {
    const std::string_view piece = kSubtract.substr(at, 10);
    char size[16];
    std::snprintf(size, sizeof size, "%zx", piece.size());
    request +=
        std::string(size) + (at == 10 ? ";ext=1" : "") + "\r\n" + std::string(piece) + "\r\n";
  }
  request += "0\r\nX-Trailer: t\r\n\r\n";
  const std::string reply = exchange(request);
  EXPECT_EQ(reply.rfind("HTTP/1.1 200", 0), 0u) << reply;
  EXPECT_CONTAINS(reply, R"("result":19)");
}

TEST_F(FrontEnd, PipelinedRequestsAreAnsweredInOrder) {
  const std::string second = R"({"jsonrpc":"2.0","method":"subtract","params":[50,8],"id":2})";
  const std::string reply = exchange(post(kSubtract) + post(second, "Connection: close\r\n"));
  const std::size_t first = reply.find(R"("result":19)");
  const std::size_t then = reply.find(R"("result":42)");
  ASSERT_NE(first, std::string::npos) << reply;
  ASSERT_NE(then, std::string::npos) << reply;
  EXPECT_LT(first, then);
}

TEST_F(FrontEnd, ExpectContinueGets100BeforeTheBodyIsSent) {
  ipc::TcpSocket socket = connect();
  const std::string request = post(kSubtract, "Expect: 100-continue\r\nConnection: close\r\n");
  const std::size_t head_size = request.find("\r\n\r\n") + 4;
  send_all(socket.fd(), std::string_view(request).substr(0, head_size));
  const std::string interim = read_until(socket.fd(), "\r\n\r\n");
  EXPECT_EQ(interim, "HTTP/1.1 100 Continue\r\n\r\n");
  send_all(socket.fd(), std::string_view(request).substr(head_size));
  const std::string reply = read_until_closed(socket.fd());
  EXPECT_EQ(reply.rfind("HTTP/1.1 200", 0), 0u) << reply;
  EXPECT_CONTAINS(reply, R"("result":19)");
}

TEST_F(FrontEnd, HeadGetsTheHeadersOfItsAnswerWithoutABody) {
  const std::string reply =
      exchange("HEAD /jsonrpc HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(reply.rfind("HTTP/1.1 405", 0), 0u) << reply;
  EXPECT_CONTAINS(reply, "Content-Length: ");
  EXPECT_EQ(reply.substr(reply.size() - 4), "\r\n\r\n") << reply;
}

TEST_F(FrontEnd, Http10IsAnsweredAndClosedUnlessItAsksToKeepAlive) {
  const std::string request =
      "POST /jsonrpc HTTP/1.0\r\nContent-Type: application/json\r\n"
      "Content-Length: " +
      std::to_string(kSubtract.size()) + "\r\n\r\n" + std::string(kSubtract);
  const std::string reply = exchange(request);  // would time out if kept open
  EXPECT_EQ(reply.rfind("HTTP/1.1 200", 0), 0u) << reply;
  EXPECT_CONTAINS(reply, "Connection: close");
  EXPECT_CONTAINS(reply, R"("result":19)");
}

TEST_F(FrontEnd, EmptyLinesBeforeAndBetweenRequestsAreSkipped) {
  const std::string reply =
      exchange("\r\n" + post(kSubtract) + "\r\n\r\n" + post(kSubtract, "Connection: close\r\n"));
  EXPECT_EQ(reply.rfind("HTTP/1.1 200", 0), 0u) << reply;
  EXPECT_NE(reply.find("HTTP/1.1 200", 1), std::string::npos) << reply;
}

TEST_F(FrontEnd, SmugglingShapesAre400AndTheConnectionCloses) {
  const std::string both =
      "POST /jsonrpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
  std::string reply = exchange(both);
  EXPECT_EQ(reply.rfind("HTTP/1.1 400", 0), 0u) << reply;
  EXPECT_CONTAINS(reply, "Content-Length and Transfer-Encoding");
  EXPECT_CONTAINS(reply, "Connection: close");
  reply = exchange("POST /jsonrpc HTTP/1.1\r\nHost: x\r\n  folded: yes\r\n\r\n");
  EXPECT_EQ(reply.rfind("HTTP/1.1 400", 0), 0u) << reply;
  EXPECT_CONTAINS(reply, "folding");
}

TEST_F(FrontEnd, AMissingHostIs400NamingIt) {
  const std::string reply = exchange("POST /jsonrpc HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(reply.rfind("HTTP/1.1 400", 0), 0u) << reply;
  EXPECT_CONTAINS(reply, "Host");
}

TEST_F(FrontEnd, AnOversizedHeadIs431) {
  const std::string reply = exchange(
      "POST /jsonrpc HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n");
  EXPECT_EQ(reply.rfind("HTTP/1.1 431", 0), 0u) << reply;
}

TEST_F(FrontEnd, AHeadThatNeverEndsIs431NotUnboundedMemory) {
  ipc::TcpSocket socket = connect();
  send_all(socket.fd(), "POST /jsonrpc HTTP/1.1\r\nHost: x\r\n");
  for (int i = 0; i < 40; ++i)
    if (!send_while_open(socket.fd(), "X-Header: " + std::string(1000, 'v') + "\r\n")) break;
  const std::string reply = read_until_closed(socket.fd());
  EXPECT_EQ(reply.rfind("HTTP/1.1 431", 0), 0u) << reply;
}

TEST_F(FrontEnd, OtherVersionsAre505AndOtherCodings501) {
  std::string reply = exchange("POST /jsonrpc HTTP/2.0\r\nHost: x\r\n\r\n");
  EXPECT_EQ(reply.rfind("HTTP/1.1 505", 0), 0u) << reply;
  reply = exchange(
      "POST /jsonrpc HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n");
  EXPECT_EQ(reply.rfind("HTTP/1.1 501", 0), 0u) << reply;
}

TEST_F(FrontEnd, AChunkedBodyOverTheLimitIs413InTheRoutesProtocol) {
  ipc::TcpSocket socket = connect();
  send_all(socket.fd(),
           "POST /jsonrpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           "Transfer-Encoding: chunked\r\n\r\n");
  const std::string chunk = "8000\r\n" + std::string(0x8000, ' ') + "\r\n";
  for (int i = 0; i < 3; ++i)  // 96 KiB > 64 KiB
    if (!send_while_open(socket.fd(), chunk)) break;
  const std::string reply = read_until_closed(socket.fd());
  EXPECT_EQ(reply.rfind("HTTP/1.1 413", 0), 0u) << reply;
  EXPECT_CONTAINS(reply, R"("code":-32600)");  // JSON-RPC's own error body
}

TEST_F(FrontEnd, MalformedChunksAre400) {
  const std::string head =
      "POST /jsonrpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Transfer-Encoding: chunked\r\n\r\n";
  std::string reply = exchange(head + "zz\r\nab\r\n0\r\n\r\n");
  EXPECT_EQ(reply.rfind("HTTP/1.1 400", 0), 0u) << reply;
  reply = exchange(head + "2\r\nabcd\r\n0\r\n\r\n");  // data longer than its size
  EXPECT_EQ(reply.rfind("HTTP/1.1 400", 0), 0u) << reply;
  reply = exchange(head + std::string(5000, '1') + "\r\n");  // a size line without end
  EXPECT_EQ(reply.rfind("HTTP/1.1 400", 0), 0u) << reply;
}

TEST_F(FrontEnd, APeerThatClosesInsideABodyLeavesTheServerServing) {
  {
    ipc::TcpSocket socket = connect();
    send_all(socket.fd(),
             "POST /jsonrpc HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"jsonrpc\"");
  }
  {
    ipc::TcpSocket socket = connect();
    send_all(socket.fd(),
             "POST /jsonrpc HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc");
  }
  const std::string reply = exchange(post(kSubtract, "Connection: close\r\n"));
  EXPECT_CONTAINS(reply, R"("result":19)");
}

TEST_F(FrontEnd, BodiesArriveWholeWhateverTheyAreCutInto) {
  // A large call, sent in pieces that end inside the head and the body.
  const std::string text(40000, 'q');
  const std::string body =
      R"({"jsonrpc":"2.0","method":"echo","params":[")" + text + R"("],"id":1})";
  const std::string request = post(body, "Connection: close\r\n");
  ipc::TcpSocket socket = connect();
  for (std::size_t at = 0; at < request.size(); at += 7777)
    send_all(socket.fd(), std::string_view(request).substr(at, 7777));
  const std::string reply = read_until_closed(socket.fd());
  EXPECT_EQ(reply.rfind("HTTP/1.1 200", 0), 0u) << reply.substr(0, 200);
  EXPECT_CONTAINS(reply, R"({"jsonrpc":"2.0","result":[")" + text + R"("],"id":1})");
}

TEST_F(FrontEnd, ALargeResponseAfterASmallOneOnOneConnection) {
  JsonRpcClient client("http://127.0.0.1:" + std::to_string(port_) + "/jsonrpc");
  EXPECT_EQ(client.call("subtract", "[42,23]"), "19");
  const std::string text(60000, 'z');
  EXPECT_EQ(client.call("echo", "[\"" + text + "\"]"), "[\"" + text + "\"]");
  EXPECT_EQ(client.call("subtract", "[1,1]"), "0");
}

}  // namespace
}  // namespace conduit::rpc::http1
