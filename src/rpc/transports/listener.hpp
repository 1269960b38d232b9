// The server side of every transport but stdio: a listening socket that
// accepts connections. A UNIX socket's file is made with ipc's
// BoundUnixSocket, which decides what a stale socket is and removes the file
// when the listener goes.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "conduit/ipc/file_descriptor.hpp"
#include "conduit/ipc/unix_socket.hpp"
#include "rpc/transports/address.hpp"
#include "rpc/transports/byte_stream.hpp"

namespace conduit::rpc::transport {

class Listener {
 public:
  // A connection accepted on a tcp or unix_socket listener, as a stream
  // whose handlers run on `executor`.
  using StreamAccepted =
      std::function<void(std::unique_ptr<ByteStream> stream, asio::any_io_executor executor)>;
  // A connection accepted on a shm listener: its socket, for the
  // shared-memory handshake, and who is on the other end.
  using ShmAccepted = std::function<void(ipc::FileDescriptor socket, Peer peer)>;

  // Binds and listens on `address` (tcp, unix_socket or shm). Throws
  // InvalidUri (a tcp host that is not an IP address) or SystemError naming
  // the address (in use, a path that is not a socket, no permission).
  Listener(asio::io_context& io, const Address& address);
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // The address clients use, with the port the kernel picked: the form
  // parse_address takes.
  const std::string& uri() const { return uri_; }
  Kind kind() const { return address_.kind; }

  // Accepts until close(). Each socket gets the executor `executor_for()`
  // gives, and goes to `on_stream` (tcp, unix_socket) or `on_shm` (shm).
  // Runs on the io_context given to the constructor.
  asio::awaitable<void> accept(std::function<asio::any_io_executor()> executor_for,
                               StreamAccepted on_stream, ShmAccepted on_shm);

  // Stops accepting. On the io_context's thread (or before it runs).
  void close();

 private:
  Address address_;
  std::string uri_;
  std::optional<asio::ip::tcp::acceptor> tcp_;
  std::optional<asio::local::stream_protocol::acceptor> local_;
  ipc::BoundUnixSocket bound_;  // owns the socket file
};

}  // namespace conduit::rpc::transport
