// Channels over FIFOs (fifo:/path) (internal).
//
// The classic FIFO client-server arrangement: the server creates the
// well-known FIFO /path and reads connection requests from it. A client
// creates its own pair, /path.PID.N.c2s and /path.PID.N.s2c, opens its end of
// the reply FIFO, and writes one line naming the pair ("/path.PID.N\n", a
// single write below PIPE_BUF, so requests from concurrent clients never
// interleave). The server opens the pair and the two talk over it; the
// client removes its pair when its channel closes; the pair of a client
// killed before it could is removed by the server (which asks whether the
// PID in the name is gone) when it starts and about once a second while it
// runs. Each client has FIFOs of its own, so any number are served at once
// and a leaving client's end of file is never confused with the next
// client's data.
//
// A shell can be a client too:
//   mkfifo /path.sh.c2s /path.sh.s2c; echo /path.sh > /path
//   exec 3</path.sh.s2c; printf hello > /path.sh.c2s; head -c 5 <&3
#pragma once

#include <memory>

#include "transport.hpp"

namespace conduit::ipc {

std::unique_ptr<Transport> connect_fifo(const Uri& uri, const Settings& settings,
                                        const ChannelOptions& options);
std::unique_ptr<ListenerImpl> listen_fifo(const Uri& uri, const Settings& settings,
                                          const ChannelOptions& options);

}  // namespace conduit::ipc
