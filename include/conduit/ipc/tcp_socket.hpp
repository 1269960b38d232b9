// TCP over IPv4 and IPv6, for comparison with local IPC and as an RPC
// transport. Every connected socket has TCP_NODELAY set: conduit sends whole
// messages and wants them on the wire at once, not batched by Nagle.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "conduit/ipc/file_descriptor.hpp"

namespace conduit::ipc {

class TcpSocket {
 public:
  // Resolves host (a name, an IPv4 address or an IPv6 address without
  // brackets) and connects to the first address that accepts, waiting at most
  // `timeout` per address. Throws SystemError ("connect(tcp://h:p): Connection
  // refused") or Error for a name that does not resolve.
  static TcpSocket connect(const std::string& host, std::uint16_t port,
                           std::chrono::milliseconds timeout = std::chrono::seconds(5));

  explicit TcpSocket(FileDescriptor fd) : fd_(std::move(fd)) {}

  int fd() const { return fd_.get(); }
  FileDescriptor release() { return std::move(fd_); }

  // "tcp://127.0.0.1:5000" or "tcp://[::1]:5000".
  std::string peer_uri() const;
  std::string local_uri() const;

 private:
  FileDescriptor fd_;
};

class TcpListener {
 public:
  // Binds and listens (SO_REUSEADDR). Port 0 picks a free port; see port().
  static TcpListener bind(const std::string& host, std::uint16_t port, int backlog = 128);

  int fd() const { return fd_.get(); }
  std::uint16_t port() const;
  // The bound address as a URI, with the real port.
  std::string local_uri() const;

  // Waits for a connection; the socket has TCP_NODELAY and close-on-exec.
  TcpSocket accept();

 private:
  explicit TcpListener(FileDescriptor fd) : fd_(std::move(fd)) {}
  FileDescriptor fd_;
};

// "tcp://HOST:PORT" for an IPv4 host, "tcp://[HOST]:PORT" for IPv6.
std::string tcp_uri(const std::string& host, std::uint16_t port);

}  // namespace conduit::ipc
