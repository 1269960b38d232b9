// UNIX domain sockets: stream, seqpacket and datagram; filesystem and
// abstract addresses; descriptor passing; peer credentials.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "conduit/ipc/file_descriptor.hpp"

namespace conduit::ipc {

enum class UnixSocketType {
  stream,     // SOCK_STREAM: a byte stream, like TCP
  seqpacket,  // SOCK_SEQPACKET: connected, reliable, keeps message boundaries
  datagram,   // SOCK_DGRAM: connectionless, reliable on Linux, keeps boundaries
};

// A UNIX socket address: a filesystem path, or a name in the abstract
// namespace (Linux), written "@name", which has no file and vanishes with the
// last socket bound to it. Value type.
class UnixAddress {
 public:
  // "/run/x.sock" or "relative/x.sock" (a path) or "@name" (abstract).
  // Throws InvalidUri when empty or longer than sun_path allows (107 bytes).
  static UnixAddress parse(std::string_view text);

  bool abstract() const { return abstract_; }
  // The path, or the abstract name without '@'.
  const std::string& name() const { return name_; }
  // "/path" or "@name".
  std::string str() const { return abstract_ ? "@" + name_ : name_; }

  bool operator==(const UnixAddress&) const = default;

 private:
  std::string name_;
  bool abstract_ = false;
};

// Who is on the other end of a UNIX socket, as the kernel recorded it when the
// connection was made (SO_PEERCRED) or the message was sent (SCM_CREDENTIALS).
struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

// One UNIX socket. Move-only; closes on destruction.
class UnixSocket {
 public:
  // Connects to a listening (stream, seqpacket) or bound (datagram) socket.
  // A datagram socket is first bound to an autobind abstract address so the
  // server can reply. Throws SystemError: ENOENT (no such path),
  // ECONNREFUSED (nobody listening), ENOTSOCK-like text for a path that is
  // not a socket.
  static UnixSocket connect(const UnixAddress& address, UnixSocketType type);

  // A connected pair (socketpair), both close-on-exec.
  static std::pair<UnixSocket, UnixSocket> pair(UnixSocketType type);

  // Adopts an open socket descriptor.
  UnixSocket(FileDescriptor fd, UnixSocketType type) : fd_(std::move(fd)), type_(type) {}

  int fd() const { return fd_.get(); }
  UnixSocketType type() const { return type_; }
  FileDescriptor release() { return std::move(fd_); }

  // Sends bytes together with descriptors (SCM_RIGHTS); the receiver gets
  // its own duplicates, and the caller keeps its descriptors. At least one
  // byte must accompany descriptors on stream sockets. Returns the number of
  // bytes sent (stream sockets may send fewer). At most 253 descriptors.
  std::size_t send_with_fds(std::span<const std::byte> bytes, std::span<const int> fds);

  // Receives bytes and any descriptors sent with them (close-on-exec).
  // Returns the byte count (0 at end of stream). Throws ProtocolError when
  // descriptors were dropped because the control buffer was too small.
  std::size_t receive_with_fds(std::span<std::byte> buffer, std::vector<FileDescriptor>& fds);

  // The connected peer's pid/uid/gid (SO_PEERCRED), as of connect time.
  PeerCredentials peer_credentials() const;

 private:
  FileDescriptor fd_;
  UnixSocketType type_;
};

// A socket bound to a path that it owns: refuses to clobber a live socket,
// replaces a stale one, and unlinks the path on destruction (if the path
// still names the socket it bound). Abstract addresses have no file.
class BoundUnixSocket {
 public:
  // Binds a socket of `type` (and listens, for stream and seqpacket).
  // Throws SystemError with EADDRINUSE when another process is listening on
  // the path, and with EEXIST when the path exists and is not a socket.
  static BoundUnixSocket bind(const UnixAddress& address, UnixSocketType type, int backlog = 128,
                              mode_t mode = 0);

  BoundUnixSocket() = default;
  BoundUnixSocket(BoundUnixSocket&& other) noexcept;
  BoundUnixSocket& operator=(BoundUnixSocket&& other) noexcept;
  ~BoundUnixSocket();

  int fd() const { return fd_.get(); }
  UnixSocketType type() const { return type_; }
  const UnixAddress& address() const { return address_; }

  // Waits for a connection (stream, seqpacket). The accepted socket is
  // close-on-exec.
  UnixSocket accept();

 private:
  void unlink_path() noexcept;

  FileDescriptor fd_;
  UnixSocketType type_ = UnixSocketType::stream;
  UnixAddress address_;
  dev_t device_ = 0;
  ino_t inode_ = 0;
};

}  // namespace conduit::ipc
