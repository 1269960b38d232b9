// FileDescriptor: sole owner of one open file descriptor.
#pragma once

#include <utility>

namespace conduit::ipc {

// Move-only owner of a file descriptor; closes it on destruction.
// An empty FileDescriptor holds -1.
class FileDescriptor {
 public:
  FileDescriptor() noexcept = default;
  // Takes ownership of fd (which may be -1).
  explicit FileDescriptor(int fd) noexcept : fd_(fd) {}
  FileDescriptor(FileDescriptor&& other) noexcept : fd_(other.release()) {}
  FileDescriptor& operator=(FileDescriptor&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  ~FileDescriptor() { reset(); }

  int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }

  // Gives up ownership without closing; returns the descriptor.
  int release() noexcept { return std::exchange(fd_, -1); }

  // Closes the current descriptor (if any) and takes ownership of fd.
  void reset(int fd = -1) noexcept;

 private:
  int fd_ = -1;
};

// Sets or clears O_NONBLOCK on fd. Throws SystemError on failure.
void set_nonblocking(int fd, bool nonblocking);

// Sets or clears FD_CLOEXEC on fd. Throws SystemError on failure.
void set_close_on_exec(int fd, bool close_on_exec);

}  // namespace conduit::ipc
