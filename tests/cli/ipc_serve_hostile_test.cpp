// `conduit ipc serve` against careless and hostile clients: one that never
// reads its replies, and ones killed before they could clean up. Whatever
// they do, the server goes on serving everyone else and leaves nothing
// behind.
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>
#include <filesystem>
#include <functional>
#include <future>
#include <thread>

#include "cli_support.hpp"
#include "conduit/ipc/channel.hpp"
#include "conduit/ipc/posix_message_queue.hpp"
#include "queue_test_support.hpp"
#include "test_support.hpp"

namespace conduit::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr int kKilledClients = 20;

std::span<const std::byte> bytes(const std::string& text) {
  return std::as_bytes(std::span(text.data(), text.size()));
}

// ---- a client that never reads ------------------------------------------------------

constexpr int kUnreadRequests = 300;

void expect_served(const std::string& uri) {
  CommandResult ping =
      conduit({"ipc", "ping", uri, "--count", "20", "--timeout", "5000"}, std::chrono::seconds(20));
  EXPECT_TRUE(ping.status.success()) << ping.err;
}

// Sends kUnreadRequests datagrams to the server at `server_path` and reads
// no reply, from a socket bound to `own_path` and not connected, as a script
// would; gives up after 5 s. Then runs `meanwhile` while the socket is still
// open. Returns how many requests the server took.
int send_datagrams_without_reading(const std::string& server_path, const std::string& own_path,
                                   const std::function<void()>& meanwhile) {
  ipc::FileDescriptor fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_un own{};
  own.sun_family = AF_UNIX;
  std::strncpy(own.sun_path, own_path.c_str(), sizeof own.sun_path - 1);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&own), sizeof own) != 0) return -1;
  sockaddr_un server{};
  server.sun_family = AF_UNIX;
  std::strncpy(server.sun_path, server_path.c_str(), sizeof server.sun_path - 1);
  const std::string request(1000, 'h');
  int sent = 0;
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (sent < kUnreadRequests && std::chrono::steady_clock::now() < deadline) {
    if (::sendto(fd.get(), request.data(), request.size(), MSG_DONTWAIT,
                 reinterpret_cast<const sockaddr*>(&server), sizeof server) >= 0)
      ++sent;
    else
      std::this_thread::sleep_for(1ms);
  }
  meanwhile();
  return sent;
}

// Sends kUnreadRequests requests over an mq: channel and reads no reply;
// gives up after 5 s. Then runs `meanwhile` while the channel is still open.
// Returns how many requests the server took.
int send_queue_requests_without_reading(const std::string& uri,
                                        const std::function<void()>& meanwhile) {
  ipc::Cancellation give_up;
  ipc::ChannelOptions options;
  options.cancellation = &give_up;
  ipc::Channel hostile = ipc::Channel::connect(uri, options);
  const std::string request(1000, 'h');
  auto flood = std::async(std::launch::async, [&] {
    int sent = 0;
    try {
      for (; sent < kUnreadRequests; ++sent) hostile.send(bytes(request));
    } catch (const Cancelled&) {
    }
    return sent;
  });
  if (flood.wait_for(5s) != std::future_status::ready) give_up.cancel();
  int sent = flood.get();
  meanwhile();
  return sent;
}

TEST(IpcServeHostile, DatagramClientThatNeverReadsDoesNotStallOtherClients) {
  TempDir dir;
  EchoServer server("unix+dgram:" + (dir / "echo.sock"));
  // Far more than the 10 datagrams the kernel queues for one receiver
  // (net.unix.max_dgram_qlen): the replies have nowhere to go.
  EXPECT_EQ(send_datagrams_without_reading(dir / "echo.sock", dir / "hostile.sock",
                                           [&] { expect_served(server.uri()); }),
            kUnreadRequests)
      << "the server stopped reading";
  ipc::ExitStatus status = server.stop();
  EXPECT_TRUE(status.success()) << status.describe();
  EXPECT_CONTAINS(server.errors(), "replies dropped");
}

TEST(IpcServeHostile, MqClientThatNeverReadsDoesNotStallOtherClients) {
  std::string uri = "mq:" + unique_queue_name("never-reads");
  EchoServer server(uri);
  // Far more than the 10 messages a client's reply queue holds.
  EXPECT_EQ(send_queue_requests_without_reading(uri, [&] { expect_served(uri); }), kUnreadRequests)
      << "the server stopped reading";
  ipc::ExitStatus status = server.stop();
  EXPECT_TRUE(status.success()) << status.describe();
  EXPECT_CONTAINS(server.errors(), "replies dropped");
}

}  // namespace
}  // namespace conduit::testing
