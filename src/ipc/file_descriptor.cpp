#include "conduit/ipc/file_descriptor.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <string>

#include "conduit/error.hpp"

namespace conduit::ipc {

void FileDescriptor::reset(int fd) noexcept {
  // close() must not be retried on EINTR on Linux: the descriptor is gone.
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

void set_nonblocking(int fd, bool nonblocking) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) throw SystemError("fcntl(F_GETFL)", "fd " + std::to_string(fd), errno);
  int wanted = nonblocking ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
  if (wanted != flags && ::fcntl(fd, F_SETFL, wanted) < 0)
    throw SystemError("fcntl(F_SETFL)", "fd " + std::to_string(fd), errno);
}

void set_close_on_exec(int fd, bool close_on_exec) {
  int flags = ::fcntl(fd, F_GETFD);
  if (flags < 0) throw SystemError("fcntl(F_GETFD)", "fd " + std::to_string(fd), errno);
  int wanted = close_on_exec ? (flags | FD_CLOEXEC) : (flags & ~FD_CLOEXEC);
  if (wanted != flags && ::fcntl(fd, F_SETFD, wanted) < 0)
    throw SystemError("fcntl(F_SETFD)", "fd " + std::to_string(fd), errno);
}

}  // namespace conduit::ipc
