// A server's shm+unix: sessions: each lives only as long as the kernel says
// its client does (the handshake socket's hang-up), never by what the client
// wrote into the shared memory; a client that does not attach in time is
// dropped; many clients cannot hold a shutdown up. Counts of threads and
// descriptors are read from /proc.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "conduit/ipc/unix_socket.hpp"
#include "conduit/rpc/jsonrpc_client.hpp"
#include "conduit/rpc/server.hpp"
#include "descriptors.hpp"
#include "interop/jsonrpc_examples.hpp"
#include "rpc/transports/shm_transport.hpp"
#include "test_support.hpp"

namespace conduit::rpc {
namespace {

using namespace std::chrono_literals;
using testing::eventually;
using testing::open_descriptor_count;
using testing::thread_count;

constexpr std::size_t kMaxSessions = 256;

class ShmServer : public ::testing::Test {
 protected:
  ShmServer() {
    add_jsonrpc_examples(services_);
    ServerOptions options;
    options.threads = 2;
    options.max_connections = kMaxSessions;
    options.shm_ring_bytes = 64 << 10;
    options.shm_attach_timeout = 1s;
    server_ = std::make_unique<Server>(services_, options);
    uri_ = server_->listen("shm+unix:" + dir_.path() + "/shm.sock");
    path_ = uri_.substr(std::string("shm+unix:").size());
    server_->start();
  }
  ~ShmServer() override { server_->shutdown(0ms); }

  // Connects as a client would and takes the memory the server hands over,
  // without attaching to it. Returns the socket, or an empty descriptor when
  // the server closed the connection instead.
  ipc::FileDescriptor take_memory() {
    ipc::UnixSocket socket =
        ipc::UnixSocket::connect(ipc::UnixAddress::parse(path_), ipc::UnixSocketType::stream);
    if (!testing::readable(socket.fd(), 5s)) {
      ADD_FAILURE() << "the server sent nothing within 5 s";
      return {};
    }
    char handshake[64];
    std::vector<ipc::FileDescriptor> memory;
    if (socket.receive_with_fds(std::as_writable_bytes(std::span(handshake)), memory) == 0 ||
        memory.empty())
      return {};
    return socket.release();
  }

  // `count` clients attached through the ordinary handshake, each with a
  // session (a thread) of the server's by the time this returns.
  std::vector<shm::Link> attach_clients(std::size_t count) {
    const std::size_t threads = thread_count();
    std::vector<shm::Link> links;
    for (std::size_t i = 0; i < count; ++i) links.push_back(shm::connect_link(path_));
    EXPECT_TRUE(eventually([&] { return thread_count() >= threads + count; }, 5s))
        << "the server did not start a session for each client";
    return links;
  }

  // A client of the examples over shared memory is served.
  void expect_served() {
    JsonRpcClient client(uri_, 5s);
    EXPECT_EQ(client.call("subtract", "[42,23]"), "19");
  }

  ServiceTable services_;
  testing::TempDir dir_;
  std::unique_ptr<Server> server_;
  std::string uri_, path_;
};

TEST_F(ShmServer, ClientsThatTakeTheMemoryAndLeaveWithoutAttachingLeaveNothingBehind) {
  const std::size_t threads = thread_count();
  const std::size_t descriptors = open_descriptor_count();
  constexpr int kClients = 300;
  int handed = 0;
  for (int i = 0; i < kClients; ++i)
    if (take_memory()) ++handed;
  // Each slot came free as its client hung up, so none was refused.
  EXPECT_EQ(handed, kClients);
  EXPECT_TRUE(eventually([&] { return thread_count() <= threads; }, 5s))
      << "threads: " << thread_count() << " now, " << threads << " before the clients";
  EXPECT_TRUE(eventually([&] { return open_descriptor_count() <= descriptors; }, 5s))
      << "descriptors: " << open_descriptor_count() << " now, " << descriptors
      << " before the clients";
  expect_served();
}

TEST_F(ShmServer, AClientWhoseSocketHangsUpIsDroppedWhateverPidItWroteInTheRings) {
  const std::size_t threads = thread_count();
  // Attached: the rings hold this process's pid, alive throughout, and are
  // never marked closed; only the socket says that the clients have gone.
  std::vector<shm::Link> links = attach_clients(20);
  for (const shm::Link& link : links) ::shutdown(link.socket(), SHUT_RDWR);
  EXPECT_TRUE(eventually([&] { return thread_count() <= threads; }, 5s))
      << "threads: " << thread_count() << " now, " << threads << " before the clients";
  expect_served();
}

TEST_F(ShmServer, AClientThatDoesNotAttachInTimeIsClosed) {
  ipc::FileDescriptor socket = take_memory();
  ASSERT_TRUE(socket) << "the server handed no memory";
  ASSERT_TRUE(testing::readable(socket.get(), 10s))
      << "the server still holds a client that never attached";
  char byte;
  EXPECT_EQ(::recv(socket.get(), &byte, 1, 0), 0) << "the server did not close the connection";
  expect_served();
}

TEST_F(ShmServer, ShutdownWithManyAttachedClientsTakesBoundedTime) {
  const std::size_t threads = thread_count();
  constexpr std::size_t kClients = 200;
  std::vector<shm::Link> links = attach_clients(kClients);
  const auto started = std::chrono::steady_clock::now();
  server_->shutdown(0ms);
  const auto took = std::chrono::steady_clock::now() - started;
  EXPECT_LT(took, 1s) << "shutdown with " << kClients << " shm clients took "
                      << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                      << " ms";
  EXPECT_TRUE(eventually([&] { return thread_count() < threads; }, 5s))
      << "threads: " << thread_count() << " now, " << threads << " before the clients";
}

}  // namespace
}  // namespace conduit::rpc
