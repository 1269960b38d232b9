// shm: channels: a ShmRing pair in a POSIX segment, server and client in
// different processes.
#include <sys/mman.h>
#include <sys/stat.h>

#include <cstring>
#include <filesystem>

#include "conduit/error.hpp"
#include "conduit/ipc/channel.hpp"
#include "conduit/ipc/shared_memory.hpp"
#include "test_support.hpp"

namespace conduit::ipc {
namespace {

using conduit::testing::exited_cleanly;
using conduit::testing::fork_child;
using conduit::testing::wait_child;
using namespace std::chrono_literals;

std::string unique_name() {
  static int counter = 0;
  return "/conduit-test-shm-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

std::string text(std::span<const std::byte> bytes) {
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

std::vector<std::byte> pattern(std::size_t size, std::uint64_t seed) {
  std::vector<std::byte> bytes(size);
  for (std::size_t i = 0; i < size; ++i) bytes[i] = static_cast<std::byte>((seed * 131 + i) & 0xff);
  return bytes;
}

// Echoes messages until the client leaves.
void echo_one_client(ChannelListener& listener) {
  auto channel = listener.accept(10s);
  ASSERT_TRUE(channel.has_value());
  while (auto received = channel->receive(10s)) channel->send(received.message);
}

TEST(ShmChannel, EchoesMessagesFromZeroBytesToTheMaximumAcrossProcesses) {
  std::string uri = "shm:" + unique_name();
  ChannelListener listener = ChannelListener::listen(uri);
  pid_t client = fork_child([&] {
    Channel channel = Channel::connect(uri);
    std::size_t max = channel.max_message_size();
    EXPECT_EQ(max, 2 * 1024 * 1024 - 8);
    std::size_t sizes[] = {0, 1, 63, 64, 4096, 65536, 1 << 20, max};
    for (std::uint64_t i = 0; i < 3000; ++i) {
      std::size_t size = sizes[i % std::size(sizes)];
      auto message = pattern(size, i);
      channel.send(message);
      Received echo = channel.receive(10s);
      ASSERT_EQ(echo.status, ReceiveStatus::message) << i;
      ASSERT_EQ(echo.message.size(), size);
      ASSERT_TRUE(size == 0 || std::memcmp(echo.message.data(), message.data(), size) == 0) << i;
    }
  });
  echo_one_client(listener);
  EXPECT_TRUE(exited_cleanly(wait_child(client)));
}

TEST(ShmChannel, ServerCanSpeakFirst) {
  std::string uri = "shm:" + unique_name();
  ChannelListener listener = ChannelListener::listen(uri);
  pid_t client = fork_child([&] {
    Channel channel = Channel::connect(uri);
    Received greeting = channel.receive(10s);
    ASSERT_EQ(greeting.status, ReceiveStatus::message);
    EXPECT_EQ(text(greeting.message), "hello, client");
  });
  auto channel = listener.accept(10s);
  ASSERT_TRUE(channel.has_value());
  channel->send("hello, client");
  EXPECT_EQ(channel->receive(10s).status, ReceiveStatus::closed);
  EXPECT_TRUE(exited_cleanly(wait_child(client)));
}

TEST(ShmChannel, MaxOptionSizesTheRings) {
  std::string uri = "shm:" + unique_name() + "?max=8M";
  ChannelListener listener = ChannelListener::listen(uri);
  pid_t client = fork_child([&] {
    Channel channel = Channel::connect(uri);
    EXPECT_EQ(channel.max_message_size(), 8u << 20);
    channel.send(pattern(8 << 20, 1));
  });
  auto channel = listener.accept(10s);
  ASSERT_TRUE(channel.has_value());
  Received received = channel->receive(10s);
  ASSERT_EQ(received.status, ReceiveStatus::message);
  EXPECT_EQ(received.message.size(), 8u << 20);
  EXPECT_TRUE(exited_cleanly(wait_child(client)));
}

TEST(ShmChannel, OversizedSendThrowsAndTheChannelGoesOn) {
  std::string uri = "shm:" + unique_name();
  ChannelListener listener = ChannelListener::listen(uri);
  pid_t client = fork_child([&] {
    Channel channel = Channel::connect(uri);
    EXPECT_THROW(channel.send(pattern(channel.max_message_size() + 1, 0)), MessageTooLarge);
    channel.send("still here");
  });
  auto channel = listener.accept(10s);
  ASSERT_TRUE(channel.has_value());
  EXPECT_EQ(text(channel->receive(10s).message), "still here");
  EXPECT_TRUE(exited_cleanly(wait_child(client)));
}

TEST(ShmChannel, SequentialClientsAreServedOneAfterAnother) {
  std::string uri = "shm:" + unique_name();
  ChannelListener listener = ChannelListener::listen(uri);
  EXPECT_EQ(listener.peer_model(), PeerModel::sequential);
  std::vector<pid_t> clients;
  for (int id = 0; id < 3; ++id) {
    clients.push_back(fork_child([&, id] {
      Channel channel = Channel::connect(uri);
      for (int i = 0; i < 100; ++i) {
        std::string message = "client " + std::to_string(id) + " message " + std::to_string(i);
        channel.send(message);
        Received echo = channel.receive(10s);
        ASSERT_EQ(echo.status, ReceiveStatus::message);
        ASSERT_EQ(text(echo.message), message);
      }
    }));
  }
  for (int served = 0; served < 3; ++served) echo_one_client(listener);
  for (pid_t client : clients) EXPECT_TRUE(exited_cleanly(wait_child(client)));
}

TEST(ShmChannel, ClientKilledMidConversationGivesTheServerPeerGoneThenTheNextClientWorks) {
  std::string uri = "shm:" + unique_name();
  ChannelListener listener = ChannelListener::listen(uri);
  pid_t victim = fork_child([&] {
    Channel channel = Channel::connect(uri);
    channel.send("last words");
    ::raise(SIGKILL);
  });
  {
    auto channel = listener.accept(10s);
    ASSERT_TRUE(channel.has_value());
    EXPECT_EQ(text(channel->receive(10s).message), "last words");
    EXPECT_THROW(channel->receive(10s), PeerGone);
  }
  EXPECT_TRUE(WIFSIGNALED(wait_child(victim)));
  pid_t next = fork_child([&] {
    Channel channel = Channel::connect(uri);
    channel.send("next");
    EXPECT_EQ(text(channel.receive(10s).message), "next");
  });
  echo_one_client(listener);
  EXPECT_TRUE(exited_cleanly(wait_child(next)));
}

TEST(ShmChannel, ServerKilledLeavesTheClientWithPeerGone) {
  std::string name = unique_name();
  std::string uri = "shm:" + name;
  // The killed server cannot remove its segment: whatever happens here does.
  struct RemoveAtEnd {
    std::string name;
    ~RemoveAtEnd() { ::shm_unlink(name.c_str()); }
  } remove_at_end{name};
  pid_t server = fork_child([&] {
    ChannelListener listener = ChannelListener::listen(uri);
    auto channel = listener.accept(10s);
    ASSERT_TRUE(channel.has_value());
    channel->receive(10s);
    ::raise(SIGKILL);  // the segment's name is left behind, as after any crash
  });
  ASSERT_TRUE(
      conduit::testing::eventually([&] { return std::filesystem::exists("/dev/shm" + name); }));
  {
    Channel channel = Channel::connect(uri);
    channel.send("are you there?");
    EXPECT_THROW(channel.receive(10s), PeerGone);
  }
  EXPECT_TRUE(WIFSIGNALED(wait_child(server)));
}

TEST(ShmChannel, ConnectWithoutAServerNamesTheProblem) {
  std::string uri = "shm:" + unique_name();
  try {
    Channel::connect(uri);
    FAIL() << "connect succeeded";
  } catch (const SystemError& error) {
    EXPECT_EQ(error.code(), ENOENT);
    EXPECT_NE(std::string(error.what()).find("is the server running?"), std::string::npos)
        << error.what();
  }
}

TEST(ShmChannel, SegmentIsPrivateToTheOwnerAndRemovedWithTheListener) {
  std::string name = unique_name();
  {
    ChannelListener listener = ChannelListener::listen("shm:" + name);
    struct stat st {};
    ASSERT_EQ(::stat(("/dev/shm" + name).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
  }
  EXPECT_FALSE(std::filesystem::exists("/dev/shm" + name));
}

TEST(ShmChannel, SegmentThatIsNotAChannelIsRefused) {
  std::string name = unique_name();
  SharedMemory impostor = SharedMemory::create(name, 1 << 16);
  ChannelOptions options;
  options.connect_timeout = 100ms;
  EXPECT_THROW(Channel::connect("shm:" + name, options), ProtocolError);  // all zeros
  std::memset(impostor.map().data(), 0x5a, 64);
  EXPECT_THROW(Channel::connect("shm:" + name, options), ProtocolError);  // garbage
}

TEST(ShmChannel, AcceptTimesOutWithoutAClient) {
  ChannelListener listener = ChannelListener::listen("shm:" + unique_name());
  auto started = std::chrono::steady_clock::now();
  EXPECT_FALSE(listener.accept(50ms).has_value());
  EXPECT_GE(std::chrono::steady_clock::now() - started, 45ms);
}

TEST(ShmChannel, CancellationStopsABlockedAccept) {
  Cancellation cancellation;
  ChannelOptions options;
  options.cancellation = &cancellation;
  ChannelListener listener = ChannelListener::listen("shm:" + unique_name(), options);
  std::thread canceller([&] {
    std::this_thread::sleep_for(20ms);
    cancellation.cancel();
  });
  EXPECT_THROW(listener.accept(10s), Cancelled);
  canceller.join();
}

}  // namespace
}  // namespace conduit::ipc
