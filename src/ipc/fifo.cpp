#include "conduit/ipc/fifo.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "conduit/error.hpp"

namespace conduit::ipc {

Fifo Fifo::create(std::string path, mode_t mode) {
  if (::mkfifo(path.c_str(), mode) < 0) throw SystemError("mkfifo", path, errno);
  Fifo fifo;
  fifo.path_ = std::move(path);
  // mkfifo applies the umask; the caller asked for exactly `mode`.
  ::chmod(fifo.path_.c_str(), mode);
  struct stat st {};
  if (::stat(fifo.path_.c_str(), &st) == 0) {
    fifo.device_ = st.st_dev;
    fifo.inode_ = st.st_ino;
  }
  return fifo;
}

Fifo::Fifo(Fifo&& other) noexcept
    : path_(std::move(other.path_)), device_(other.device_), inode_(other.inode_) {
  other.path_.clear();
}

Fifo& Fifo::operator=(Fifo&& other) noexcept {
  if (this != &other) {
    remove();
    path_ = std::move(other.path_);
    device_ = other.device_;
    inode_ = other.inode_;
    other.path_.clear();
  }
  return *this;
}

Fifo::~Fifo() {
  remove();
}

void Fifo::remove() noexcept {
  if (path_.empty()) return;
  struct stat st {};
  if (::lstat(path_.c_str(), &st) == 0 && st.st_dev == device_ && st.st_ino == inode_)
    ::unlink(path_.c_str());
  path_.clear();
}

namespace {

FileDescriptor open_fifo(const std::string& path, int access, FifoOpen mode) {
  int flags = access | O_CLOEXEC | (mode == FifoOpen::nonblocking ? O_NONBLOCK : 0);
  int fd;
  do {
    fd = ::open(path.c_str(), flags);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    const char* call = access == O_RDONLY ? "open(O_RDONLY)" : "open(O_WRONLY)";
    int code = errno;
    if (code == ENXIO)
      throw SystemError(call, path, code, "no process has the FIFO open for reading yet");
    throw SystemError(call, path, code);
  }
  FileDescriptor owned(fd);
  struct stat st {};
  if (::fstat(fd, &st) == 0 && !S_ISFIFO(st.st_mode))
    throw Error("open(" + path + "): not a FIFO (create one with mkfifo)");
  return owned;
}

}  // namespace

FileDescriptor open_fifo_for_reading(const std::string& path, FifoOpen mode) {
  return open_fifo(path, O_RDONLY, mode);
}

FileDescriptor open_fifo_for_writing(const std::string& path, FifoOpen mode) {
  return open_fifo(path, O_WRONLY, mode);
}

}  // namespace conduit::ipc
