// A JSON-RPC client that sends calls one text per line or with Content-Length
// framing and never reads the replies: the server bounds the replies it
// queues for that connection and stops reading its calls until the peer
// takes them, so its memory stays bounded and other clients are served.
// The server is `conduit serve`, a child whose memory is read from /proc.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <variant>

#include "conduit/ipc/file_descriptor.hpp"
#include "conduit/ipc/tcp_socket.hpp"
#include "conduit/ipc/unix_socket.hpp"
#include "conduit/rpc/jsonrpc_client.hpp"
#include "process_usage.hpp"
#include "server_process.hpp"
#include "test_support.hpp"

namespace conduit::rpc {
namespace {

using namespace std::chrono_literals;
using testing::AnnouncingProcess;
using testing::usage_of;

constexpr std::size_t kMiB = 1 << 20;
// What the hostile client tries to send: several times what the server
// holds once it stops reading (its socket buffers, its bounded queue).
constexpr std::size_t kHostileBytes = 64 * kMiB;
// Growth of the server's resident memory allowed while that is sent: room
// for socket-sized buffers and the allocator's own, far below what queuing
// the replies of the calls sent would take.
constexpr std::size_t kGrowthBound = 24 * kMiB;

struct Framing {
  const char* name;
  const char* listen;  // relative to the test's directory when a path
  bool content_length;
};

void PrintTo(const Framing& framing, std::ostream* out) {
  *out << framing.name;
}

class UnreadReplies : public ::testing::TestWithParam<Framing> {
 protected:
  void SetUp() override {
#if defined(__SANITIZE_ADDRESS__)
    // AddressSanitizer keeps freed memory aside (256 MiB by default) to catch
    // uses after free: the server's resident memory would show that, not
    // what it holds. The child inherits the environment.
    const char* given = std::getenv("ASAN_OPTIONS");
    ::setenv("ASAN_OPTIONS", (std::string(given ? given : "") + ":quarantine_size_mb=4").c_str(),
             1);
#endif
    std::string listen = GetParam().listen;
    if (listen.rfind("unix:", 0) == 0) listen = "unix:" + dir_ / listen.substr(5);
    server_.emplace(std::vector<std::string>{testing::conduit_binary(), "serve", "--listen", listen,
                                             "--threads", "2"},
                    AnnouncingProcess::Stream::err, "listening on ");
    uri_ = server_->announced();
    // A call first, so that what a connection costs once is in the baseline.
    expect_served();
  }

  // Connects a raw socket to the server.
  std::variant<ipc::TcpSocket, ipc::UnixSocket> connect() const {
    if (uri_.rfind("tcp://", 0) == 0) {
      auto port = static_cast<std::uint16_t>(std::stoi(uri_.substr(uri_.rfind(':') + 1)));
      return ipc::TcpSocket::connect("127.0.0.1", port);
    }
    return ipc::UnixSocket::connect(ipc::UnixAddress::parse(uri_.substr(5)),
                                    ipc::UnixSocketType::stream);
  }

  // One echo call of about 4 KiB, framed.
  std::string call() const {
    std::string text = R"({"jsonrpc":"2.0","method":"echo","params":[")" + std::string(4000, 'x') +
                       R"("],"id":7})";
    if (GetParam().content_length)
      return "Content-Length: " + std::to_string(text.size()) + "\r\n\r\n" + text;
    return text + "\n";
  }

  // Sends echo calls on `fd` and reads nothing, until kHostileBytes went out
  // or the server took none for a second; the bytes sent.
  std::size_t send_without_reading(int fd) const {
    std::string block;
    while (block.size() < 64 * 1024) block += call();
    ipc::set_nonblocking(fd, true);
    std::size_t sent = 0, offset = 0;
    while (sent < kHostileBytes) {
      pollfd writable{fd, POLLOUT, 0};
      if (::poll(&writable, 1, 1000) != 1) break;  // the server stopped reading
      ssize_t n = ::send(fd, block.data() + offset, block.size() - offset, MSG_NOSIGNAL);
      if (n < 0 && errno == EAGAIN) continue;
      if (n <= 0) {
        ADD_FAILURE() << "the server closed the connection: " << std::strerror(errno);
        break;
      }
      sent += static_cast<std::size_t>(n);
      offset = (offset + static_cast<std::size_t>(n)) % block.size();
    }
    return sent;
  }

  // A fresh client is answered.
  void expect_served() const {
    JsonRpcClient client(uri_, 5s);
    EXPECT_EQ(client.call("subtract", "[42,23]"), "19");
  }

  std::size_t resident() const {
    return usage_of(server_->pid()).resident_bytes;
  }

  testing::TempDir dir_;
  std::optional<AnnouncingProcess> server_;
  std::string uri_;
};

TEST_P(UnreadReplies, ServerStopsReadingCallsOfAPeerThatTakesNoReplies) {
  auto socket = connect();
  int fd = std::visit([](auto& s) { return s.fd(); }, socket);
  std::size_t sent = send_without_reading(fd);
  EXPECT_LT(sent, kHostileBytes) << "the server read every call of a peer that read no reply";
  expect_served();
}

TEST_P(UnreadReplies, ServerMemoryStaysBoundedWhileAPeerTakesNoReplies) {
  const std::size_t before = resident();
  auto socket = connect();
  int fd = std::visit([](auto& s) { return s.fd(); }, socket);
  std::size_t sent = send_without_reading(fd);
  const std::size_t during = resident();
  EXPECT_LT(during, before + kGrowthBound)
      << "the server's resident memory went from " << before / kMiB << " MiB to " << during / kMiB
      << " MiB while a peer sent " << sent / kMiB << " MiB of calls and read no reply";
  expect_served();
}

INSTANTIATE_TEST_SUITE_P(Framings, UnreadReplies,
                         ::testing::Values(Framing{"LinesOverTcp", "tcp://127.0.0.1:0", false},
                                           Framing{"ContentLengthOverAUnixSocket", "unix:rpc.sock",
                                                   true}),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace conduit::rpc
