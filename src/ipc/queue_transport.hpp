// Channels over POSIX (mq:/name) and System V (sysvmq:KEY) message queues
// (internal).
//
// Both are one shared server channel (PeerModel::single) that answers every
// client: each client-to-server message starts with a QueueRequestHeader
// naming the client, and send() on the server replies to the client whose
// message was received last.
// - mq:/name: the server creates the request queue "/name"; each client
//   creates its own reply queue "/name.PID" ("/name.PID.N" for the N-th
//   further channel of the same process), removed when its Channel goes.
//   Server and client each hold an exclusive flock on the queue they own,
//   which is how the other side tells a live peer from a dead one (the lock
//   goes with the process; the queue does not). The server removes the reply
//   queues of killed clients (the PID in the name gone, the lock free) when
//   it starts and about once a second while it runs, finding them in the
//   mqueue filesystem (see open_mqueue_directory()).
// - sysvmq:KEY: one queue; requests have type 1, replies to a client have
//   type PID + 1 (+ N << 32 for its N-th further channel), so a client
//   receives only its own replies even with pid 1 in a PID namespace.
//   The queue's first message, of type LONG_MAX, names the server's pid: a
//   client that connects to the queue of a killed server is told the server
//   is gone, and a server started on that key takes the queue over (a live
//   server's is refused). A client already connected when the server was
//   killed only sees its timeouts expire; one whose server removed the queue
//   sees `closed`. The server sets requests
//   aside in memory when replies find the shared queue full of them, and
//   drops replies that clients which no longer exist never read (it asks
//   kill(pid, 0), so it must share their PID namespace for that).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "conduit/error.hpp"
#include "transport.hpp"

namespace conduit::ipc {

// In front of every client-to-server message. Native byte order: both ends
// run on this machine.
struct QueueRequestHeader {
  std::uint32_t magic;     // kQueueRequestMagic
  std::uint32_t pid;       // the client process
  std::uint32_t instance;  // which channel of that process: 0 for its first
  std::uint32_t tag;       // mq: low 32 bits of the reply queue's inode; sysvmq: 0
};

inline constexpr std::uint32_t kQueueRequestMagic = 0x31514443;  // "CDQ1" in memory
inline constexpr std::size_t kQueueHeaderSize = sizeof(QueueRequestHeader);

// Room the reply queue names need after "/name": ".PID.N".
inline constexpr std::size_t kReplySuffixRoom = 24;

// A number for one queue channel of this process, unique among its live ones
// and the smallest free (so a process with one channel always uses 0).
// Released on destruction. Move-only.
class ChannelInstance {
 public:
  ChannelInstance();
  ChannelInstance(ChannelInstance&& other) noexcept;
  ChannelInstance& operator=(ChannelInstance&& other) noexcept;
  ~ChannelInstance();

  std::uint32_t number() const { return number_; }

 private:
  void release() noexcept;

  std::uint32_t number_ = 0;
  bool held_ = false;
};

// The hint of a SystemError: what follows "CALL(TARGET): strerror; ".
inline std::string hint_of(const SystemError& error) {
  std::string text = error.what();
  auto at = text.find("; ");
  return at == std::string::npos ? std::string() : text.substr(at + 2);
}

std::unique_ptr<Transport> connect_posix_queue(const Uri& uri, const Settings& settings,
                                               const ChannelOptions& options);
std::unique_ptr<ListenerImpl> listen_posix_queue(const Uri& uri, const Settings& settings,
                                                 const ChannelOptions& options);

std::unique_ptr<Transport> connect_sysv_queue(const Uri& uri, const Settings& settings,
                                              const ChannelOptions& options);
std::unique_ptr<ListenerImpl> listen_sysv_queue(const Uri& uri, const Settings& settings,
                                                const ChannelOptions& options);

}  // namespace conduit::ipc
