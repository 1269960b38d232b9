#include "rpc/transports/listener.hpp"

#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "conduit/error.hpp"
#include "rpc/transports/streams.hpp"

namespace conduit::rpc::transport {

using boost::system::error_code;
using tcp = asio::ip::tcp;
using local = asio::local::stream_protocol;

namespace {

// Who is on the other end of an accepted TCP connection ("127.0.0.1:53412").
Peer tcp_peer(const tcp::socket& socket) {
  error_code error;
  auto endpoint = socket.remote_endpoint(error);
  Peer peer;
  if (!error) {
    auto address = endpoint.address();
    peer.address = (address.is_v6() ? "[" + address.to_string() + "]" : address.to_string()) + ":" +
                   std::to_string(endpoint.port());
  }
  return peer;
}

// ... of an accepted UNIX connection: the listener's address and the
// caller's credentials (SO_PEERCRED).
Peer unix_peer(int socket, const std::string& listener_uri) {
  Peer peer;
  peer.address = listener_uri;
  ipc::UnixSocket adopted(ipc::FileDescriptor(::dup(socket)), ipc::UnixSocketType::stream);
  try {
    peer.credentials = adopted.peer_credentials();
  } catch (const Error&) {
    // A peer already gone has no credentials to give; the connection ends
    // at its first read.
  }
  return peer;
}

}  // namespace

Listener::Listener(asio::io_context& io, const Address& address) : address_(address) {
  if (address.kind == Kind::tcp) {
    error_code error;
    auto ip = asio::ip::make_address(address.host, error);
    if (error)
      throw InvalidUri(address.uri() + ": a server's host must be an IP address (127.0.0.1, ::1)");
    tcp::endpoint endpoint(ip, address.port);
    tcp_.emplace(io);
    tcp_->open(endpoint.protocol(), error);
    if (!error) tcp_->set_option(tcp::acceptor::reuse_address(true), error);
    if (!error) tcp_->bind(endpoint, error);
    if (!error) tcp_->listen(asio::socket_base::max_listen_connections, error);
    if (error)
      throw SystemError(
          "listen", address.uri(), error.value(),
          error == asio::error::address_in_use ? "another process listens there" : "");
    Address bound = address;
    bound.port = tcp_->local_endpoint().port();
    uri_ = bound.uri();
    return;
  }
  if (address.kind != Kind::unix_socket && address.kind != Kind::shm)
    throw InvalidUri(address.uri() + ": not an address a server listens on with a socket");
  bound_ =
      ipc::BoundUnixSocket::bind(ipc::UnixAddress::parse(address.path), ipc::UnixSocketType::stream,
                                 asio::socket_base::max_listen_connections);
  local_.emplace(io);
  error_code error;
  local_->assign(local(), ::dup(bound_.fd()), error);
  if (error) throw SystemError("listen", address.uri(), error.value());
  uri_ = address.uri();
}

Listener::~Listener() = default;

asio::awaitable<void> Listener::accept(std::function<asio::any_io_executor()> executor_for,
                                       StreamAccepted on_stream, ShmAccepted on_shm) {
  for (;;) {
    if (tcp_) {
      auto executor = executor_for();
      tcp::socket socket(executor);
      auto [error] = co_await tcp_->async_accept(socket, asio::as_tuple(asio::use_awaitable));
      if (error == asio::error::operation_aborted || !tcp_->is_open()) co_return;
      if (error) continue;
      socket.set_option(tcp::no_delay(true), error);
      Peer peer = tcp_peer(socket);
      on_stream(std::make_unique<SocketStream<tcp::socket>>(std::move(socket), std::move(peer)),
                executor);
      continue;
    }
    auto executor = address_.kind == Kind::shm ? local_->get_executor() : executor_for();
    local::socket socket(executor);
    auto [error] = co_await local_->async_accept(socket, asio::as_tuple(asio::use_awaitable));
    if (error == asio::error::operation_aborted || !local_->is_open()) co_return;
    if (error) continue;
    Peer peer = unix_peer(socket.native_handle(), uri_);
    if (address_.kind == Kind::shm) {
      on_shm(ipc::FileDescriptor(socket.release()), std::move(peer));
    } else {
      on_stream(std::make_unique<SocketStream<local::socket>>(std::move(socket), std::move(peer)),
                executor);
    }
  }
}

void Listener::close() {
  error_code ignored;
  if (tcp_) tcp_->close(ignored);
  if (local_) local_->close(ignored);
}

}  // namespace conduit::rpc::transport
