// Whole messages over UNIX seqpacket and datagram sockets, which keep message
// boundaries themselves (internal).
#pragma once

#include <sys/socket.h>
#include <sys/un.h>

#include <memory>

#include "slow_readers.hpp"
#include "transport.hpp"

namespace conduit::ipc {

// The largest message the kernel lets `fd` send: its send buffer less the
// per-datagram overhead the kernel reserves, and never above 4 MiB.
std::size_t datagram_limit(int fd);

class DatagramTransport final : public Transport {
 public:
  // reply_to_sender: an unconnected (bound) datagram socket that answers the
  // sender of the last message received, waiting at most reply_timeout for
  // room in the sender's queue (see slow_readers.hpp).
  DatagramTransport(FileDescriptor fd, UnixSocketType type, bool reply_to_sender, std::string uri,
                    std::size_t max_message_size, const Cancellation* cancellation,
                    std::chrono::milliseconds reply_timeout = {});

  void send(std::span<const std::byte> message) override;
  Received receive(std::chrono::nanoseconds timeout) override;
  std::optional<PeerCredentials> peer_credentials() const override { return peer_; }
  std::uint64_t dropped_replies() const override { return slow_readers_.dropped_count(); }

 private:
  // Sends a reply to the last sender (`client`: its address); false when its
  // queue stayed full.
  bool reply(msghdr& header, const std::string& client);
  [[noreturn]] void throw_send_error(int code, std::size_t size) const;

  FileDescriptor fd_;
  UnixSocketType type_;
  bool reply_to_sender_;
  std::unique_ptr<std::byte[]> buffer_;
  sockaddr_un last_sender_{};
  socklen_t last_sender_length_ = 0;
  std::optional<PeerCredentials> peer_;
  SlowReaders slow_readers_;
};

// Prepares a UNIX seqpacket or datagram socket for DatagramTransport: enables
// SO_PASSCRED (credentials with every message; also how end of stream is told
// apart from an empty message) and sizes the send buffer for max_message_size.
void prepare_datagram_socket(int fd, std::size_t max_message_size, const std::string& uri);

}  // namespace conduit::ipc
