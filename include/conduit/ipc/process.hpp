// Spawning and reaping child processes.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace conduit::ipc {

// How a child ended.
struct ExitStatus {
  int code = 0;    // exit code when the child exited normally
  int signal = 0;  // the signal that killed the child, or 0

  bool success() const { return signal == 0 && code == 0; }
  // "exited with code 3" or "killed by signal 9 (Killed)".
  std::string describe() const;
};

struct SpawnOptions {
  // argv[0] is looked up in PATH when it contains no slash (spawn throws
  // SystemError(ENOENT) when it is not there).
  std::vector<std::string> argv;
  // Descriptors (in this process) to install as the child's 0, 1 and 2;
  // -1 leaves the child with this process's own.
  int stdin_fd = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;
  // Extra descriptors the child inherits: {number in the child, descriptor
  // here}; at most 64. Every other descriptor of this process above 2 is
  // closed in the child, whether or not it was opened with close-on-exec.
  std::vector<std::pair<int, int>> inherit;
};

// A running (or finished but not yet reaped) child process. Move-only.
// Destroying a Process that has not been waited for kills it with SIGKILL
// and reaps it, so no zombie or orphan outlives its owner.
class Process {
 public:
  // Starts the child. Throws SystemError naming the program when fork or
  // exec fails (exec errors are reported back through a close-on-exec pipe,
  // so "no such program" is an exception here, not a silent exit code 127).
  static Process spawn(const SpawnOptions& options);

  Process() = default;
  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process();

  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0 && !status_; }

  // Sends a signal. Does nothing once the child has been reaped.
  void kill(int signal) const;

  // Waits for the child to end and reaps it. Idempotent.
  ExitStatus wait();

  // Waits at most timeout; std::nullopt if the child is still running.
  std::optional<ExitStatus> wait_for(std::chrono::milliseconds timeout);

 private:
  explicit Process(pid_t pid) : pid_(pid) {}
  void reap_now() noexcept;

  pid_t pid_ = -1;
  std::optional<ExitStatus> status_;
};

}  // namespace conduit::ipc
