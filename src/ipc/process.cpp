#include "conduit/ipc/process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "conduit/error.hpp"
#include "conduit/ipc/pipe.hpp"

namespace conduit::ipc {
namespace {

std::string find_program(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  std::string_view dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  while (!dirs.empty()) {
    auto colon = dirs.find(':');
    std::string dir(dirs.substr(0, colon));
    dirs = colon == std::string_view::npos ? std::string_view{} : dirs.substr(colon + 1);
    std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return name;  // exec will report ENOENT
}

// Runs in the child between fork and exec: async-signal-safe calls only.
[[noreturn]] void exec_child(const SpawnOptions& options, const char* program, char* const argv[],
                             int error_pipe) {
  // Move every descriptor to be installed above the highest target first, so
  // that installing one never overwrites the source of another.
  constexpr int kScratch = 1000;
  struct Move {
    int source;
    int target;
  };
  Move moves[3 + 64];
  int count = 0;
  auto add = [&](int source, int target) {
    if (source < 0 || count >= static_cast<int>(std::size(moves))) return;
    int high = ::fcntl(source, F_DUPFD_CLOEXEC, kScratch);
    moves[count++] = Move{high < 0 ? source : high, target};
  };
  add(options.stdin_fd, 0);
  add(options.stdout_fd, 1);
  add(options.stderr_fd, 2);
  for (const auto& [target, source] : options.inherit) add(source, target);
  for (int i = 0; i < count; ++i) {
    // dup2 clears close-on-exec on the target.
    if (::dup2(moves[i].source, moves[i].target) < 0) {
      int code = errno;
      (void)!::write(error_pipe, &code, sizeof code);
      ::_exit(127);
    }
  }
  ::signal(SIGPIPE, SIG_DFL);
  ::execv(program, argv);
  int code = errno;
  (void)!::write(error_pipe, &code, sizeof code);
  ::_exit(127);
}

}  // namespace

std::string ExitStatus::describe() const {
  if (signal != 0)
    return "killed by signal " + std::to_string(signal) + " (" + ::strsignal(signal) + ")";
  return "exited with code " + std::to_string(code);
}

Process Process::spawn(const SpawnOptions& options) {
  if (options.argv.empty()) throw Error("spawn: empty argument list");
  std::string program = find_program(options.argv.front());
  std::vector<char*> argv;
  for (const auto& arg : options.argv) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);

  PipePair errors = PipePair::create();
  pid_t pid = ::fork();
  if (pid < 0) throw SystemError("fork", program, errno);
  if (pid == 0) exec_child(options, program.c_str(), argv.data(), errors.write_end.get());

  errors.write_end.reset();
  int code = 0;
  ssize_t n;
  do {
    n = ::read(errors.read_end.get(), &code, sizeof code);
  } while (n < 0 && errno == EINTR);
  Process child(pid);
  if (n == sizeof code) {
    child.wait();
    throw SystemError("exec", program, code);
  }
  return child;
}

Process::Process(Process&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), status_(std::exchange(other.status_, std::nullopt)) {}

Process& Process::operator=(Process&& other) noexcept {
  if (this != &other) {
    reap_now();
    pid_ = std::exchange(other.pid_, -1);
    status_ = std::exchange(other.status_, std::nullopt);
  }
  return *this;
}

Process::~Process() {
  reap_now();
}

void Process::reap_now() {
  if (running()) {
    ::kill(pid_, SIGKILL);
    wait();
  }
}

void Process::kill(int signal) const {
  if (running()) ::kill(pid_, signal);
}

namespace {
ExitStatus decode(int raw) {
  ExitStatus status;
  if (WIFSIGNALED(raw))
    status.signal = WTERMSIG(raw);
  else
    status.code = WEXITSTATUS(raw);
  return status;
}
}  // namespace

ExitStatus Process::wait() {
  if (status_) return *status_;
  if (pid_ <= 0) throw Error("wait: no process");
  int raw = 0;
  while (::waitpid(pid_, &raw, 0) < 0) {
    if (errno != EINTR) throw SystemError("waitpid", std::to_string(pid_), errno);
  }
  status_ = decode(raw);
  return *status_;
}

std::optional<ExitStatus> Process::wait_for(std::chrono::milliseconds timeout) {
  if (status_) return status_;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto pause = std::chrono::microseconds(200);
  for (;;) {
    int raw = 0;
    pid_t r = ::waitpid(pid_, &raw, WNOHANG);
    if (r == pid_) {
      status_ = decode(raw);
      return status_;
    }
    if (r < 0 && errno != EINTR) throw SystemError("waitpid", std::to_string(pid_), errno);
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(20000));
  }
}

}  // namespace conduit::ipc
