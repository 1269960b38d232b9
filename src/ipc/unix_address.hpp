// sockaddr_un for a UnixAddress (internal).
#pragma once

#include <sys/socket.h>
#include <sys/un.h>

#include "conduit/ipc/unix_socket.hpp"

namespace conduit::ipc {

struct SockaddrUn {
  sockaddr_un address{};
  socklen_t length = 0;

  explicit SockaddrUn(const UnixAddress& unix_address);
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&address); }
};

// "unix:/path" or "unix:@name", for error messages.
inline std::string describe(const UnixAddress& address,
                            UnixSocketType type = UnixSocketType::stream) {
  if (type == UnixSocketType::seqpacket) return "unix+seqpacket:" + address.str();
  if (type == UnixSocketType::datagram) return "unix+dgram:" + address.str();
  return "unix:" + address.str();
}

}  // namespace conduit::ipc
