#include "conduit/ipc/unix_socket.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include "conduit/error.hpp"
#include "sys.hpp"
#include "unix_address.hpp"

namespace conduit::ipc {
namespace {

constexpr std::size_t kMaxFdsPerMessage = 253;  // SCM_MAX_FD

int socket_type(UnixSocketType type) {
  switch (type) {
    case UnixSocketType::stream:
      return SOCK_STREAM;
    case UnixSocketType::seqpacket:
      return SOCK_SEQPACKET;
    case UnixSocketType::datagram:
      return SOCK_DGRAM;
  }
  return SOCK_STREAM;
}

FileDescriptor new_socket(UnixSocketType type, const std::string& target) {
  int fd = ::socket(AF_UNIX, socket_type(type) | SOCK_CLOEXEC, 0);
  if (fd < 0) throw SystemError("socket(AF_UNIX)", target, errno);
  return FileDescriptor(fd);
}

// Explains a failed connect in terms of what the user can do about it.
std::string_view connect_hint(const UnixAddress& address, int code) {
  if (code == ENOENT) return "no socket at this path: is the server running?";
  if (code == ECONNREFUSED) {
    struct stat st {};
    if (!address.abstract() && ::stat(address.name().c_str(), &st) == 0 && !S_ISSOCK(st.st_mode))
      return "the path exists but is not a socket";
    return "nothing is listening there (a stale socket file, or the server is gone)";
  }
  if (code == EPROTOTYPE) return "the socket there is of another type (stream, seqpacket or dgram)";
  if (code == EACCES) return "permission denied on the socket file or its directory";
  return {};
}

}  // namespace

SockaddrUn::SockaddrUn(const UnixAddress& unix_address) {
  address.sun_family = AF_UNIX;
  const std::string& name = unix_address.name();
  std::size_t offset = unix_address.abstract() ? 1 : 0;
  std::memcpy(address.sun_path + offset, name.data(), name.size());
  length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + offset + name.size() +
                                  (unix_address.abstract() ? 0 : 1));
}

UnixAddress UnixAddress::parse(std::string_view text) {
  UnixAddress result;
  if (!text.empty() && text.front() == '@') {
    result.abstract_ = true;
    text.remove_prefix(1);
  }
  if (text.empty())
    throw InvalidUri(
        "empty UNIX socket address: give a path (unix:/run/app.sock) or an abstract "
        "name (unix:@app)");
  constexpr std::size_t kMax = sizeof(sockaddr_un::sun_path) - 1;
  if (text.size() > kMax)
    throw InvalidUri("UNIX socket address '" + std::string(text) + "' is " +
                     std::to_string(text.size()) + " bytes; the kernel allows at most " +
                     std::to_string(kMax) + " (use a shorter path)");
  if (!result.abstract_ && text.find('\0') != std::string_view::npos)
    throw InvalidUri("UNIX socket path contains a NUL byte");
  result.name_ = std::string(text);
  return result;
}

UnixSocket UnixSocket::connect(const UnixAddress& address, UnixSocketType type) {
  std::string target = describe(address, type);
  FileDescriptor fd = new_socket(type, target);
  if (type == UnixSocketType::datagram) {
    // Autobind: the kernel picks a unique abstract name, so replies can reach us.
    sa_family_t family = AF_UNIX;
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&family), sizeof family) < 0)
      throw SystemError("bind(autobind)", target, errno);
  }
  SockaddrUn sa(address);
  if (sys::retry_on_eintr([&] { return ::connect(fd.get(), sa.get(), sa.length); }) < 0) {
    int code = errno;
    throw SystemError("connect", target, code, connect_hint(address, code));
  }
  return UnixSocket(std::move(fd), type);
}

std::pair<UnixSocket, UnixSocket> UnixSocket::pair(UnixSocketType type) {
  int fds[2];
  if (::socketpair(AF_UNIX, socket_type(type) | SOCK_CLOEXEC, 0, fds) < 0)
    throw SystemError("socketpair(AF_UNIX)", "", errno);
  return {UnixSocket(FileDescriptor(fds[0]), type), UnixSocket(FileDescriptor(fds[1]), type)};
}

std::size_t UnixSocket::send_with_fds(std::span<const std::byte> bytes, std::span<const int> fds) {
  if (fds.size() > kMaxFdsPerMessage)
    throw Error("send_with_fds: " + std::to_string(fds.size()) +
                " descriptors; the kernel passes at most 253 per message");
  iovec iov{const_cast<std::byte*>(bytes.data()), bytes.size()};
  msghdr message{};
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(kMaxFdsPerMessage * sizeof(int))];
  if (!fds.empty()) {
    message.msg_control = control;
    message.msg_controllen = CMSG_SPACE(fds.size() * sizeof(int));
    cmsghdr* header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(fds.size() * sizeof(int));
    std::memcpy(CMSG_DATA(header), fds.data(), fds.size() * sizeof(int));
  }
  ssize_t n =
      sys::retry_on_eintr([&] { return sys::calls().sendmsg(fd(), &message, MSG_NOSIGNAL); });
  if (n < 0) throw SystemError("sendmsg(SCM_RIGHTS)", "fd " + std::to_string(fd()), errno);
  return static_cast<std::size_t>(n);
}

