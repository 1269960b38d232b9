// The client side of every transport: connecting to an Address. Blocking;
// the protocols' clients read and write what they get.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <chrono>

#include "conduit/ipc/file_descriptor.hpp"
#include "rpc/transports/address.hpp"
#include "rpc/transports/shm_transport.hpp"

namespace conduit::rpc::transport {

// A connected stream socket (tcp or unix_socket; TCP with TCP_NODELAY),
// close-on-exec. Throws SystemError naming the address (nobody listening,
// no such path, a host that does not resolve), or Timeout.
// REQUIRES: address.kind is tcp or unix_socket.
ipc::FileDescriptor connect_socket(const Address& address, std::chrono::milliseconds timeout);

// A shared-memory link to a server's shm+unix: listener, its handshake done.
// Throws SystemError (nobody listening), ProtocolError (the server sent no
// valid rings), Timeout.
// REQUIRES: address.kind is shm.
shm::Link connect_shm(const Address& address, std::chrono::milliseconds timeout);

// connect_socket for asynchronous clients: a socket on `executor`,
// connected within `timeout`. A tcp host must be an IP address (no name is
// resolved here). Throws InvalidUri, SystemError naming the address, or
// Timeout.
// REQUIRES: address.kind is tcp or unix_socket.
boost::asio::awaitable<boost::asio::generic::stream_protocol::socket> async_connect(
    boost::asio::any_io_executor executor, const Address& address,
    std::chrono::milliseconds timeout);

}  // namespace conduit::rpc::transport
