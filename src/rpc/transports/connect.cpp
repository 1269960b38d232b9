#include "rpc/transports/connect.hpp"

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

}  // namespace conduit::rpc::transport
