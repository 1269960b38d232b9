#include "rpc/transports/connect.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "conduit/error.hpp"
#include "conduit/ipc/tcp_socket.hpp"
#include "conduit/ipc/unix_socket.hpp"

namespace conduit::rpc::transport {

ipc::FileDescriptor connect_socket(const Address& address, std::chrono::milliseconds timeout) {
  switch (address.kind) {
    case Kind::tcp:
      return ipc::TcpSocket::connect(address.host, address.port, timeout).release();
    case Kind::unix_socket:
      return ipc::UnixSocket::connect(ipc::UnixAddress::parse(address.path),
                                      ipc::UnixSocketType::stream)
          .release();
    case Kind::shm:
    case Kind::stdio:
      break;
  }
  throw Error("connect_socket(" + address.uri() + "): not a socket address");
}

shm::Link connect_shm(const Address& address, std::chrono::milliseconds timeout) {
  if (address.kind != Kind::shm)
    throw Error("connect_shm(" + address.uri() + "): not a shm+unix: address");
  return shm::connect_link(address.path, timeout);
}

boost::asio::awaitable<boost::asio::generic::stream_protocol::socket> async_connect(
    boost::asio::any_io_executor executor, const Address& address,
    std::chrono::milliseconds timeout) {
  namespace asio = boost::asio;
  using namespace asio::experimental::awaitable_operators;
  asio::generic::stream_protocol::endpoint endpoint;
  if (address.kind == Kind::tcp) {
    boost::system::error_code error;
    auto ip = asio::ip::make_address(address.host, error);
    if (error)
      throw InvalidUri(address.uri() + ": an asynchronous client takes an IP address, not a name");
    endpoint = asio::ip::tcp::endpoint(ip, address.port);
  } else if (address.kind == Kind::unix_socket) {
    std::string path = address.path;
    if (!path.empty() && path[0] == '@') path[0] = '\0';
    endpoint = asio::local::stream_protocol::endpoint(path);
  } else {
    throw Error("async_connect(" + address.uri() + "): not a socket address");
  }
  asio::generic::stream_protocol::socket socket(executor);
  asio::steady_timer timer(executor, timeout);
  auto outcome = co_await (socket.async_connect(endpoint, asio::as_tuple(asio::use_awaitable)) ||
                           timer.async_wait(asio::use_awaitable));
  if (outcome.index() == 1)
    throw Timeout("connect(" + address.uri() + "): no answer within " +
                  std::to_string(timeout.count()) + " ms");
  auto [error] = std::get<0>(outcome);
  if (error)
    throw SystemError("connect", address.uri(), error.value(),
                      error == asio::error::connection_refused ? "nothing is listening there" : "");
  co_return socket;
}

}  // namespace conduit::rpc::transport
