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

// ---- clients killed before they could clean up ----------------------------------------

// A pid that belonged to a process which has exited.
pid_t pid_of_a_dead_process() {
  pid_t pid = fork_child([] {});
  wait_child(pid);
  return pid;
}

// Connects to uri from `count` child processes, every other one making a
// call first, each then killing itself as a crash would. Returns their pids.
std::vector<pid_t> kill_clients_after_connecting(const std::string& uri, int count) {
  std::vector<pid_t> victims;
  for (int i = 0; i < count; ++i) {
    pid_t victim = fork_child([&] {
      ipc::Channel channel = ipc::Channel::connect(uri);
      if (i % 2 == 0) {
        channel.send(bytes("last words"));
        channel.receive(5s);
      }
      ::raise(SIGKILL);
    });
    EXPECT_TRUE(WIFSIGNALED(wait_child(victim))) << "client " << i << " did not die";
    victims.push_back(victim);
  }
  return victims;
}

// The entries of `directory` whose names start with `prefix`.
std::vector<std::string> entries_starting_with(const std::string& directory,
                                               const std::string& prefix) {
  std::vector<std::string> found;
  for (const auto& entry : fs::directory_iterator(directory)) {
    std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) == 0) found.push_back(name);
  }
  return found;
}

TEST(IpcServeHostile, FifoPairsOfKilledClientsAreRemovedWhileServingAndAtStart) {
  TempDir dir;
  std::string uri = "fifo:" + (dir / "echo");
  {
    EchoServer server(uri);
    kill_clients_after_connecting(uri, kKilledClients);
    EXPECT_TRUE(eventually([&] { return entries_starting_with(dir.path(), "echo.").empty(); }, 5s))
        << entries_starting_with(dir.path(), "echo.").size() << " FIFOs of killed clients left";
    expect_served(uri);
  }
  // Left while no server ran.
  std::string left = dir / ("echo." + std::to_string(pid_of_a_dead_process()) + ".0");
  ASSERT_EQ(::mkfifo((left + ".c2s").c_str(), 0600), 0);
  ASSERT_EQ(::mkfifo((left + ".s2c").c_str(), 0600), 0);
  EchoServer server(uri);
  EXPECT_TRUE(eventually([&] { return entries_starting_with(dir.path(), "echo.").empty(); }, 5s));
  expect_served(uri);
}

TEST(IpcServeHostile, ReplyQueuesOfKilledMqClientsAreRemovedWhileServingAndAtStart) {
  std::string name = unique_queue_name("hostile");
  // Small messages: the queues of one user may reserve RLIMIT_MSGQUEUE in
  // all (800 KiB by default, nine queues of ten 8 KiB messages).
  std::string uri = "mq:" + name + "?max=1K";
  std::vector<std::string> reply_queues;
  struct RemoveAtEnd {
    std::vector<std::string>& names;
    ~RemoveAtEnd() {
      for (const std::string& name : names) ::mq_unlink(name.c_str());
    }
  } remove_at_end{reply_queues};
  auto any_left = [&] {
    return std::any_of(reply_queues.begin(), reply_queues.end(), posix_queue_exists);
  };
  {
    EchoServer server(uri);
    // Unless the server removes what killed clients leave, enough of them
    // lock every other client of this user out (RLIMIT_MSGQUEUE).
    for (int round = 0; round < kKilledClients / 5; ++round) {
      for (pid_t victim : kill_clients_after_connecting(uri, 5))
        reply_queues.push_back(name + "." + std::to_string(victim));
      EXPECT_TRUE(eventually([&] { return !any_left(); }, 5s))
          << "reply queues of killed clients left while the server runs, round " << round;
    }
    expect_served(uri);
  }
  // Left while no server ran.
  reply_queues = {name + "." + std::to_string(pid_of_a_dead_process())};
  ipc::PosixMessageQueue::create(reply_queues[0], ipc::QueueAccess::receive_only,
                                 ipc::PosixQueueAttributes{10, 8192})
      .persist();
  ASSERT_TRUE(any_left());
  EchoServer server(uri);
  EXPECT_TRUE(eventually([&] { return !any_left(); }, 5s)) << "a reply queue left from before";
  expect_served(uri);
}

// ---- a server killed before it could clean up ---------------------------------------------

// Starts a server on uri and kills it, leaving behind what it made.
void kill_a_server(const std::string& uri) {
  EchoServer server(uri);
  server.process().kill(SIGKILL);
  server.process().wait();
}

// Connecting to uri fails at once, saying the server is gone.
void expect_server_gone(const std::string& uri) {
  ipc::ChannelOptions options;
  options.connect_timeout = 5000ms;
  auto started = std::chrono::steady_clock::now();
  try {
    ipc::Channel channel = ipc::Channel::connect(uri, options);
    channel.send(bytes("anyone?"));
    ADD_FAILURE() << "connected to a killed server; receive: "
                  << static_cast<int>(channel.receive(1s).status);
  } catch (const Error& error) {
    EXPECT_CONTAINS(std::string(error.what()), "the server is gone");
  }
  EXPECT_LT(std::chrono::steady_clock::now() - started, 1s) << "the client waited";
}

// A server started on uri takes over what a killed one left and serves; a
// second one, while it lives, is refused with its pid named.
void expect_a_new_server_takes_over(const std::string& uri) {
  EchoServer server(uri);
  expect_served(uri);
  CommandResult second = conduit({"ipc", "serve", uri}, 10s);
  EXPECT_EQ(second.status.code, 2) << second.err;
  EXPECT_CONTAINS(second.err, std::to_string(server.process().pid()));
  expect_served(uri);
}

TEST(IpcServeHostile, ShmSegmentOfAKilledServerIsReclaimedAndItsClientsAreToldAtOnce) {
  std::string name = "/conduit-test-hostile-" + std::to_string(::getpid());
  std::string uri = "shm:" + name;
  struct RemoveAtEnd {
    std::string name;
    ~RemoveAtEnd() { ::shm_unlink(name.c_str()); }
  } remove_at_end{name};

  // Killed while it waits for a client, and while it serves one.
  kill_a_server(uri);
  ASSERT_TRUE(fs::exists("/dev/shm" + name));
  expect_server_gone(uri);
  {
    EchoServer server(uri);
    ipc::Channel attached = ipc::Channel::connect(uri);
    server.process().kill(SIGKILL);
    server.process().wait();
    expect_server_gone(uri);
  }
  expect_a_new_server_takes_over(uri);
}

TEST(IpcServeHostile, SysvQueueOfAKilledServerIsReclaimedAndItsClientsAreToldAtOnce) {
  key_t key = unused_sysv_key();
  std::string uri = "sysvmq:" + hex_key(key);
  struct RemoveAtEnd {
    key_t key;
    ~RemoveAtEnd() {
      int id = ::msgget(key, 0);
      if (id >= 0) ::msgctl(id, IPC_RMID, nullptr);
    }
  } remove_at_end{key};

  kill_a_server(uri);
  ASSERT_TRUE(sysv_queue_exists(key));
  expect_server_gone(uri);
  expect_a_new_server_takes_over(uri);
}

}  // namespace
}  // namespace conduit::testing
