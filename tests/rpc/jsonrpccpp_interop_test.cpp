// Interoperability with libjson-rpc-cpp, through jsonrpccpp_peer (built with
// that library and nothing of conduit's): its HttpClient calling
// `conduit serve`, and conduit's client, as a library and as `conduit call`,
// calling its HttpServer.
#include <gtest/gtest.h>
#include <poll.h>
#include <rapidjson/document.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "cli_support.hpp"
#include "conduit/ipc/file_descriptor.hpp"
#include "conduit/ipc/pipe.hpp"
#include "conduit/ipc/process.hpp"
#include "conduit/rpc/jsonrpc_client.hpp"
#include "test_support.hpp"

namespace conduit::rpc {
namespace {

using namespace std::chrono_literals;
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

// A server started as a child process, found ready by a line it writes. Its
// stdin is a pipe the test holds, so closing it is a way to stop it. The
// destructor stops it with SIGTERM (SIGKILL after 10 s) and reaps it.
class ServerProcess {
 public:
  enum class Stream { out, err };

  // Starts argv and waits at most 10 s for a line on `stream` that contains
  // `marker`; what follows the marker on that line is announced(). Throws
  // std::runtime_error, with what the child wrote, if no such line comes.
  ServerProcess(const std::vector<std::string>& argv, Stream stream, const std::string& marker) {
    ipc::PipePair in = ipc::PipePair::create();
    ipc::PipePair announcing = ipc::PipePair::create();
    ipc::SpawnOptions options;
    options.argv = argv;
    options.stdin_fd = in.read_end.get();
    (stream == Stream::out ? options.stdout_fd : options.stderr_fd) = announcing.write_end.get();
    program_ = argv.front();
    process_ = ipc::Process::spawn(options);
    stdin_ = std::move(in.write_end);
    output_ = std::move(announcing.read_end);
    announcing.write_end.reset();
    announced_ = read_announcement(marker, 10s);
  }

  ~ServerProcess() {
    if (process_.running()) stop();
  }

  const std::string& announced() const { return announced_; }

  // Ends the child's stdin and waits at most timeout for it to exit.
  std::optional<ipc::ExitStatus> close_stdin_and_wait(std::chrono::milliseconds timeout) {
    stdin_.reset();
    return process_.wait_for(timeout);
  }

  // Sends SIGTERM and reaps the child; SIGKILL (and a test failure) if it
  // is still running after 10 s.
  ipc::ExitStatus stop() {
    process_.kill(SIGTERM);
    if (auto status = process_.wait_for(10s)) return *status;
    ADD_FAILURE() << program_ << " ignored SIGTERM for 10 s";
    process_.kill(SIGKILL);
    return process_.wait();
  }

 private:
  std::string read_announcement(const std::string& marker, std::chrono::milliseconds timeout) {
    std::string seen;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto at = seen.find(marker);
      auto end = at == std::string::npos ? at : seen.find('\n', at);
      if (end != std::string::npos)
        return seen.substr(at + marker.size(), end - at - marker.size());
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      pollfd readable{output_.get(), POLLIN, 0};
      if (::poll(&readable, 1, static_cast<int>(left.count())) <= 0) continue;
      char chunk[512];
      ssize_t n = ::read(output_.get(), chunk, sizeof chunk);
      if (n == 0 || (n < 0 && errno != EINTR)) break;  // the child exited
      if (n > 0) seen.append(chunk, static_cast<std::size_t>(n));
    }
    throw std::runtime_error("no \"" + marker + "\" line from " + program_ +
                             ", which wrote: " + seen);
  }

  std::string program_;
  ipc::Process process_;
  ipc::FileDescriptor stdin_;
  ipc::FileDescriptor output_;
  std::string announced_;
};

// libjson-rpc-cpp's HttpClient and Client calling `conduit serve`: the
// specification's examples, an echo of a nested object, a notification and
// two errors, each checked by the peer and reported on a line.
TEST(JsonRpcCppInterop, LibJsonRpcCppClientCallsConduitServe) {
  ServerProcess server({conduit_binary(), "serve", "--listen", "tcp://127.0.0.1:0"},
                       ServerProcess::Stream::err, "listening on tcp://127.0.0.1:");
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

  ServerProcess server_{{kPeer, "server", "0"}, ServerProcess::Stream::out, "ready "};
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
