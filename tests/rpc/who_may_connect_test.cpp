// Who may connect to a server's UNIX sockets: a socket file has the
// permission bits ServerOptions::unix_socket_mode gives (0600 unless told),
// whatever the umask; an abstract socket, which has no file, admits peers by
// the same bits held against their credentials.
#include <grp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <mutex>

#include "conduit/ipc/unix_socket.hpp"
#include "conduit/rpc/server.hpp"
#include "descriptors.hpp"
#include "interop/jsonrpc_examples.hpp"
#include "raw_wire.hpp"
#include "rpc/transports/shm_transport.hpp"
#include "test_support.hpp"

namespace conduit::rpc {
namespace {

using namespace std::chrono_literals;
using testing::mode_of;
using testing::read_until;
using testing::TempDir;

constexpr uid_t kNobody = 65534;

// A unique abstract name for this process and test.
std::string abstract_name(const std::string& what) {
  return "@conduit-test-" + std::to_string(::getpid()) + "-" + what;
}

// A server of the specification's examples on `uri`, with `mode`; what it
// reports is kept.
class AccessServer {
 public:
  AccessServer(const std::string& uri, mode_t mode) {
    add_jsonrpc_examples(services_);
    ServerOptions options;
    options.threads = 1;
    options.unix_socket_mode = mode;
    options.log = [this](std::string_view line) {
      std::lock_guard lock(mutex_);
      reports_.emplace_back(line);
    };
    server_ = std::make_unique<Server>(services_, options);
    server_->listen(uri);
    server_->start();
  }
  ~AccessServer() { server_->shutdown(1s); }

  std::vector<std::string> reports() {
    std::lock_guard lock(mutex_);
    return reports_;
  }

 private:
  ServiceTable services_;
  std::unique_ptr<Server> server_;
  std::mutex mutex_;
  std::vector<std::string> reports_;
};

// In a child that runs as `uid` and `gid`: whether a call over the UNIX
// socket at `path` was answered. Skips the test when this process may not
// change its ids (not root).
bool answered_as(const std::string& path, uid_t uid, gid_t gid) {
  if (::geteuid() != 0) return false;
  pid_t child = testing::fork_child([&] {
    if (::setgroups(0, nullptr) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0) ::_exit(3);
    auto socket =
        ipc::UnixSocket::connect(ipc::UnixAddress::parse(path), ipc::UnixSocketType::stream);
    // Sent with no test assertion: a refused peer may find the socket closed.
    const std::string call = R"({"jsonrpc":"2.0","method":"subtract","params":[3,1],"id":1})"
                             "\n";
    if (::send(socket.fd(), call.data(), call.size(), MSG_NOSIGNAL) < 0) ::_exit(1);
    const std::string reply = read_until(socket.fd(), "\n", 5s);
    ::_exit(reply.find(R"("result":2)") != std::string::npos ? 0 : 1);
  });
  const int status = testing::wait_child(child, 10s);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) <= 1) << "the child could not run";
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

#define SKIP_UNLESS_ROOT() \
  if (::geteuid() != 0) GTEST_SKIP() << "changing a child's uid takes root"

TEST(AbstractSocket, PeerOfAnotherUserIsClosedUnanswered) {
  SKIP_UNLESS_ROOT();
  const std::string name = abstract_name("other-user");
  AccessServer server("unix:" + name, 0600);
  EXPECT_FALSE(answered_as(name, kNobody, kNobody)) << "another user's call was answered";
  testing::eventually([&] { return !server.reports().empty(); }, 2s);
  const auto reports = server.reports();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_CONTAINS(reports[0], "uid 65534");
  EXPECT_CONTAINS(reports[0], "0660");
}

TEST(AbstractSocket, PeerOfTheServersUserIsServed) {
  SKIP_UNLESS_ROOT();
  const std::string name = abstract_name("same-user");
  AccessServer server("unix:" + name, 0600);
  EXPECT_TRUE(answered_as(name, ::geteuid(), kNobody));
}

TEST(AbstractSocket, GroupModeAdmitsTheServersGroupOnly) {
  SKIP_UNLESS_ROOT();
  const std::string name = abstract_name("group");
  AccessServer server("unix:" + name, 0660);
  EXPECT_TRUE(answered_as(name, kNobody, ::getegid()));
  EXPECT_FALSE(answered_as(name, kNobody, kNobody));
}

TEST(AbstractSocket, OthersModeAdmitsAnyone) {
  SKIP_UNLESS_ROOT();
  const std::string name = abstract_name("anyone");
  AccessServer server("unix:" + name, 0666);
  EXPECT_TRUE(answered_as(name, kNobody, kNobody));
}

TEST(AbstractSocket, ShmPeerOfAnotherUserGetsNoSharedMemory) {
  SKIP_UNLESS_ROOT();
  const std::string name = abstract_name("shm");
  AccessServer server("shm+unix:" + name, 0600);
  pid_t child = testing::fork_child([&] {
    if (::setgroups(0, nullptr) != 0 || ::setgid(kNobody) != 0 || ::setuid(kNobody) != 0)
      ::_exit(3);
    try {
      shm::connect_link(name, 2s);
    } catch (const std::exception&) {
      ::_exit(0);  // refused
    }
    ::_exit(1);
  });
  const int status = testing::wait_child(child, 10s);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "another user was handed the server's shared memory";
}

TEST(UnixSocketFile, HasTheServersModeWhateverTheUmask) {
  TempDir dir;
  const mode_t umask_before = ::umask(0);
  {
    AccessServer owner_only("unix:" + (dir / "a.sock"), ServerOptions().unix_socket_mode);
    AccessServer group("shm+unix:" + (dir / "b.sock"), 0660);
    EXPECT_EQ(mode_of(dir / "a.sock"), 0600);
    EXPECT_EQ(mode_of(dir / "b.sock"), 0660);
  }
  ::umask(umask_before);
}

TEST(UnixSocketFile, ModeThatLocksTheOwnerOutIsRefused) {
  TempDir dir;
  ServiceTable services;
  ServerOptions options;
  options.unix_socket_mode = 0066;
  Server server(services, options);
  try {
    server.listen("unix:" + (dir / "c.sock"));
    ADD_FAILURE() << "listen() took mode 0066";
  } catch (const Error& error) {
    EXPECT_CONTAINS(error.what(), "0066");
    EXPECT_CONTAINS(error.what(), "0600");
  }
}

}  // namespace
}  // namespace conduit::rpc
