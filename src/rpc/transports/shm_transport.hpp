// RPC over shared memory between two processes on one host.
//
// The server listens on a UNIX socket (`shm+unix:/path` names its path). For each
// client that connects it makes a memfd holding two ShmRings (requests in
// one, replies in the other), attaches its own ends, and passes the memfd
// over the socket with SCM_RIGHTS. Only the connected peer ever gets the
// memory and nothing is named in /dev/shm. A side that closes marks its
// rings closed; a side that dies is seen by the rings' liveness check (a
// pidfd of the peer), so neither leaves the other waiting. For a protocol
// spoken in whole messages one ring message is one protocol message; the
// protocols spoken on byte streams see the messages as pieces of one stream.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "conduit/ipc/channel.hpp"
#include "conduit/ipc/file_descriptor.hpp"
#include "conduit/ipc/shared_memory.hpp"
#include "conduit/ipc/shm_ring.hpp"

namespace conduit::rpc::shm {

// Data bytes of each ring unless asked otherwise: room for a 2 MiB message.
inline constexpr std::size_t kDefaultRingCapacity = 4 << 20;

// One side of an established link: send a message, receive the next one.
class Link {
 public:
  Link(ipc::FileDescriptor socket, ipc::Mapping mapping, ipc::ShmRing out, ipc::ShmRing in,
       std::unique_ptr<ipc::Cancellation> cancellation);
  Link(Link&&) noexcept;
  ~Link();

  // Throws MessageTooLarge, PeerGone, Cancelled.
  void send(std::string_view message);
  // Bytes of a stream protocol: in as many messages as the ring needs.
  // Throws PeerGone, Cancelled.
  void send_bytes(std::string_view bytes);
  // The next message, valid until the next receive(); std::nullopt when the
  // peer closed the link, or on timeout when `timed_out` is given (set).
  // Throws PeerGone when the peer died, Cancelled after cancel().
  std::optional<std::string_view> receive(std::chrono::nanoseconds timeout = ipc::kWaitForever,
                                          bool* timed_out = nullptr);
  // Makes a blocked or later receive() throw Cancelled (any thread).
  void cancel();
  // Makes a blocked receive(), or else the next one that would block,
  // return at once as timed out (any thread; ShmRing::interrupt).
  void interrupt() noexcept { in_.interrupt(); }
  int socket() const { return socket_.get(); }
  std::size_t max_message_size() const { return out_.max_message_size(); }

 private:
  ipc::FileDescriptor socket_;
  ipc::Mapping mapping_;
  std::unique_ptr<ipc::Cancellation> cancellation_;
  ipc::ShmRing out_, in_;
};

// Server side of the handshake on a freshly accepted UNIX stream socket.
// Throws SystemError when the memfd cannot be made or passed.
Link accept_link(ipc::FileDescriptor socket, std::size_t ring_capacity = kDefaultRingCapacity);

// Client side: connects to the server's socket at `path` ("/path" or
// "@abstract") and completes the handshake. Throws SystemError (nobody
// listening), ProtocolError (the server sent no valid segment).
Link connect_link(std::string_view path,
                  std::chrono::milliseconds timeout = std::chrono::seconds(5));

}  // namespace conduit::rpc::shm
