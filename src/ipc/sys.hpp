// The seam between conduit's IPC code and the kernel: the system calls on the
// data path go through this table, so tests can make them fail on purpose
// (EINTR, EAGAIN, short writes, a vanished peer) and check the recovery.
#pragma once

#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <cerrno>

namespace conduit::ipc::sys {

struct Calls {
  ssize_t (*read)(int fd, void* buffer, size_t size);
  ssize_t (*writev)(int fd, const iovec* iov, int count);
  ssize_t (*sendmsg)(int fd, const msghdr* message, int flags);
  ssize_t (*recvmsg)(int fd, msghdr* message, int flags);
  int (*poll)(pollfd* fds, nfds_t count, int timeout_ms);
};

// The table in use; tests replace entries and restore them.
Calls& calls();
// The real system calls.
const Calls& real_calls();

// Calls f until it does not fail with EINTR.
template <typename F>
auto retry_on_eintr(F f) {
  for (;;) {
    auto result = f();
    if (result >= 0 || errno != EINTR) return result;
  }
}

}  // namespace conduit::ipc::sys
