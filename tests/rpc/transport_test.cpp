// The RPC transport layer: one parser of addresses for servers and clients,
// and listeners whose socket files follow ipc's rules (a live socket is never
// taken over, a stale one is replaced, a file that is not a socket is left
// alone).
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "conduit/error.hpp"
#include "conduit/ipc/unix_socket.hpp"
#include "conduit/rpc/jsonrpc_client.hpp"
#include "conduit/rpc/server.hpp"
#include "interop/jsonrpc_examples.hpp"
#include "rpc/transports/address.hpp"
#include "test_support.hpp"

namespace conduit::rpc::transport {
namespace {

using namespace std::chrono_literals;
using testing::TempDir;

std::string refusal(std::string_view text, Role role) {
  try {
    parse_address(text, role);
  } catch (const InvalidUri& error) {
    return error.what();
  }
  return "(accepted)";
}

TEST(TransportAddress, EveryFormParsesAndPrintsBack) {
  for (const char* text :
       {"tcp://127.0.0.1:4000", "tcp://[::1]:4000", "tcp://localhost:80", "unix:/run/x.sock",
        "unix:@abstract", "shm+unix:/run/x.sock", "shm+unix:@abstract"}) {
    EXPECT_EQ(parse_address(text, Role::client).uri(), text);
    EXPECT_EQ(parse_address(text, Role::server).uri(), text);
  }
  EXPECT_EQ(parse_address("stdio", Role::server).kind, Kind::stdio);
  EXPECT_EQ(parse_address("tcp://127.0.0.1:0", Role::server).port, 0);
  const Address v6 = parse_address("tcp://[::1]:7", Role::client);
  EXPECT_EQ(v6.host, "::1");
  EXPECT_EQ(v6.port, 7);
  EXPECT_EQ(parse_address("unix:///run/x.sock", Role::client).path, "/run/x.sock");
}

TEST(TransportAddress, ShmColonIsExplainedNotTakenForTheRpcTransport) {
  const std::string why = refusal("shm:/rpc.sock", Role::server);
  EXPECT_CONTAINS(why, "POSIX shared-memory segment");
  EXPECT_CONTAINS(why, "shm+unix:/path");
}

TEST(TransportAddress, AnUnknownSchemeListsTheRpcFormsNotTheIpcOnes) {
  const std::string why = refusal("udp://127.0.0.1:9", Role::server);
  EXPECT_CONTAINS(why, "unknown scheme 'udp'");
  EXPECT_CONTAINS(why, "tcp://HOST:PORT");
  EXPECT_CONTAINS(why, "shm+unix:/path");
  EXPECT_CONTAINS(why, "stdio");
  EXPECT_EQ(why.find("mq:/name"), std::string::npos) << why;
  EXPECT_EQ(why.find("fifo:"), std::string::npos) << why;
}

TEST(TransportAddress, WhatOnlyAServerTakesIsRefusedToAClient) {
  EXPECT_CONTAINS(refusal("stdio", Role::client), "a client cannot connect to stdio");
  EXPECT_CONTAINS(refusal("tcp://127.0.0.1:0", Role::client), "port 0");
  EXPECT_EQ(refusal("stdio", Role::client).find("stdio     "), std::string::npos)
      << "a client's list of forms has no stdio";
}

TEST(TransportAddress, MalformedAddressesNameTheProblem) {
  EXPECT_CONTAINS(refusal("tcp://127.0.0.1", Role::client), "HOST:PORT");
  EXPECT_CONTAINS(refusal("tcp://127.0.0.1:70000", Role::client), "1 to 65535");
  EXPECT_CONTAINS(refusal("tcp://127.0.0.1:x", Role::client), "1 to 65535");
  EXPECT_CONTAINS(refusal("tcp://::1:80", Role::client), "brackets");
  EXPECT_CONTAINS(refusal("tcp://[::1:80", Role::client), "']'");
  EXPECT_CONTAINS(refusal("tcp://:80", Role::client), "needs a host");
  EXPECT_CONTAINS(refusal("tcp://h:1/path", Role::client), "no path");
  EXPECT_CONTAINS(refusal("unix:", Role::client), "socket path");
  EXPECT_CONTAINS(refusal("unix:@", Role::client), "name after '@'");
  EXPECT_CONTAINS(refusal("unix:/" + std::string(200, 'x'), Role::client), "107 bytes");
  EXPECT_CONTAINS(refusal("127.0.0.1:80", Role::client), "unknown scheme '127.0.0.1'");
  EXPECT_CONTAINS(refusal("", Role::client), "no scheme");
}

class TransportListener : public ::testing::Test {
 protected:
  void SetUp() override { add_jsonrpc_examples(services_); }
  std::string path() const { return dir_.path() + "/rpc.sock"; }

  TempDir dir_;
  ServiceTable services_;
};

TEST_F(TransportListener, AStaleSocketFileIsReplaced) {
  // What a killed server leaves: a socket file nobody accepts on.
  {
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path().c_str(), sizeof address.sun_path - 1);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    ::close(fd);  // bound, never listened, closed: nobody will ever accept there
  }
  ASSERT_TRUE(std::filesystem::is_socket(path()));
  Server server(services_);
  EXPECT_EQ(server.listen("unix:" + path()), "unix:" + path());
  server.start();
  JsonRpcClient client("unix:" + path(), 5s);
  EXPECT_EQ(client.call("subtract", "[42,23]"), "19");
  server.shutdown(1s);
  EXPECT_FALSE(std::filesystem::exists(path())) << "the socket file outlived its server";
}

TEST_F(TransportListener, ALiveServersSocketIsNeverTakenOver) {
  Server first(services_);
  first.listen("shm+unix:" + path());
  first.start();
  Server second(services_);
  try {
    second.listen("unix:" + path());
    FAIL() << "a second server took over a live socket";
  } catch (const SystemError& error) {
    EXPECT_EQ(error.code(), EADDRINUSE) << error.what();
    EXPECT_CONTAINS(std::string(error.what()), "another process is serving");
  }
  first.shutdown(1s);
}

TEST_F(TransportListener, AFileThatIsNotASocketIsLeftAlone) {
  std::ofstream(path()) << "precious";
  Server server(services_);
  try {
    server.listen("unix:" + path());
    FAIL() << "listened over a regular file";
  } catch (const SystemError& error) {
    EXPECT_CONTAINS(std::string(error.what()), "not a socket");
  }
  std::ifstream kept(path());
  std::string text;
  kept >> text;
  EXPECT_EQ(text, "precious");
}

}  // namespace
}  // namespace conduit::rpc::transport
