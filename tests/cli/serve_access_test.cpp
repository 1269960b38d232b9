// Who may connect to `conduit serve`: its UNIX socket files are the
// server's user's alone whatever the umask, unless --socket-mode says
// otherwise.
#include <gtest/gtest.h>

#include "cli_support.hpp"
#include "descriptors.hpp"
#include "test_support.hpp"

namespace conduit::testing {
namespace {

// `conduit serve` on a UNIX socket and a shm+unix: socket in `dir`, run
// under umask 000, with `flags` added.
ServerProcess serve_under_umask_000(const TempDir& dir, const std::vector<std::string>& flags) {
  std::vector<std::string> argv = {"sh",
                                   "-c",
                                   "umask 000 && exec \"$@\"",
                                   "sh",
                                   conduit_binary(),
                                   "serve",
                                   "--listen",
                                   "unix:" + (dir / "rpc.sock"),
                                   "--listen",
                                   "shm+unix:" + (dir / "shm.sock")};
  argv.insert(argv.end(), flags.begin(), flags.end());
  return ServerProcess(argv);
}

TEST(ServeAccess, SocketFilesAreTheUsersAloneWhateverTheUmask) {
  TempDir dir;
  ServerProcess server = serve_under_umask_000(dir, {});
  EXPECT_EQ(mode_of(dir / "rpc.sock"), 0600);
  EXPECT_EQ(mode_of(dir / "shm.sock"), 0600);
}

TEST(ServeAccess, SocketModeFlagOpensTheFilesToTheGroup) {
  TempDir dir;
  ServerProcess server = serve_under_umask_000(dir, {"--socket-mode", "660"});
  EXPECT_EQ(mode_of(dir / "rpc.sock"), 0660);
  EXPECT_EQ(mode_of(dir / "shm.sock"), 0660);
}

TEST(ServeAccess, SocketModeThatLocksTheOwnerOutIsRefused) {
  TempDir dir;
  CommandResult result =
      conduit({"serve", "--listen", "unix:" + (dir / "rpc.sock"), "--socket-mode", "066"});
  EXPECT_EQ(result.status.code, 2) << result.status.describe();
  EXPECT_CONTAINS(result.err, "--socket-mode");
  EXPECT_CONTAINS(result.err, "600");
  EXPECT_FALSE(exists(dir / "rpc.sock"));
}

TEST(ServeAccess, HelpSaysWhoMayConnect) {
  CommandResult result = conduit({"serve", "--help"});
  EXPECT_CONTAINS(result.out, "--socket-mode");
  EXPECT_CONTAINS(result.out, "unix:@name");
}

}  // namespace
}  // namespace conduit::testing
