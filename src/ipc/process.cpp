#include "conduit/ipc/process.hpp"

#include <fcntl.h>
#include <linux/close_range.h>
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

// The program exec will run: a name with a slash as given, otherwise the
// first executable of that name in PATH (never the current directory unless
// PATH says so). Throws SystemError(ENOENT) when there is none.
std::string find_program(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  std::string_view dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  while (!dirs.empty()) {
    auto colon = dirs.find(':');
    std::string dir(dirs.substr(0, colon));
    dirs = colon == std::string_view::npos ? std::string_view{} : dirs.substr(colon + 1);
    if (dir.empty()) continue;
    std::string candidate = dir + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  throw SystemError("exec", name, ENOENT, "no such program in PATH");
}

constexpr std::size_t kMaxInherited = 64;

// Runs in the child between fork and exec: async-signal-safe calls only.
[[noreturn]] void exec_child(const SpawnOptions& options, const char* program, char* const argv[],
                             int error_pipe) {
  // Move the error pipe and every descriptor to be installed above the
  // highest target first, so that installing one never overwrites the source
  // of another or the error pipe.
  constexpr int kScratch = 1000;
  auto fail = [&](int code) {
    (void)!::write(error_pipe, &code, sizeof code);
    ::_exit(127);
  };  // exec_child's last call, so it never returns
  int high_error_pipe = ::fcntl(error_pipe, F_DUPFD_CLOEXEC, kScratch);
  if (high_error_pipe >= 0) error_pipe = high_error_pipe;
  struct Move {
    int source;
    int target;
  };
  Move moves[3 + kMaxInherited];
  int count = 0;
  auto add = [&](int source, int target) {
    if (source < 0) return;
    int high = ::fcntl(source, F_DUPFD_CLOEXEC, kScratch);
    if (high < 0) fail(errno);
    moves[count++] = Move{high, target};
  };
  add(options.stdin_fd, 0);
  add(options.stdout_fd, 1);
  add(options.stderr_fd, 2);
  for (const auto& [target, source] : options.inherit) add(source, target);
  // Nothing but the standard and the requested descriptors crosses exec,
  // including descriptors someone opened without close-on-exec.
  ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
  for (int i = 0; i < count; ++i) {
    // dup2 clears close-on-exec on the target.
    if (::dup2(moves[i].source, moves[i].target) < 0) fail(errno);
  }
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  ::sigaction(SIGPIPE, &default_action, nullptr);
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::execv(program, argv);
  fail(errno);
  __builtin_unreachable();
}

}  // namespace

std::string ExitStatus::describe() const {
  if (signal != 0)
    return "killed by signal " + std::to_string(signal) + " (" + ::strsignal(signal) + ")";
  return "exited with code " + std::to_string(code);
}

Process Process::spawn(const SpawnOptions& options) {
  if (options.argv.empty()) throw Error("spawn: empty argument list");
  if (options.inherit.size() > kMaxInherited)
    throw Error("spawn: " + std::to_string(options.inherit.size()) +
                " inherited descriptors; at most " + std::to_string(kMaxInherited));
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

void Process::reap_now() noexcept {
  if (!running()) return;
  ::kill(pid_, SIGKILL);
  int raw = 0;
  while (::waitpid(pid_, &raw, 0) < 0 && errno == EINTR) {
  }
  status_ = ExitStatus{0, SIGKILL};  // or reaped elsewhere: either way, gone
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
  if (pid_ <= 0) throw Error("wait_for: no process");
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
