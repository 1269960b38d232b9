// Anonymous pipes.
//
// A pipe is a one-way byte stream inside the kernel with no name: only
// processes that inherit (or are sent) one of its descriptors can use it, which
// is why pipes join related processes — see process.hpp for spawning a child
// with pipe ends as its stdin/stdout or as extra descriptors.
//
// Kernel semantics worth knowing:
// - A write of at most PIPE_BUF (4096) bytes is atomic: it is never interleaved
//   with another writer's bytes. Larger writes may be split.
// - read() returns 0 (end of file) once every write end is closed.
// - write() to a pipe whose read ends are all closed fails with EPIPE. conduit
//   ignores SIGPIPE process-wide when it creates a pipe or FIFO channel, so
//   that EPIPE arrives as an error instead of killing the process.
#pragma once

#include <cstddef>

#include "conduit/ipc/file_descriptor.hpp"

namespace conduit::ipc {

// Both ends of one anonymous pipe, created with O_CLOEXEC so that a spawned
// child inherits only the ends it is explicitly given.
struct PipePair {
  FileDescriptor read_end;
  FileDescriptor write_end;

  // Creates a pipe. Throws SystemError (e.g. EMFILE) on failure.
  static PipePair create();
};

// The kernel buffer size of the pipe behind fd (F_GETPIPE_SZ).
std::size_t pipe_capacity(int fd);

// Asks the kernel to resize the pipe buffer (F_SETPIPE_SZ); returns the size
// granted, which is rounded up to a page multiple. Unprivileged processes are
// capped by /proc/sys/fs/pipe-max-size. Throws SystemError on refusal.
std::size_t set_pipe_capacity(int fd, std::size_t bytes);

// Ignores SIGPIPE for the whole process if its disposition is still the
// default, so writes to a broken pipe fail with EPIPE. Idempotent.
void ignore_sigpipe();

}  // namespace conduit::ipc
