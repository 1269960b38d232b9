// Channels over a pair of ShmRings in a POSIX shared memory segment
// (shm:/name) (internal).
//
// The server creates "/name" holding a control block and two rings (client to
// server, server to client) and serves one client at a time
// (PeerModel::sequential): accept() formats both rings afresh, clears the
// client slot and waits until a client claims it. A client claims the slot
// with a compare-and-swap of its pid, attaches as producer of the first ring
// and consumer of the second, and wakes the server. A client that finds the
// slot taken by a live process waits for it, up to connect_timeout.
// Either side's death is seen by the other through the rings (PeerGone).
// The control block records the server's pid: a client of a server that was
// killed is told so at once, and a server started on the name of a killed
// one takes its segment over (a live server's is refused). Both ask
// kill(pid, 0), so server and clients must share a PID namespace.
#pragma once

#include <memory>

#include "transport.hpp"

namespace conduit::ipc {

std::unique_ptr<Transport> connect_shm(const Uri& uri, const Settings& settings,
                                       const ChannelOptions& options);
std::unique_ptr<ListenerImpl> listen_shm(const Uri& uri, const Settings& settings,
                                         const ChannelOptions& options);

// The ring capacity a shm: channel uses: room for two of its largest messages,
// 4 MiB unless the URI's max= asks for more (at most 1 GiB).
std::size_t shm_ring_capacity(const Uri& uri, const Settings& settings);

}  // namespace conduit::ipc
