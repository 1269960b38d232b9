// `conduit serve` keeps its resources bounded against careless and hostile
// clients: every limit of the server is a flag, and a connection that sends
// nothing gives its slot back.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <thread>

#include "cli_support.hpp"
#include "conduit/ipc/tcp_socket.hpp"
#include "proc_stats.hpp"
#include "raw_wire.hpp"
#include "test_support.hpp"

namespace conduit::testing {
namespace {

using namespace std::chrono_literals;

// `conduit serve` on a loopback TCP port, with `flags` added.
class Serve {
 public:
  explicit Serve(const std::vector<std::string>& flags,
                 const std::vector<std::string>& wrapper = {})
      : process_(command(flags, wrapper)) {}

  ServerProcess& process() { return process_; }
  std::uint16_t port() const {
    return static_cast<std::uint16_t>(
        std::stoi(process_.uri().substr(process_.uri().rfind(':') + 1)));
  }
  ipc::TcpSocket connect() const { return ipc::TcpSocket::connect("127.0.0.1", port()); }

 private:
  static std::vector<std::string> command(const std::vector<std::string>& flags,
                                          const std::vector<std::string>& wrapper) {
    std::vector<std::string> argv = wrapper;
    for (const std::string& arg : {conduit_binary(), std::string("serve"), std::string("--listen"),
                                   std::string("tcp://127.0.0.1:0")})
      argv.push_back(arg);
    argv.insert(argv.end(), flags.begin(), flags.end());
    return argv;
  }

  ServerProcess process_;
};

TEST(ServeLimits, HelpListsEveryLimitOfTheServer) {
  CommandResult result = conduit({"serve", "--help"});
  EXPECT_TRUE(result.status.success()) << result.status.describe();
  for (const char* flag :
       {"--max-connections", "--handshake-timeout", "--idle-timeout", "--request-timeout",
        "--call-timeout", "--max-calls-per-connection", "--max-message-size", "--shm-ring-size"})
    EXPECT_CONTAINS(result.out, flag);
}

TEST(ServeLimits, IdleTimeoutFlagClosesAConnectionIdleThatLong) {
  Serve serve({"--idle-timeout", "300"});
  auto socket = serve.connect();
  send_all(socket.fd(), R"({"jsonrpc":"2.0","method":"subtract","params":[3,1],"id":1})"
                        "\n");
  EXPECT_CONTAINS(read_until(socket.fd(), "\n"), R"("result":2)");
  const long long waited = ms_until_closed(socket.fd(), 5s);
  EXPECT_GE(waited, 200);
  EXPECT_LT(waited, 2000) << "the idle connection was not closed";
}

TEST(ServeLimits, HandshakeTimeoutFlagClosesAConnectionThatSendsNothing) {
  Serve serve({"--handshake-timeout", "300"});
  auto socket = serve.connect();
  const long long waited = ms_until_closed(socket.fd(), 5s);
  EXPECT_GE(waited, 200);
  EXPECT_LT(waited, 2000) << "a connection that sent nothing kept its slot";
}

// The server runs with 64 descriptors and 120 clients connect and send
// nothing: accept() fails with EMFILE while they hold what there is.
TEST(ServeLimits, OutOfDescriptorsTheServerNeitherSpinsNorKeepsNewClientsOut) {
#ifdef CONDUIT_UBSAN_NEEDS_DESCRIPTORS
  GTEST_SKIP() << "UndefinedBehaviorSanitizer's vptr check needs free descriptors (a pipe) and "
                  "reports a correct virtual call as an invalid vptr in a process that has none";
#endif
  Serve serve({"--threads", "1", "--handshake-timeout", "60000"},
              {"sh", "-c", "ulimit -n 64 && exec \"$@\"", "sh"});
  std::vector<ipc::TcpSocket> silent;
  for (int i = 0; i < 120; ++i) silent.push_back(serve.connect());
  std::this_thread::sleep_for(500ms);  // the server has run into its limit

  const pid_t pid = serve.process().process().pid();
  const double before = cpu_seconds(pid);
  std::this_thread::sleep_for(1s);
  const double used = cpu_seconds(pid) - before;
  EXPECT_LT(used, 0.1) << "the server used " << used << " s of CPU in 1 s while out of descriptors";

  auto client = serve.connect();
  send_all(client.fd(), R"({"jsonrpc":"2.0","method":"subtract","params":[3,1],"id":1})"
                        "\n");
  EXPECT_CONTAINS(read_until(client.fd(), "\n", 5s), R"("result":2)");

  const std::string errors = serve.process().errors();
  std::size_t reports = 0;
  for (auto at = errors.find("out of file descriptors"); at != std::string::npos;
       at = errors.find("out of file descriptors", at + 1))
    ++reports;
  EXPECT_EQ(reports, 1u) << "reported once per interval, not once per failed accept:\n" << errors;
}

}  // namespace
}  // namespace conduit::testing
