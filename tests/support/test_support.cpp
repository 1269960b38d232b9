#include "test_support.hpp"

#include <fcntl.h>

namespace conduit::testing {
namespace {

// Appends whatever is readable on fd without blocking; false at end of file.
bool drain(int fd, std::string& into) {
  char chunk[4096];
  for (;;) {
    ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n > 0) {
      into.append(chunk, static_cast<std::size_t>(n));
      continue;
    }
    if (n == 0) return false;
    return errno == EAGAIN || errno == EINTR;
  }
}

}  // namespace

CommandResult run_command(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                          const std::string& input) {
  ipc::PipePair in = ipc::PipePair::create();
  ipc::PipePair out = ipc::PipePair::create();
  ipc::PipePair err = ipc::PipePair::create();
  ipc::SpawnOptions options;
  options.argv = argv;
  options.stdin_fd = in.read_end.get();
  options.stdout_fd = out.write_end.get();
  options.stderr_fd = err.write_end.get();
  ipc::Process child = ipc::Process::spawn(options);
  in.read_end.reset();
  out.write_end.reset();
  err.write_end.reset();
  ipc::ignore_sigpipe();
  if (!input.empty()) (void)!::write(in.write_end.get(), input.data(), input.size());
  in.write_end.reset();
  ipc::set_nonblocking(out.read_end.get(), true);
  ipc::set_nonblocking(err.read_end.get(), true);

  CommandResult result;
  bool out_open = true, err_open = true;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while ((out_open || err_open) && std::chrono::steady_clock::now() < deadline) {
    pollfd fds[2] = {{out_open ? out.read_end.get() : -1, POLLIN, 0},
                     {err_open ? err.read_end.get() : -1, POLLIN, 0}};
    ::poll(fds, 2, 50);
    if (out_open) out_open = drain(out.read_end.get(), result.out);
    if (err_open) err_open = drain(err.read_end.get(), result.err);
  }
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  auto status = child.wait_for(std::max(left, std::chrono::milliseconds(0)));
  if (!status) {
    ADD_FAILURE() << "command timed out: " << argv.front();
    child.kill(SIGKILL);
    status = child.wait();
  }
  result.status = *status;
  return result;
}

ServerProcess::ServerProcess(const std::vector<std::string>& argv) {
  ipc::PipePair err = ipc::PipePair::create();
  ipc::SpawnOptions options;
  options.argv = argv;
  options.stderr_fd = err.write_end.get();
  process_ = ipc::Process::spawn(options);
  err.write_end.reset();
  stderr_ = std::move(err.read_end);
  ipc::set_nonblocking(stderr_.get(), true);
  const std::string marker = "listening on ";
  bool ready = eventually([&] {
    drain(stderr_.get(), captured_);
    auto at = captured_.find(marker);
    return at != std::string::npos && captured_.find('\n', at) != std::string::npos;
  });
  if (!ready) {
    std::string command;
    for (const std::string& arg : argv) command += (command.empty() ? "" : " ") + arg;
    throw std::runtime_error("'" + command + "' did not start: " + captured_);
  }
  auto start = captured_.find(marker) + marker.size();
  uri_ = captured_.substr(start, captured_.find('\n', start) - start);
}

ServerProcess::~ServerProcess() {
  if (process_.running()) stop();
}

ipc::ExitStatus ServerProcess::stop() {
  process_.kill(SIGTERM);
  auto status = process_.wait_for(std::chrono::seconds(10));
  if (!status) {
    ADD_FAILURE() << "the server ignored SIGTERM";
    process_.kill(SIGKILL);
    return process_.wait();
  }
  return *status;
}

std::string ServerProcess::errors() {
  drain(stderr_.get(), captured_);
  return captured_;
}

}  // namespace conduit::testing
