// Links for every IPC mechanism: through conduit (Channel by URI, ShmRing's
// loan path) and through the bare system calls of the same mechanism.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "compare/endpoint.hpp"

namespace conduit::compare {

// Where the links put their named objects (sockets, FIFOs, SysV keys), and
// the prefix of their POSIX names; removed by each link when it is done.
struct Scratch {
  std::string directory;    // an existing private directory
  std::string name_prefix;  // "/conduit-compare-PID"
};

// Channel over `uri`; the peer accepts (a shared queue or datagram channel
// then answers the driver), the driver connects. Throws SizeCapped when the
// channel cannot carry `size` bytes.
std::unique_ptr<Link> channel_link(std::string uri, std::size_t size);

// Channel over a pair of anonymous pipes (`pipe:R,W` on both sides).
std::unique_ptr<Link> channel_pipe_link(std::size_t size);

// Two ShmRings in an anonymous shared mapping, used through loan()/commit()
// and consume()/release(): no copy on either side.
std::unique_ptr<Link> ring_loan_link(std::size_t size);

// The raw baselines.
std::unique_ptr<Link> raw_pipe_link(std::size_t size);
std::unique_ptr<Link> raw_fifo_link(const Scratch& scratch, std::size_t size);
std::unique_ptr<Link> raw_socketpair_link(int type, std::size_t size);
// A stream or seqpacket connection made as a server and a client make it
// (bind, listen, connect, accept on a path in the scratch directory), the
// way conduit's unix: channels are made.
std::unique_ptr<Link> raw_unix_connection_link(const Scratch& scratch, int type, std::size_t size);
std::unique_ptr<Link> raw_tcp_link(std::size_t size);
std::unique_ptr<Link> raw_posix_queue_link(const Scratch& scratch, std::size_t size);
std::unique_ptr<Link> raw_sysv_queue_link(std::size_t size);
// Busy-polled slots in shared memory. copy_in: the sender builds the message
// in a buffer of its own and copies it into a slot (as Channel::send does);
// otherwise it builds it in the slot. Receivers always read in place.
std::unique_ptr<Link> raw_shared_slots_link(std::size_t size, bool copy_in);

}  // namespace conduit::compare
