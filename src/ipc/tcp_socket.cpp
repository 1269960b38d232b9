#include "conduit/ipc/tcp_socket.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <memory>

#include "conduit/error.hpp"
#include "sys.hpp"

namespace conduit::ipc {
namespace {

struct AddrinfoDeleter {
  void operator()(addrinfo* list) const { ::freeaddrinfo(list); }
};
using AddrinfoList = std::unique_ptr<addrinfo, AddrinfoDeleter>;

AddrinfoList resolve(const std::string& host, std::uint16_t port, bool passive) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
  addrinfo* list = nullptr;
  std::string service = std::to_string(port);
  int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &list);
  if (rc != 0)
    throw Error("getaddrinfo(" + tcp_uri(host, port) + "): " + ::gai_strerror(rc) +
                "; check the host name");
  return AddrinfoList(list);
}

void set_nodelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

std::string uri_of(const sockaddr_storage& address) {
  char text[INET6_ADDRSTRLEN] = {};
  if (address.ss_family == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(address);
    ::inet_ntop(AF_INET6, &in6.sin6_addr, text, sizeof text);
    return tcp_uri(text, ntohs(in6.sin6_port));
  }
  const auto& in4 = reinterpret_cast<const sockaddr_in&>(address);
  ::inet_ntop(AF_INET, &in4.sin_addr, text, sizeof text);
  return tcp_uri(text, ntohs(in4.sin_port));
}

std::string name_uri(int fd, bool peer) {
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  int rc = peer ? ::getpeername(fd, reinterpret_cast<sockaddr*>(&address), &length)
                : ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  if (rc < 0) throw SystemError(peer ? "getpeername" : "getsockname", "", errno);
  return uri_of(address);
}

// Connects fd with a timeout: a non-blocking connect, then poll for writability.
int connect_with_timeout(int fd, const addrinfo& address, std::chrono::milliseconds timeout) {
  set_nonblocking(fd, true);
  int rc = ::connect(fd, address.ai_addr, address.ai_addrlen);
  if (rc < 0 && errno == EINPROGRESS) {
    pollfd waiting{fd, POLLOUT, 0};
    int ready =
        sys::retry_on_eintr([&] { return ::poll(&waiting, 1, static_cast<int>(timeout.count())); });
    if (ready == 0) return ETIMEDOUT;
    int error = 0;
    socklen_t length = sizeof error;
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length);
    if (error != 0) return error;
  } else if (rc < 0) {
    return errno;
  }
  set_nonblocking(fd, false);
  return 0;
}

}  // namespace

std::string tcp_uri(const std::string& host, std::uint16_t port) {
  bool v6 = host.find(':') != std::string::npos;
  return "tcp://" + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

TcpSocket TcpSocket::connect(const std::string& host, std::uint16_t port,
                             std::chrono::milliseconds timeout) {
  AddrinfoList list = resolve(host, port, false);
  int last_error = ECONNREFUSED;
  for (addrinfo* address = list.get(); address != nullptr; address = address->ai_next) {
    FileDescriptor fd(
        ::socket(address->ai_family, address->ai_socktype | SOCK_CLOEXEC, address->ai_protocol));
    if (!fd) {
      last_error = errno;
      continue;
    }
    last_error = connect_with_timeout(fd.get(), *address, timeout);
    if (last_error == 0) {
      set_nodelay(fd.get());
      return TcpSocket(std::move(fd));
    }
  }
  throw SystemError("connect", tcp_uri(host, port), last_error,
                    last_error == ECONNREFUSED ? "nothing is listening on that port" : "");
}

std::string TcpSocket::peer_uri() const {
  return name_uri(fd(), true);
}
std::string TcpSocket::local_uri() const {
  return name_uri(fd(), false);
}

TcpListener TcpListener::bind(const std::string& host, std::uint16_t port, int backlog) {
  AddrinfoList list = resolve(host, port, true);
  const addrinfo& address = *list;
  FileDescriptor fd(
      ::socket(address.ai_family, address.ai_socktype | SOCK_CLOEXEC, address.ai_protocol));
  if (!fd) throw SystemError("socket", tcp_uri(host, port), errno);
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd.get(), address.ai_addr, address.ai_addrlen) < 0) {
    int code = errno;
    throw SystemError("bind", tcp_uri(host, port), code,
                      code == EADDRINUSE ? "the port is taken; choose another or use port 0" : "");
  }
  if (::listen(fd.get(), backlog) < 0) throw SystemError("listen", tcp_uri(host, port), errno);
  return TcpListener(std::move(fd));
}

std::uint16_t TcpListener::port() const {
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  if (::getsockname(fd(), reinterpret_cast<sockaddr*>(&address), &length) < 0)
    throw SystemError("getsockname", "", errno);
  return address.ss_family == AF_INET6
             ? ntohs(reinterpret_cast<const sockaddr_in6&>(address).sin6_port)
             : ntohs(reinterpret_cast<const sockaddr_in&>(address).sin_port);
}

std::string TcpListener::local_uri() const {
  return name_uri(fd(), false);
}

TcpSocket TcpListener::accept() {
  int fd =
      sys::retry_on_eintr([&] { return ::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC); });
  if (fd < 0) throw SystemError("accept", local_uri(), errno);
  set_nodelay(fd);
  return TcpSocket(FileDescriptor(fd));
}

}  // namespace conduit::ipc
