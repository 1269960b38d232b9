// Named pipes (FIFOs).
//
// A FIFO is a pipe with a name in the filesystem, so unrelated processes can
// open it. The kernel's rules, which this API keeps visible:
// - Opening blocks: a blocking open for reading waits until some process opens
//   the FIFO for writing, and vice versa.
// - With O_NONBLOCK, opening for reading succeeds at once; opening for writing
//   fails with ENXIO when no process has the FIFO open for reading.
// - A reader sees end of file (read() == 0) when the last writer closes.
// - Writes of at most PIPE_BUF (4096) bytes are atomic, as for pipes, so
//   several writers may share one FIFO if each message fits in PIPE_BUF.
// - The data never touches the disk; the node is only a rendezvous point.
#pragma once

#include <sys/types.h>

#include <string>

#include "conduit/ipc/file_descriptor.hpp"

namespace conduit::ipc {

// Owner of a FIFO node: creates it, and removes it on destruction (unless the
// node at the path was replaced by something else meanwhile). Move-only.
class Fifo {
 public:
  // Creates the FIFO with exactly `mode` (the umask is not applied).
  // Throws SystemError: EEXIST when the path exists, ENOENT when the
  // directory does not, EACCES when it is not writable.
  static Fifo create(std::string path, mode_t mode = 0600);

  Fifo() = default;
  Fifo(Fifo&& other) noexcept;
  Fifo& operator=(Fifo&& other) noexcept;
  Fifo(const Fifo&) = delete;
  Fifo& operator=(const Fifo&) = delete;
  ~Fifo();

  const std::string& path() const { return path_; }

  // Removes the node now (idempotent).
  void remove() noexcept;

 private:
  std::string path_;
  dev_t device_ = 0;
  ino_t inode_ = 0;
};

enum class FifoOpen {
  blocking,     // wait for the other side to open the FIFO
  nonblocking,  // O_NONBLOCK: see the rules above; the descriptor keeps it
};

// Opens a FIFO for reading. Throws SystemError naming the path when open
// fails, and Error ("not a FIFO") when the path is something else.
FileDescriptor open_fifo_for_reading(const std::string& path, FifoOpen mode);

// Opens a FIFO for writing. In nonblocking mode, throws SystemError with
// code ENXIO when no process has it open for reading.
FileDescriptor open_fifo_for_writing(const std::string& path, FifoOpen mode);

}  // namespace conduit::ipc
