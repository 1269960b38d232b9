// Specification of TCP sockets (conduit/ipc/tcp_socket.hpp). Every server
// binds to loopback only.

#include "conduit/ipc/tcp_socket.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "conduit/error.hpp"
#include "descriptors.hpp"
#include "test_support.hpp"

namespace conduit::ipc {
namespace {

using namespace std::chrono_literals;
using conduit::testing::accept_within;
using conduit::testing::contains;
using conduit::testing::exited_cleanly;
using conduit::testing::fork_child;
using conduit::testing::readable;
using conduit::testing::send_text;
using conduit::testing::system_error_of;
using conduit::testing::wait_child;

// Reads until `size` bytes arrived or the peer closed, with a timeout per read.
std::string receive_exactly(int fd, std::size_t size) {
  std::string text;
  char buffer[4096];
  while (text.size() < size) {
    if (!readable(fd)) {
      ADD_FAILURE() << "timed out after '" << text << "'";
      break;
    }
    ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) break;
    text.append(buffer, static_cast<std::size_t>(n));
  }
  return text;
}

int int_option(int fd, int level, int name) {
  int value = -1;
  socklen_t length = sizeof value;
  if (::getsockopt(fd, level, name, &value, &length) < 0) return -1;
  return value;
}

// A listener on ::1, or nullopt (with the reason) when IPv6 loopback is
// unavailable on this machine.
std::optional<TcpListener> bind_ipv6_loopback(std::string& why) {
  try {
    return TcpListener::bind("::1", 0);
  } catch (const Error& error) {
    why = error.what();
    return std::nullopt;
  }
}

// --- Listening --------------------------------------------------------------------

TEST(TcpSocketListener, PortZeroPicksARealPort) {
  TcpListener listener = TcpListener::bind("127.0.0.1", 0);
  EXPECT_NE(listener.port(), 0);
  EXPECT_EQ(listener.local_uri(), "tcp://127.0.0.1:" + std::to_string(listener.port()));
}

TEST(TcpSocketListener, SetsSoReuseaddrAndCloseOnExec) {
  TcpListener listener = TcpListener::bind("127.0.0.1", 0);
  EXPECT_EQ(int_option(listener.fd(), SOL_SOCKET, SO_REUSEADDR), 1);
  EXPECT_TRUE(::fcntl(listener.fd(), F_GETFD) & FD_CLOEXEC);
}

TEST(TcpSocketListener, PortInUseThrowsEADDRINUSESuggestingPortZero) {
  TcpListener first = TcpListener::bind("127.0.0.1", 0);
  auto [code, message] = system_error_of([&] { TcpListener::bind("127.0.0.1", first.port()); });
  EXPECT_EQ(code, EADDRINUSE);
  EXPECT_TRUE(contains(message, "bind(tcp://127.0.0.1:" + std::to_string(first.port()) + ")"))
      << message;
  EXPECT_TRUE(contains(message, "use port 0")) << message;
}

// --- Connecting and exchanging bytes ---------------------------------------------------

TEST(TcpSocketConnect, ClientInAnotherProcessExchangesBytesWithTheServer) {
  TcpListener listener = TcpListener::bind("127.0.0.1", 0);
  std::uint16_t port = listener.port();
  pid_t client = fork_child([&] {
    TcpSocket socket = TcpSocket::connect("127.0.0.1", port);
    send_text(socket.fd(), "ping");
    EXPECT_EQ(receive_exactly(socket.fd(), 4), "pong");
  });
  TcpSocket connection = accept_within(listener);
  EXPECT_EQ(receive_exactly(connection.fd(), 4), "ping");
  send_text(connection.fd(), "pong");
  EXPECT_TRUE(exited_cleanly(wait_child(client)));
}

TEST(TcpSocketConnect, BothConnectedSocketsHaveTcpNodelay) {
  TcpListener listener = TcpListener::bind("127.0.0.1", 0);
  TcpSocket client = TcpSocket::connect("127.0.0.1", listener.port());
  TcpSocket accepted = accept_within(listener);
  EXPECT_EQ(int_option(client.fd(), IPPROTO_TCP, TCP_NODELAY), 1) << "connecting side";
  EXPECT_EQ(int_option(accepted.fd(), IPPROTO_TCP, TCP_NODELAY), 1) << "accepting side";
}

TEST(TcpSocketConnect, ConnectedSocketsAreBlockingAndCloseOnExec) {
  TcpListener listener = TcpListener::bind("127.0.0.1", 0);
  TcpSocket client = TcpSocket::connect("127.0.0.1", listener.port());
  TcpSocket accepted = accept_within(listener);
  EXPECT_FALSE(::fcntl(client.fd(), F_GETFL) & O_NONBLOCK) << "left non-blocking by connect";
  EXPECT_TRUE(::fcntl(client.fd(), F_GETFD) & FD_CLOEXEC);
  EXPECT_TRUE(::fcntl(accepted.fd(), F_GETFD) & FD_CLOEXEC);
}

TEST(TcpSocketConnect, UrisNameBothEndsOfTheConnection) {
  TcpListener listener = TcpListener::bind("127.0.0.1", 0);
  TcpSocket client = TcpSocket::connect("127.0.0.1", listener.port());
  TcpSocket accepted = accept_within(listener);
  EXPECT_EQ(client.peer_uri(), listener.local_uri());
  EXPECT_EQ(accepted.local_uri(), listener.local_uri());
  EXPECT_EQ(accepted.peer_uri(), client.local_uri());
  EXPECT_TRUE(contains(client.local_uri(), "tcp://127.0.0.1:")) << client.local_uri();
}

TEST(TcpSocketConnect, IPv6LoopbackWorks) {
  std::string why;
  std::optional<TcpListener> listener = bind_ipv6_loopback(why);
  if (!listener) GTEST_SKIP() << "cannot bind ::1 on this machine (no IPv6 loopback): " << why;
  std::uint16_t port = listener->port();
  EXPECT_EQ(listener->local_uri(), "tcp://[::1]:" + std::to_string(port));
  pid_t client = fork_child([&] {
    TcpSocket socket = TcpSocket::connect("::1", port);
    EXPECT_EQ(socket.peer_uri(), "tcp://[::1]:" + std::to_string(port));
    send_text(socket.fd(), "over v6");
  });
  TcpSocket connection = accept_within(*listener);
  EXPECT_EQ(receive_exactly(connection.fd(), 7), "over v6");
  EXPECT_EQ(int_option(connection.fd(), IPPROTO_TCP, TCP_NODELAY), 1);
  EXPECT_TRUE(exited_cleanly(wait_child(client)));
}

// --- Connect failures ----------------------------------------------------------------------

TEST(TcpSocketConnect, ClosedPortThrowsECONNREFUSED) {
  std::uint16_t port;
  {
    TcpListener listener = TcpListener::bind("127.0.0.1", 0);
    port = listener.port();
  }  // closed: nothing listens there now
  auto [code, message] = system_error_of([&] { TcpSocket::connect("127.0.0.1", port); });
  EXPECT_EQ(code, ECONNREFUSED);
  EXPECT_TRUE(contains(message, "connect(tcp://127.0.0.1:" + std::to_string(port) + ")"))
      << message;
  EXPECT_TRUE(contains(message, "nothing is listening on that port")) << message;
}

TEST(TcpSocketConnect, UnresolvableNameThrowsErrorMentioningGetaddrinfo) {
  try {
    TcpSocket::connect("conduit-test-no-such-host.invalid", 80, 2s);
    FAIL() << "connected to a name that does not exist";
  } catch (const Error& error) {
    std::string message = error.what();
    EXPECT_TRUE(contains(message, "getaddrinfo(tcp://conduit-test-no-such-host.invalid:80)"))
        << message;
    EXPECT_TRUE(contains(message, "check the host name")) << message;
  }
}

TEST(TcpSocketConnect, GivesUpAfterTheTimeoutWhenNobodyAnswers) {
  // A listener whose accept queue is full drops new SYNs, so a connect there
  // gets no answer at all.
  TcpListener listener = TcpListener::bind("127.0.0.1", 0, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(listener.port());
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::vector<FileDescriptor> fillers;
  for (int i = 0; i < 4; ++i) {
    FileDescriptor fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    (void)::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address);
    fillers.push_back(std::move(fd));
  }
  std::this_thread::sleep_for(20ms);  // let the handshakes complete
  auto start = std::chrono::steady_clock::now();
  auto [code, message] =
      system_error_of([&] { TcpSocket::connect("127.0.0.1", listener.port(), 200ms); });
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(code, ETIMEDOUT) << message;
  EXPECT_GE(elapsed, 200ms);
  EXPECT_LT(elapsed, 2s);
}

// --- tcp_uri ---------------------------------------------------------------------------------

TEST(TcpSocketUri, IPv4HostIsWrittenAsIs) {
  EXPECT_EQ(tcp_uri("127.0.0.1", 5000), "tcp://127.0.0.1:5000");
}

TEST(TcpSocketUri, IPv6HostIsBracketed) {
  EXPECT_EQ(tcp_uri("::1", 5000), "tcp://[::1]:5000");
  EXPECT_EQ(tcp_uri("fe80::1", 80), "tcp://[fe80::1]:80");
}

TEST(TcpSocketUri, HostNameIsWrittenAsIs) {
  EXPECT_EQ(tcp_uri("localhost", 65535), "tcp://localhost:65535");
}

}  // namespace
}  // namespace conduit::ipc
