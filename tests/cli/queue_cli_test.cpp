// `conduit ipc serve` and `conduit ipc ping` over message queues (mq:/name,
// sysvmq:KEY), run as the real binary: echoes, sizes up to the kernel's
// limit and past it (inside an IPC namespace of the test's own), concurrent
// clients, exit codes and messages, and the queues removed on SIGTERM.
#include <mqueue.h>
#include <sys/msg.h>

#include <thread>

#include "cli_support.hpp"
#include "conduit/ipc/channel.hpp"
#include "conduit/ipc/posix_message_queue.hpp"
#include "conduit/ipc/shared_memory.hpp"  // key_from_path
#include "conduit/ipc/sysv_message_queue.hpp"
#include "conduit/ipc/uri.hpp"
#include "queue_test_support.hpp"
#include "test_support.hpp"

namespace conduit::testing {
namespace {

using ipc::ExitStatus;

class QueueCliTest : public ::testing::TestWithParam<std::string> {
 protected:
  bool mq() const { return GetParam() == "mq"; }
  const std::string& uri() const { return uri_; }
  void TearDown() override { EXPECT_FALSE(queue_exists(uri_)) << uri_ << " was left behind"; }

 private:
  std::string uri_ = fresh_queue_uri(GetParam(), "cli");
};

INSTANTIATE_TEST_SUITE_P(, QueueCliTest, ::testing::Values("mq", "sysvmq"),
                         [](const auto& info) { return info.param; });

TEST_P(QueueCliTest, PingEchoesManyMessagesAndReportsLatency) {
  EchoServer server(uri());
  EXPECT_EQ(server.uri(), uri());
  CommandResult result =
      conduit({"ipc", "ping", server.uri(), "--count", "500", "--size", "1000", "--json"});
  ASSERT_TRUE(result.status.success()) << result.err;
  EXPECT_NE(result.out.find("\"count\":500"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("\"p50_us\":"), std::string::npos) << result.out;
  EXPECT_TRUE(server.stop().success()) << server.errors();
}

TEST_P(QueueCliTest, CarriesEmptyMessagesAndTheMaximumSizeButNoMore) {
  EchoServer server(uri());
  std::size_t max = ipc::Channel::connect(server.uri()).max_message_size();
  EXPECT_EQ(max, 8192u - 16);  // the default limits less conduit's header
  CommandResult empty = conduit({"ipc", "ping", server.uri(), "--count", "50", "--size", "0"});
  EXPECT_TRUE(empty.status.success()) << empty.err;
  CommandResult largest =
      conduit({"ipc", "ping", server.uri(), "--count", "50", "--size", std::to_string(max)});
  EXPECT_TRUE(largest.status.success()) << largest.err;
  CommandResult over =
      conduit({"ipc", "ping", server.uri(), "--count", "1", "--size", std::to_string(max + 1)});
  EXPECT_EQ(over.status.code, 2) << over.out;
  EXPECT_NE(over.err.find("exceeds the maximum message size of " + std::to_string(max)),
            std::string::npos)
      << over.err;
}

TEST_P(QueueCliTest, TwoConcurrentClientsEachGetTheirOwnEchoes) {
  EchoServer server(uri());
  // Different sizes: an echo delivered to the wrong client would not match.
  std::vector<std::thread> clients;
  std::vector<CommandResult> results(2);
  for (int c = 0; c < 2; ++c)
    clients.emplace_back([&, c] {
      results[c] = conduit(
          {"ipc", "ping", server.uri(), "--count", "1000", "--size", std::to_string(300 + c)});
    });
  for (auto& client : clients) client.join();
  for (int c = 0; c < 2; ++c) {
    EXPECT_TRUE(results[c].status.success()) << "client " << c << ": " << results[c].err;
    EXPECT_NE(results[c].out.find("1000 messages of " + std::to_string(300 + c) +
                                  " bytes echoed and checked"),
              std::string::npos)
        << results[c].out;
  }
  EXPECT_TRUE(server.stop().success()) << server.errors();
}

TEST_P(QueueCliTest, SigtermRemovesTheQueue) {
  EchoServer server(uri());
  ipc::Channel connected = ipc::Channel::connect(server.uri());  // a client still attached
  ASSERT_TRUE(queue_exists(uri()));
  ExitStatus status = server.stop();
  EXPECT_TRUE(status.success()) << status.describe() << server.errors();
  ipc::Uri parsed = ipc::Uri::parse(uri());
  if (mq()) {
    EXPECT_EQ(::mq_open(parsed.path.c_str(), O_RDONLY), static_cast<mqd_t>(-1));
    EXPECT_EQ(errno, ENOENT);
  } else {
    EXPECT_EQ(::msgget(*ipc::parse_sysv_key(parsed.path), 0), -1);
    EXPECT_EQ(errno, ENOENT);
  }
  EXPECT_EQ(connected.receive(std::chrono::seconds(5)).status, ipc::ReceiveStatus::closed);
}

TEST_P(QueueCliTest, SecondServerOnALiveQueueExitsTwoAndTheFirstGoesOn) {
  EchoServer first(uri());
  CommandResult second = conduit({"ipc", "serve", uri()});
  EXPECT_EQ(second.status.code, 2);
  EXPECT_NE(second.err.find("another"), std::string::npos) << second.err;
  CommandResult still = conduit({"ipc", "ping", first.uri(), "--count", "10"});
  EXPECT_TRUE(still.status.success()) << still.err;
}

TEST_P(QueueCliTest, PingWithoutAServerExitsTwoAndSaysSo) {
  CommandResult result = conduit({"ipc", "ping", uri()});
  EXPECT_EQ(result.status.code, 2);
  EXPECT_NE(result.err.find("is the server running"), std::string::npos) << result.err;
  EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << result.err;
}

TEST_P(QueueCliTest, MaxAboveTheKernelLimitExitsTwoNamingTheSysctlAndItsValue) {
  CommandResult result = conduit({"ipc", "serve", uri() + "?max=16K"});
  EXPECT_EQ(result.status.code, 2);
  std::string expected =
      mq() ? "fs.mqueue.msgsize_max = " +
                 std::to_string(ipc::PosixQueueLimits::current().msgsize_max)
           : "kernel.msgmax = " + std::to_string(ipc::SysVQueueLimits::current().msgmax);
  EXPECT_NE(result.err.find(expected), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("sysctl -w"), std::string::npos) << result.err;
}

TEST_P(QueueCliTest, BigMessagesPassInsideAnIpcNamespaceWithRaisedLimits) {
  if (!has_program("unshare")) GTEST_SKIP() << "unshare (util-linux) is not installed";
  if (!run_command({"unshare", "--ipc", "true"}).status.success())
    GTEST_SKIP() << "unshare --ipc is not permitted here";
  TempDir dir;
  // 16 KiB for mq (the server's and the client's queues of 10 messages
  // each count against RLIMIT_MSGQUEUE), 48 KiB for sysvmq.
  std::string size = mq() ? "16384" : "49152";
  std::string raise = mq() ? "echo 65536 > /proc/sys/fs/mqueue/msgsize_max"
                           : "echo 65536 > /proc/sys/kernel/msgmax && "
                             "echo 131072 > /proc/sys/kernel/msgmnb";
  std::string script = "set -e; " + raise +
                       "\n"
                       "\"$1\" ipc serve \"$2?max=$3\" 2>\"$4\" &\n"
                       "server=$!\n"
                       "i=0; while ! grep -q 'listening on' \"$4\"; do\n"
                       "  i=$((i+1)); [ $i -lt 200 ] || { cat \"$4\" >&2; exit 3; }; sleep 0.05\n"
                       "done\n"
                       "status=0\n"
                       "\"$1\" ipc ping \"$2\" --count 20 --size \"$3\" || status=$?\n"
                       "kill -TERM $server; wait $server || status=$?\n"
                       "exit $status\n";
  CommandResult result = run_command({"unshare", "--ipc", "sh", "-c", script, "sh",
                                      conduit_binary(), uri(), size, dir / "serve.log"},
                                     std::chrono::seconds(60));
  EXPECT_TRUE(result.status.success()) << result.status.describe() << "\n" << result.err;
  EXPECT_NE(result.out.find("20 messages of " + size + " bytes echoed and checked"),
            std::string::npos)
      << result.out;
}

TEST_P(QueueCliTest, ServerGoesOnAfterAClientDies) {
  EchoServer server(uri());
  pid_t victim = fork_child([&] {
    ipc::Channel client = ipc::Channel::connect(server.uri());
    client.send(std::string_view("never read"));
    ::raise(SIGKILL);
  });
  ASSERT_TRUE(WIFSIGNALED(wait_child(victim)));
  CommandResult good = conduit({"ipc", "ping", server.uri(), "--count", "100"});
  EXPECT_TRUE(good.status.success()) << good.err;
  EXPECT_TRUE(server.stop().success()) << server.errors();
  if (mq()) {
    std::string left = ipc::Uri::parse(uri()).path + "." + std::to_string(victim);
    EXPECT_FALSE(posix_queue_exists(left)) << "the dead client's reply queue was left behind";
    ::mq_unlink(left.c_str());
  }
}

TEST_P(QueueCliTest, PermissionDeniedExitsTwo) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to make a queue another user may not use";
  if (!has_program("setpriv")) GTEST_SKIP() << "setpriv (util-linux) is needed to drop root";
  EchoServer server(uri());  // mode 600, owned by root
  CommandResult result =
      run_command({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", conduit_binary(),
                   "ipc", "ping", server.uri(), "--count", "1"});
  EXPECT_EQ(result.status.code, 2) << result.err;
  EXPECT_NE(result.err.find("Permission denied"), std::string::npos) << result.err;
}

TEST(QueueCli, SysvmqKeyFromAPathServesAndIsRemoved) {
  TempDir dir;
  std::string uri = "sysvmq:" + dir.path();
  {
    EchoServer server(uri);
    CommandResult result = conduit({"ipc", "ping", uri, "--count", "100"});
    EXPECT_TRUE(result.status.success()) << result.err;
    EXPECT_TRUE(queue_exists(uri));
  }
  EXPECT_FALSE(queue_exists(uri));
}

TEST(QueueCli, MalformedQueueUrisExitTwoWithTheReason) {
  for (auto [uri, reason] : std::vector<std::pair<std::string, std::string>>{
           {"mq:no-slash", "does not start with '/'"},
           {"mq:/a/b", "'/' after the first character"},
           {"mq:/x?raw", "keeps message boundaries"},
           {"sysvmq:0", "number from 1 to 0xffffffff"},
           {"sysvmq:0x1g", "number from 1 to 0xffffffff"}}) {
    CommandResult result = conduit({"ipc", "ping", uri});
    EXPECT_EQ(result.status.code, 2) << uri;
    EXPECT_NE(result.err.find(reason), std::string::npos) << uri << ": " << result.err;
  }
}

TEST(QueueCli, HelpExplainsTheQueueSchemes) {
  for (auto command : {std::vector<std::string>{"ipc", "--help"},
                       std::vector<std::string>{"ipc", "serve", "--help"},
                       std::vector<std::string>{"ipc", "ping", "--help"}}) {
    CommandResult result = conduit(command);
    EXPECT_TRUE(result.status.success());
    for (auto form : {"mq:/name", "sysvmq:KEY", "sysvmq:/path"})
      EXPECT_NE(result.out.find(form), std::string::npos) << command[1] << " lacks " << form;
  }
}

TEST(QueueCli, TableMeasuresBothQueues) {
  CommandResult result = conduit({"ipc", "table", "--count", "200"}, std::chrono::seconds(60));
  EXPECT_TRUE(result.status.success()) << result.out << result.err;
  for (auto row : {"POSIX message queue ", "System V message queue "}) {
    auto at = result.out.find(row);
    ASSERT_NE(at, std::string::npos) << result.out;
    EXPECT_EQ(result.out.substr(at, result.out.find('\n', at) - at).find("failed"),
              std::string::npos)
        << result.out;
  }
}

}  // namespace
}  // namespace conduit::testing
