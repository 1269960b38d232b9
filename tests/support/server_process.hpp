// A server run as a child process for a test: started, found ready by a
// line it writes, and stopped.
#pragma once

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "conduit/ipc/file_descriptor.hpp"
#include "conduit/ipc/pipe.hpp"
#include "conduit/ipc/process.hpp"

namespace conduit::testing {

// A server started as a child process, found ready by a line it writes. Its
// stdin is a pipe the test holds, so closing it is a way to stop it. The
// destructor stops it with SIGTERM (SIGKILL after 10 s) and reaps it.
class AnnouncingProcess {
 public:
  enum class Stream { out, err };

  // Starts argv and waits at most 10 s for a line on `stream` that contains
  // `marker`; what follows the marker on that line is announced(). Throws
  // std::runtime_error, with what the child wrote, if no such line comes.
  AnnouncingProcess(const std::vector<std::string>& argv, Stream stream,
                    const std::string& marker) {
    ipc::PipePair in = ipc::PipePair::create();
    ipc::PipePair announcing = ipc::PipePair::create();
    ipc::SpawnOptions options;
    options.argv = argv;
    options.stdin_fd = in.read_end.get();
    (stream == Stream::out ? options.stdout_fd : options.stderr_fd) = announcing.write_end.get();
    program_ = argv.front();
    process_ = ipc::Process::spawn(options);
    stdin_ = std::move(in.write_end);
    output_ = std::move(announcing.read_end);
    announcing.write_end.reset();
    announced_ = read_announcement(marker, std::chrono::seconds(10));
  }

  ~AnnouncingProcess() {
    if (process_.running()) stop();
  }

  const std::string& announced() const { return announced_; }
  pid_t pid() const { return process_.pid(); }

  // Ends the child's stdin and waits at most timeout for it to exit.
  std::optional<ipc::ExitStatus> close_stdin_and_wait(std::chrono::milliseconds timeout) {
    stdin_.reset();
    return process_.wait_for(timeout);
  }

  // Sends SIGTERM and reaps the child; SIGKILL (and a test failure) if it
  // is still running after 10 s.
  ipc::ExitStatus stop() {
    process_.kill(SIGTERM);
    if (auto status = process_.wait_for(std::chrono::seconds(10))) return *status;
    ADD_FAILURE() << program_ << " ignored SIGTERM for 10 s";
    process_.kill(SIGKILL);
    return process_.wait();
  }

 private:
  std::string read_announcement(const std::string& marker, std::chrono::milliseconds timeout) {
    std::string seen;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto at = seen.find(marker);
      auto end = at == std::string::npos ? at : seen.find('\n', at);
      if (end != std::string::npos)
        return seen.substr(at + marker.size(), end - at - marker.size());
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      pollfd readable{output_.get(), POLLIN, 0};
      if (::poll(&readable, 1, static_cast<int>(left.count())) <= 0) continue;
      char chunk[512];
      ssize_t n = ::read(output_.get(), chunk, sizeof chunk);
      if (n == 0 || (n < 0 && errno != EINTR)) break;  // the child exited
      if (n > 0) seen.append(chunk, static_cast<std::size_t>(n));
    }
    throw std::runtime_error("no \"" + marker + "\" line from " + program_ +
                             ", which wrote: " + seen);
  }

  std::string program_;
  ipc::Process process_;
  ipc::FileDescriptor stdin_;
  ipc::FileDescriptor output_;
  std::string announced_;
};

}  // namespace conduit::testing
