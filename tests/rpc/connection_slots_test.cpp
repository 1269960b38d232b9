// How long a connection may hold one of the server's slots without using
// it: a connection that brings no whole call within the handshake time is
// closed, and at the connection limit the connection idle longest makes room
// for a new client rather than the new client being turned away.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <thread>

#include "conduit/interop/jsonrpc_examples.pb.h"
#include "conduit/ipc/tcp_socket.hpp"
#include "conduit/ipc/unix_socket.hpp"
#include "conduit/rpc/jsonrpc_client.hpp"
#include "conduit/rpc/server.hpp"
#include "interop/jsonrpc_examples.hpp"
#include "raw_wire.hpp"
#include "rpc/transports/shm_transport.hpp"
#include "test_support.hpp"

namespace conduit::rpc {
namespace {

using namespace std::chrono_literals;
using testing::ms_until_closed;
using testing::read_until;
using testing::send_all;
using testing::TempDir;

// One JSON-RPC call as a line on a raw connection; the reply line.
std::string call_on(int fd, int id) {
  send_all(fd, R"({"jsonrpc":"2.0","method":"subtract","params":[)" + std::to_string(id) +
                   R"(,1],"id":)" + std::to_string(id) + "}\n");
  return read_until(fd, "\n", 5s);
}

// True when the peer has closed `fd` within `timeout` (what arrives
// meanwhile is dropped).
bool closed_within(int fd, std::chrono::milliseconds timeout) {
  return !testing::read_until_closed(fd, timeout).ends_with("<timeout>");
}

// A server of the specification's examples on loopback TCP, a UNIX socket
// and a shm+unix: socket, with the limits a test gives.
class SlotServer {
 public:
  explicit SlotServer(ServerOptions options) {
    add_jsonrpc_examples(services_);
    options.threads = 2;
    server_ = std::make_unique<Server>(services_, options);
    const std::string tcp = server_->listen("tcp://127.0.0.1:0");
    port_ = static_cast<std::uint16_t>(std::stoi(tcp.substr(tcp.rfind(':') + 1)));
    server_->listen("unix:" + unix_path());
    server_->listen("shm+unix:" + shm_path());
    server_->start();
  }
  ~SlotServer() { server_->shutdown(1s); }

  ipc::TcpSocket tcp() const { return ipc::TcpSocket::connect("127.0.0.1", port_); }
  ipc::UnixSocket unix_socket() const {
    return ipc::UnixSocket::connect(ipc::UnixAddress::parse(unix_path()),
                                    ipc::UnixSocketType::stream);
  }
  std::string unix_path() const { return dir_ / "rpc.sock"; }
  std::string shm_path() const { return dir_ / "rpc-shm.sock"; }
  std::string http() const { return "http://127.0.0.1:" + std::to_string(port_) + "/jsonrpc"; }

 private:
  TempDir dir_;
  ServiceTable services_;
  std::unique_ptr<Server> server_;
  std::uint16_t port_ = 0;
};

ServerOptions with_handshake(std::chrono::milliseconds handshake) {
  ServerOptions options;
  options.handshake_timeout = handshake;
  return options;  // the idle timeout stays at its 300 s
}

// `fd`, which sends nothing, is closed about 300 ms (the handshake time)
// after it connected.
void expect_closed_at_the_handshake_time(int fd) {
  const long long waited = ms_until_closed(fd, 5s);
  EXPECT_GE(waited, 200);
  EXPECT_LT(waited, 2000) << "a connection that sent nothing kept its slot";
}

TEST(HandshakeTimeout, SilentTcpConnectionIsClosedWithinTheHandshakeTime) {
  SlotServer server(with_handshake(300ms));
  expect_closed_at_the_handshake_time(server.tcp().fd());
}

TEST(HandshakeTimeout, SilentUnixConnectionIsClosedWithinTheHandshakeTime) {
  SlotServer server(with_handshake(300ms));
  expect_closed_at_the_handshake_time(server.unix_socket().fd());
}

TEST(HandshakeTimeout, FirstRequestSentInPartIsClosedWithinTheHandshakeTime) {
  ServerOptions options = with_handshake(300ms);
  options.request_timeout = 30s;
  SlotServer server(options);
  auto socket = server.tcp();
  send_all(socket.fd(), R"({"jsonrpc":"2.0","method":)");
  EXPECT_TRUE(closed_within(socket.fd(), 2s)) << "half a first request kept its slot";
}

TEST(HandshakeTimeout, SilentShmClientIsCutOffWithinTheHandshakeTime) {
  SlotServer server(with_handshake(300ms));
  shm::Link link = shm::connect_link(server.shm_path());
  const auto started = std::chrono::steady_clock::now();
  bool timed_out = false;
  try {
    EXPECT_FALSE(link.receive(3s, &timed_out).has_value());
  } catch (const std::exception&) {
    // The server's end went away: as good as a close.
  }
  EXPECT_FALSE(timed_out) << "a shm+unix: client that sent nothing kept its session";
  EXPECT_LT(std::chrono::steady_clock::now() - started, 2s);
}

TEST(HandshakeTimeout, ConnectionPastItsFirstCallIsBoundByTheIdleTimeoutInstead) {
  ServerOptions options = with_handshake(300ms);
  options.idle_timeout = 1500ms;
  SlotServer server(options);
  auto socket = server.tcp();
  EXPECT_CONTAINS(call_on(socket.fd(), 3), R"("result":2)");
  const long long waited = ms_until_closed(socket.fd(), 5s);
  EXPECT_GE(waited, 1200) << "a connection that had called was cut at the handshake time";
  EXPECT_LT(waited, 3500);
}

TEST(ConnectionSlots, ConnectionIdleLongestIsClosedToAdmitANewClient) {
  ServerOptions options = with_handshake(60s);
  options.max_connections = 4;
  SlotServer server(options);
  // Four connections take every slot; the first then makes a call, so the
  // second is the one idle longest.
  std::vector<ipc::TcpSocket> held;
  for (int i = 0; i < 4; ++i) {
    held.push_back(server.tcp());
    std::this_thread::sleep_for(20ms);
  }
  const std::string reply = call_on(held[0].fd(), 5);
  ASSERT_NE(reply.find(R"("result":4)"), std::string::npos) << reply;

  JsonRpcClient client(server.http(), 5s);
  EXPECT_EQ(client.call("subtract", "[42,23]"), "19") << "a new client was turned away";
  EXPECT_TRUE(closed_within(held[1].fd(), 2s)) << "the connection idle longest is still open";
  for (int i : {0, 2, 3})
    EXPECT_FALSE(closed_within(held[i].fd(), 100ms)) << "connection " << i << " was closed";
}

TEST(ConnectionSlots, ManySilentConnectionsDoNotKeepAWorkingClientOut) {
  ServerOptions options = with_handshake(60s);
  options.max_connections = 16;
  SlotServer server(options);
  std::vector<ipc::TcpSocket> silent;
  for (int i = 0; i < 64; ++i) silent.push_back(server.tcp());
  for (int i = 0; i < 3; ++i) {
    JsonRpcClient client(server.http(), 5s);
    EXPECT_EQ(client.call("subtract", "[42,23]"), "19") << "call " << i;
  }
}

}  // namespace
}  // namespace conduit::rpc