std::size_t UnixSocket::receive_with_fds(std::span<std::byte> buffer,
                                         std::vector<FileDescriptor>& fds) {
  iovec iov{buffer.data(), buffer.size()};
  msghdr message{};
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(kMaxFdsPerMessage * sizeof(int))];
  message.msg_control = control;
  message.msg_controllen = sizeof control;
  ssize_t n =
      sys::retry_on_eintr([&] { return sys::calls().recvmsg(fd(), &message, MSG_CMSG_CLOEXEC); });
  if (n < 0) throw SystemError("recvmsg(SCM_RIGHTS)", "fd " + std::to_string(fd()), errno);
  for (cmsghdr* header = CMSG_FIRSTHDR(&message); header != nullptr;
       header = CMSG_NXTHDR(&message, header)) {
    if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) continue;
    std::size_t count = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int received;
      std::memcpy(&received, CMSG_DATA(header) + i * sizeof(int), sizeof(int));
      fds.emplace_back(received);
    }
  }
  if (message.msg_flags & MSG_CTRUNC)
    throw ProtocolError(
        "recvmsg(SCM_RIGHTS): descriptors were dropped by the kernel because the "
        "control buffer was too small");
  return static_cast<std::size_t>(n);
}

PeerCredentials UnixSocket::peer_credentials() const {
  ucred credentials{};
  socklen_t length = sizeof credentials;
  if (::getsockopt(fd(), SOL_SOCKET, SO_PEERCRED, &credentials, &length) < 0)
    throw SystemError("getsockopt(SO_PEERCRED)", "fd " + std::to_string(fd()), errno);
  return PeerCredentials{credentials.pid, credentials.uid, credentials.gid};
}

BoundUnixSocket BoundUnixSocket::bind(const UnixAddress& address, UnixSocketType type, int backlog,
                                      mode_t mode) {
  std::string target = describe(address, type);
  if (!address.abstract()) {
    struct stat st {};
    if (::lstat(address.name().c_str(), &st) == 0) {
      if (!S_ISSOCK(st.st_mode))
        throw SystemError("bind", target, EEXIST,
                          "the path exists and is not a socket; remove it or choose another path");
      // A socket file: live if something answers, stale if nothing does.
      FileDescriptor probe = new_socket(type, target);
      SockaddrUn sa(address);
      int result = sys::retry_on_eintr([&] { return ::connect(probe.get(), sa.get(), sa.length); });
      if (result == 0 || errno != ECONNREFUSED)
        throw SystemError(
            "bind", target, EADDRINUSE,
            "another process is serving on this socket; stop it or choose another path");
      ::unlink(address.name().c_str());
    }
  }
  BoundUnixSocket bound;
  bound.fd_ = new_socket(type, target);
  bound.type_ = type;
  SockaddrUn sa(address);
  if (::bind(bound.fd_.get(), sa.get(), sa.length) < 0) {
    int code = errno;
    throw SystemError("bind", target, code,
                      code == EADDRINUSE ? "the abstract name is taken by another process" : "");
  }
  bound.address_ = address;
  if (!address.abstract()) {
    if (mode != 0) ::chmod(address.name().c_str(), mode);
    struct stat st {};
    if (::lstat(address.name().c_str(), &st) == 0) {
      bound.device_ = st.st_dev;
      bound.inode_ = st.st_ino;
    }
  }
  if (type != UnixSocketType::datagram && ::listen(bound.fd_.get(), backlog) < 0)
    throw SystemError("listen", target, errno);
  return bound;
}

BoundUnixSocket::BoundUnixSocket(BoundUnixSocket&& other) noexcept
    : fd_(std::move(other.fd_)),
      type_(other.type_),
      address_(std::move(other.address_)),
      device_(std::exchange(other.device_, 0)),
      inode_(std::exchange(other.inode_, 0)) {}

BoundUnixSocket& BoundUnixSocket::operator=(BoundUnixSocket&& other) noexcept {
  if (this != &other) {
    unlink_path();
    fd_ = std::move(other.fd_);
    type_ = other.type_;
    address_ = std::move(other.address_);
    device_ = std::exchange(other.device_, 0);
    inode_ = std::exchange(other.inode_, 0);
  }
  return *this;
}

BoundUnixSocket::~BoundUnixSocket() {
  unlink_path();
}

void BoundUnixSocket::unlink_path() noexcept {
  if (inode_ == 0 || address_.abstract()) return;
  struct stat st {};
  if (::lstat(address_.name().c_str(), &st) == 0 && st.st_dev == device_ && st.st_ino == inode_)
    ::unlink(address_.name().c_str());
  inode_ = 0;
}

UnixSocket BoundUnixSocket::accept() {
  int fd =
      sys::retry_on_eintr([&] { return ::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC); });
  if (fd < 0) throw SystemError("accept", describe(address_, type_), errno);
  return UnixSocket(FileDescriptor(fd), type_);
}

}  // namespace conduit::ipc
