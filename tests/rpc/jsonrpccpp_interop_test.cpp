// Interoperability with libjson-rpc-cpp, through jsonrpccpp_peer (built with
// that library and nothing of conduit's): its HttpClient calling
// `conduit serve`, and conduit's client, as a library and as `conduit call`,
// calling its HttpServer.
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <chrono>
#include <string>

#include "cli_support.hpp"
#include "conduit/rpc/jsonrpc_client.hpp"
#include "server_process.hpp"
#include "test_support.hpp"

namespace conduit::rpc {
namespace {

using namespace std::chrono_literals;
using testing::AnnouncingProcess;
using testing::conduit;
using testing::conduit_binary;
using testing::run_command;

const std::string kPeer = JSONRPCCPP_PEER;

// True when both texts are JSON holding the same value, however written.
bool same_json(const std::string& left, const std::string& right) {
  rapidjson::Document a, b;
  a.Parse(left.data(), left.size());
  b.Parse(right.data(), right.size());
  return !a.HasParseError() && !b.HasParseError() && a == b;
}

// libjson-rpc-cpp's HttpClient and Client calling `conduit serve`: the
// specification's examples, an echo of a nested object, a notification and
// two errors, each checked by the peer and reported on a line.
TEST(JsonRpcCppInterop, LibJsonRpcCppClientCallsConduitServe) {
  AnnouncingProcess server({conduit_binary(), "serve", "--listen", "tcp://127.0.0.1:0"},
                           AnnouncingProcess::Stream::err, "listening on tcp://127.0.0.1:");
  std::string url = "http://127.0.0.1:" + server.announced() + "/jsonrpc";

  testing::CommandResult peer = run_command({kPeer, "client", url}, 30s);

  EXPECT_TRUE(peer.status.success()) << peer.status.describe() << "\n" << peer.out << peer.err;
  for (const char* check :
       {"ok subtract positional [42,23] = 19", "ok subtract named = 19", "ok sum [1,2,4] = 7",
        "ok get_data = [\"hello\",5]", "ok echo of a nested object",
        "ok notification notify_hello accepted", "ok foobar fails with -32601",
        "ok subtract with three params fails with -32602", "all checks passed"})
    EXPECT_CONTAINS(peer.out, check);
  EXPECT_EQ(peer.out.find("FAIL"), std::string::npos) << peer.out;
  EXPECT_TRUE(server.stop().success());
}

// libjson-rpc-cpp's HttpServer with echo (one string, returned as the params
// it came in) and subtract (two integers by position), on a port the kernel
// picked.
class JsonRpcCppServer : public ::testing::Test {
 protected:
  std::string url() const { return "http://127.0.0.1:" + server_.announced() + "/"; }

  AnnouncingProcess server_{{kPeer, "server", "0"}, AnnouncingProcess::Stream::out, "ready "};
};

TEST_F(JsonRpcCppServer, ConduitClientGetsEchoBack) {
  JsonRpcClient client(url(), 5s);
  EXPECT_EQ(client.call("echo", R"(["hello"])"), R"(["hello"])");
  // jsoncpp may write the é back escaped or not.
  EXPECT_PRED2(same_json, client.call("echo", R"(["a \"quoted\" \u00e9 string"])"),
               R"(["a \"quoted\" é string"])");
}

TEST_F(JsonRpcCppServer, ConduitClientSubtracts) {
  JsonRpcClient client(url(), 5s);
  EXPECT_EQ(client.call("subtract", "[42,23]"), "19");
  EXPECT_EQ(client.call("subtract", "[23,42]"), "-19");
}

TEST_F(JsonRpcCppServer, UnknownMethodIsJsonRpcErrorMethodNotFound) {
  JsonRpcClient client(url(), 5s);
  try {
    client.call("foobar", "[]");
    FAIL() << "foobar returned a result";
  } catch (const JsonRpcError& error) {
    EXPECT_EQ(error.code(), -32601) << error.error_json();
  }
  EXPECT_EQ(client.call("subtract", "[2,1]"), "1") << "the connection is still usable";
}

// libjson-rpc-cpp answers a notification of a method with an error object
// (-32604, "the requested notification is declared as a method") where the
// specification wants no reply; conduit's client reads that reply and keeps
// the connection in step.
TEST_F(JsonRpcCppServer, ReplyToANotificationLeavesTheConnectionUsable) {
  JsonRpcClient client(url(), 5s);
  client.notify("echo", R"(["ignored"])");
  EXPECT_EQ(client.call("subtract", "[5,1]"), "4");
  client.notify("subtract", "[1,2]");
  EXPECT_EQ(client.call("subtract", "[6,1]"), "5");
}

// The peer declares subtract by position only, so names are invalid params.
TEST_F(JsonRpcCppServer, NamedParamsToAPositionalMethodAreInvalidParams) {
  JsonRpcClient client(url(), 5s);
  try {
    client.call("subtract", R"({"minuend":42,"subtrahend":23})");
    FAIL() << "named params were accepted";
  } catch (const JsonRpcError& error) {
    EXPECT_EQ(error.code(), -32602) << error.error_json();
  }
}

TEST_F(JsonRpcCppServer, ConduitCallPrintsTheResults) {
  testing::CommandResult echo = conduit({"call", url(), "echo", R"(["hello"])"}, 30s);
  EXPECT_TRUE(echo.status.success()) << echo.status.describe() << echo.err;
  EXPECT_EQ(echo.out, "[\"hello\"]\n");

  testing::CommandResult subtract = conduit({"call", url(), "subtract", "[42,23]"}, 30s);
  EXPECT_TRUE(subtract.status.success()) << subtract.status.describe() << subtract.err;
  EXPECT_EQ(subtract.out, "19\n");
}

TEST_F(JsonRpcCppServer, ConduitCallPrintsTheErrorObjectAndExitsOne) {
  testing::CommandResult result = conduit({"call", url(), "foobar", "[]"}, 30s);
  EXPECT_EQ(result.status.code, 1) << result.status.describe();
  EXPECT_CONTAINS(result.out + result.err, R"("code":-32601)");
}

TEST_F(JsonRpcCppServer, PeerStopsWhenItsStdinCloses) {
  auto status = server_.close_stdin_and_wait(10s);
  ASSERT_TRUE(status.has_value()) << "still running 10 s after its stdin closed";
  EXPECT_TRUE(status->success()) << status->describe();
}

TEST_F(JsonRpcCppServer, PeerStopsOnSigterm) {
  EXPECT_TRUE(server_.stop().success());
}

}  // namespace
}  // namespace conduit::rpc
