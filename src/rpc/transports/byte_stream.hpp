// What a server's connection reads and writes, whatever carries it: a TCP or
// UNIX socket, a pair of pipes (stdio), or a shared-memory link.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <cstddef>
#include <memory>

#include "conduit/rpc/call_context.hpp"  // Peer

namespace conduit::rpc {

namespace asio = boost::asio;

// Turns a thread that waits outside a connection's executor (in a shared
// memory ring) back to it. Shared, so that a thread that has just posted
// work can still wake the executor's thread when the connection itself may
// be gone already. Any thread.
class Waker {
 public:
  virtual ~Waker() = default;
  virtual void wake() noexcept = 0;
};

// A bidirectional byte stream.
class ByteStream {
 public:
  virtual ~ByteStream() = default;
  // Reads some bytes; 0 at end of file. Throws boost::system::system_error.
  virtual asio::awaitable<std::size_t> read_some(asio::mutable_buffer into) = 0;
  // Writes all of `bytes`.
  virtual asio::awaitable<void> write(asio::const_buffer bytes) = 0;
  // Ends pending and future operations (they fail with operation_aborted).
  // Call on the connection's executor.
  virtual void close() = 0;
  // Cuts the peer off at once, from any thread, even while a handler of
  // this connection runs: the peer sees end of file, later reads and writes
  // here fail. Does nothing where the transport cannot (pipes).
  virtual void abort() noexcept = 0;
  virtual const Peer& peer() const = 0;
  // Whether the peer has closed or reset its end, asked without waiting and
  // without reading (bytes it sent stay to be read). From any thread. False
  // where the transport cannot tell.
  virtual bool peer_gone() const noexcept { return false; }
  // What wakes the connection's thread after work was posted to its
  // executor from another thread: null for transports that wait in the
  // executor itself (sockets, pipes).
  virtual std::shared_ptr<Waker> waker() const { return nullptr; }
};

}  // namespace conduit::rpc
