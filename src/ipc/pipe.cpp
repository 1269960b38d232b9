#include "conduit/ipc/pipe.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <string>

#include "conduit/error.hpp"

namespace conduit::ipc {

PipePair PipePair::create() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) < 0) throw SystemError("pipe2", "", errno);
  return PipePair{FileDescriptor(fds[0]), FileDescriptor(fds[1])};
}

std::size_t pipe_capacity(int fd) {
  int size = ::fcntl(fd, F_GETPIPE_SZ);
  if (size < 0) throw SystemError("fcntl(F_GETPIPE_SZ)", "fd " + std::to_string(fd), errno);
  return static_cast<std::size_t>(size);
}

std::size_t set_pipe_capacity(int fd, std::size_t bytes) {
  int size = ::fcntl(fd, F_SETPIPE_SZ, static_cast<int>(bytes));
  if (size < 0)
    throw SystemError("fcntl(F_SETPIPE_SZ, " + std::to_string(bytes) + ")",
                      "fd " + std::to_string(fd), errno);
  return static_cast<std::size_t>(size);
}

void ignore_sigpipe() {
  struct sigaction current {};
  if (::sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    ::sigemptyset(&ignore.sa_mask);
    ::sigaction(SIGPIPE, &ignore, nullptr);
  }
}

}  // namespace conduit::ipc
