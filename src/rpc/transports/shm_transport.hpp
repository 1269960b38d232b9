// RPC over shared memory between two processes on one host.
//
// The server listens on a UNIX socket (`shm+unix:/path` names its path). For each
// client that connects it makes a memfd holding two ShmRings (requests in
// one, replies in the other), attaches its own ends, and passes the memfd
// over the socket with SCM_RIGHTS; the client attaches its ends and says so
// with a word over the socket. Only the connected peer ever gets the memory
// and nothing is named in /dev/shm. Both sides keep the socket open for as
// long as the link lives and send nothing more on it: its hang-up, which the
// kernel reports however the peer ended (closed, crashed, killed), is how
// each side learns that the other has gone. The pids recorded in the rings
// are never trusted for that (a peer may write any pid there). A side that
// closes also marks its rings closed. For a protocol spoken in whole
// messages one ring message is one protocol message; the protocols spoken
// on byte streams see the messages as pieces of one stream.
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
  // Server side, after accept_link(): waits at most `timeout` for the
  // client's word that it has attached to the rings. Throws Timeout (no word
  // in time), PeerGone (the client closed the connection first),
  // ProtocolError (it sent something else), Cancelled (after cancel()).
  void wait_until_attached(std::chrono::milliseconds timeout);
  // Makes a blocked or later receive() or wait_until_attached() throw
  // Cancelled (any thread).
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

// Server side of the handshake on a freshly accepted UNIX stream socket:
// passes the client its memory. The link is established once
// wait_until_attached() has returned. Throws SystemError when the memfd
// cannot be made or passed.
Link accept_link(ipc::FileDescriptor socket, std::size_t ring_capacity = kDefaultRingCapacity);

// Client side: connects to the server's socket at `path` ("/path" or
// "@abstract") and completes the handshake. Throws SystemError (nobody
// listening), ProtocolError (the server sent no valid segment), PeerGone
// (the server closed the connection).
Link connect_link(std::string_view path,
                  std::chrono::milliseconds timeout = std::chrono::seconds(5));

}  // namespace conduit::rpc::shm
