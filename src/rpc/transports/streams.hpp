// The byte streams a server's connections run on: sockets (TCP, UNIX), a
// pair of pipes (stdio), and a shared-memory link.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <mutex>
#include <string>

#include "rpc/transports/byte_stream.hpp"
#include "rpc/transports/shm_transport.hpp"

namespace conduit::rpc::transport {

// A connected TCP or UNIX stream socket (an asio socket type).
template <typename Socket>
class SocketStream final : public ByteStream {
 public:
  SocketStream(Socket socket, Peer peer);
  asio::awaitable<std::size_t> read_some(asio::mutable_buffer into) override;
  asio::awaitable<void> write(asio::const_buffer bytes) override;
  void close() override;
  void abort() noexcept override;
  bool peer_gone() const noexcept override;
  const Peer& peer() const override { return peer_; }

 private:
  Socket socket_;
  std::atomic<int> native_{socket_.native_handle()};
  Peer peer_;
};

// A child's stdin and stdout as one stream (the descriptors are duplicated).
class StdioStream final : public ByteStream {
 public:
  StdioStream(asio::any_io_executor executor, int in, int out);
  asio::awaitable<std::size_t> read_some(asio::mutable_buffer into) override;
  asio::awaitable<void> write(asio::const_buffer bytes) override;
  void close() override;
  void abort() noexcept override {}
  const Peer& peer() const override { return peer_; }

 private:
  asio::posix::stream_descriptor in_, out_;
  Peer peer_;
};

// Interrupts the session thread's wait in the ring (ShmRing::interrupt),
// until the session lets go of the link (detach()).
class ShmWaker final : public Waker {
 public:
  explicit ShmWaker(shm::Link& link) : link_(&link) {}
  void wake() noexcept override;
  void detach();

 private:
  std::mutex mutex_;
  shm::Link* link_;
};

// A shared-memory link as a byte stream, for the protocols spoken on one:
// each ring message is a piece of the stream. The session's
// thread waits in the ring and hands what arrives to the waiting read
// (deliver); writes go straight into the ring.
class ShmStream final : public ByteStream {
 public:
  ShmStream(asio::any_io_executor executor, shm::Link& link, std::shared_ptr<ShmWaker> waker,
            Peer peer, std::string first);

  asio::awaitable<std::size_t> read_some(asio::mutable_buffer into) override;
  asio::awaitable<void> write(asio::const_buffer bytes) override;
  void close() override;
  void abort() noexcept override { link_.cancel(); }
  const Peer& peer() const override { return peer_; }
  std::shared_ptr<Waker> waker() const override { return waker_; }

  // ---- the session thread's side (on the connection's executor) ----

  // A read waits and every byte delivered has been read.
  bool wants_bytes() const { return reading_ && offset_ == buffer_.size() && !ended_ && !closed_; }
  void deliver(std::string_view bytes);
  // The peer closed the link, died, or the server cut it off.
  void end();

 private:
  shm::Link& link_;
  std::shared_ptr<ShmWaker> waker_;
  Peer peer_;
  asio::steady_timer readable_;
  std::string buffer_;
  std::size_t offset_ = 0;
  bool reading_ = false;
  bool ended_ = false;
  bool closed_ = false;
};

}  // namespace conduit::rpc::transport
