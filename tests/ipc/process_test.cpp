// Specification of spawning and reaping child processes
// (conduit/ipc/process.hpp).

#include "conduit/ipc/process.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "conduit/error.hpp"
#include "conduit/ipc/pipe.hpp"
#include "test_support.hpp"

namespace conduit::ipc {
namespace {

using namespace std::chrono_literals;
using conduit::testing::eventually;
using conduit::testing::TempDir;

// Reads fd until end of file, failing the test if that takes longer than
// timeout.
std::string read_to_end(int fd, std::chrono::milliseconds timeout = 10s) {
  std::string text;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  char buffer[4096];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd ready{fd, POLLIN, 0};
    if (left.count() <= 0 || ::poll(&ready, 1, static_cast<int>(left.count())) <= 0) {
      ADD_FAILURE() << "no end of file within " << timeout.count() << " ms; got '" << text << "'";
      return text;
    }
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return text;
    text.append(buffer, static_cast<std::size_t>(n));
  }
}

// Spawns argv with stdout on a pipe and returns everything it printed.
std::string output_of(SpawnOptions options, ExitStatus* status = nullptr) {
  PipePair out = PipePair::create();
  options.stdout_fd = out.write_end.get();
  Process child = Process::spawn(options);
  out.write_end.reset();
  std::string text = read_to_end(out.read_end.get());
  auto finished = child.wait_for(10s);
  EXPECT_TRUE(finished.has_value()) << "child did not exit";
  if (finished && status) *status = *finished;
  return text;
}

// The descriptor numbers listed in `ls /proc/self/fd` output.
std::set<int> descriptor_numbers(const std::string& listing) {
  std::set<int> numbers;
  std::istringstream lines(listing);
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty()) numbers.insert(std::stoi(line));
  }
  return numbers;
}

bool process_gone(pid_t pid) {
  return ::kill(pid, 0) < 0 && errno == ESRCH;
}

std::string spawn_error(const SpawnOptions& options, int* code = nullptr) {
  try {
    Process child = Process::spawn(options);
    ADD_FAILURE() << "spawn of " << options.argv.front() << " did not throw; child "
                  << child.wait().describe();
  } catch (const SystemError& error) {
    if (code) *code = error.code();
    return error.what();
  }
  return "";
}

// --- Standard streams ---------------------------------------------------------

TEST(ProcessSpawn, ChildReadsStdinAndWritesStdoutThroughPipes) {
  PipePair in = PipePair::create();
  PipePair out = PipePair::create();
  SpawnOptions options;
  options.argv = {"cat"};
  options.stdin_fd = in.read_end.get();
  options.stdout_fd = out.write_end.get();
  Process cat = Process::spawn(options);
  in.read_end.reset();
  out.write_end.reset();

  const std::string message = "echoed by cat\n";
  ASSERT_EQ(::write(in.write_end.get(), message.data(), message.size()),
            static_cast<ssize_t>(message.size()));
  in.write_end.reset();  // cat exits at end of input
  EXPECT_EQ(read_to_end(out.read_end.get()), message);
  auto status = cat.wait_for(10s);
  ASSERT_TRUE(status);
  EXPECT_TRUE(status->success()) << status->describe();
}

TEST(ProcessSpawn, StderrCanBeRedirectedSeparately) {
  PipePair out = PipePair::create();
  PipePair err = PipePair::create();
  SpawnOptions options;
  options.argv = {"sh", "-c", "echo to-out; echo to-err >&2"};
  options.stdout_fd = out.write_end.get();
  options.stderr_fd = err.write_end.get();
  Process child = Process::spawn(options);
  out.write_end.reset();
  err.write_end.reset();
  EXPECT_EQ(read_to_end(out.read_end.get()), "to-out\n");
  EXPECT_EQ(read_to_end(err.read_end.get()), "to-err\n");
  EXPECT_TRUE(child.wait_for(10s).has_value());
}

TEST(ProcessSpawn, ProgramWithASlashIsRunByPath) {
  SpawnOptions options;
  options.argv = {"/bin/sh", "-c", "echo by-path"};
  EXPECT_EQ(output_of(options), "by-path\n");
}

TEST(ProcessSpawn, ArgumentsArePassedVerbatim) {
  SpawnOptions options;
  options.argv = {"sh", "-c", "printf '%s|' \"$@\"", "sh", "two words", "", "$HOME", "*"};
  EXPECT_EQ(output_of(options), "two words||$HOME|*|");
}

// --- Inherited descriptors ---------------------------------------------------

TEST(ProcessInherit, ExtraDescriptorAppearsAtTheChosenNumber) {
  PipePair pipe = PipePair::create();
  SpawnOptions options;
  options.argv = {"sh", "-c", "echo hi >&5"};
  options.inherit = {{5, pipe.write_end.get()}};
  Process child = Process::spawn(options);
  pipe.write_end.reset();
  EXPECT_EQ(read_to_end(pipe.read_end.get()), "hi\n");
  auto status = child.wait_for(10s);
  ASSERT_TRUE(status);
  EXPECT_TRUE(status->success()) << status->describe();
}

TEST(ProcessInherit, DescriptorsCanSwapNumbers) {
  // The child's descriptor A must be this process's B and vice versa: the
  // installation order must not overwrite a source before it is copied.
  PipePair first = PipePair::create();
  PipePair second = PipePair::create();
  int a = first.write_end.get();
  int b = second.write_end.get();
  SpawnOptions options;
  options.argv = {"sh", "-c",
                  "echo to-" + std::to_string(a) + " >&" + std::to_string(a) + "; echo to-" +
                      std::to_string(b) + " >&" + std::to_string(b)};
  options.inherit = {{a, b}, {b, a}};
  Process child = Process::spawn(options);
  first.write_end.reset();
  second.write_end.reset();
  EXPECT_EQ(read_to_end(first.read_end.get()), "to-" + std::to_string(b) + "\n");
  EXPECT_EQ(read_to_end(second.read_end.get()), "to-" + std::to_string(a) + "\n");
  EXPECT_TRUE(child.wait_for(10s).has_value());
}

TEST(ProcessInherit, OnlyStandardAndInheritedDescriptorsReachTheChild) {
  // Several close-on-exec descriptors are open here, as in any conduit program.
  PipePair unrelated = PipePair::create();
  PipePair also_unrelated = PipePair::create();
  PipePair inherited = PipePair::create();
  SpawnOptions options;
  options.argv = {"ls", "/proc/self/fd"};
  options.inherit = {{5, inherited.write_end.get()}};
  std::set<int> seen = descriptor_numbers(output_of(options));
  for (int expected : {0, 1, 2, 5}) {
    EXPECT_TRUE(seen.count(expected)) << "missing fd " << expected;
    seen.erase(expected);
  }
  // What remains is the directory ls opened to list /proc/self/fd.
  std::string extra;
  for (int fd : seen) extra += " " + std::to_string(fd);
  EXPECT_EQ(seen.size(), 1u) << "unexpected descriptors in the child:" << extra;
}

TEST(ProcessInherit, DescriptorOpenedWithoutCloseOnExecDoesNotLeakIntoTheChild) {
  // process.hpp: "Every other descriptor of this process is closed in the
  // child". A descriptor some other code opened without O_CLOEXEC counts too.
  PipePair pipe = PipePair::create();
  FileDescriptor leaky(::dup(pipe.write_end.get()));  // dup() clears FD_CLOEXEC
  ASSERT_TRUE(leaky);
  ASSERT_EQ(::fcntl(leaky.get(), F_GETFD) & FD_CLOEXEC, 0);
  SpawnOptions options;
  options.argv = {"ls", "/proc/self/fd"};
  std::set<int> seen = descriptor_numbers(output_of(options));
  EXPECT_EQ(seen.count(leaky.get()), 0u)
      << "fd " << leaky.get() << " (opened without O_CLOEXEC) is open in the child";
}

// --- Exec failures -------------------------------------------------------------

TEST(ProcessSpawnFailure, MissingProgramInPathThrowsENOENTNamingIt) {
  SpawnOptions options;
  options.argv = {"conduit-test-no-such-program"};
  int code = 0;
  std::string message = spawn_error(options, &code);
  EXPECT_EQ(code, ENOENT);
  EXPECT_NE(message.find("conduit-test-no-such-program"), std::string::npos) << message;
  EXPECT_NE(message.find("No such file or directory"), std::string::npos) << message;
}

TEST(ProcessSpawnFailure, MissingProgramByPathThrowsENOENTNamingIt) {
  TempDir dir;
  SpawnOptions options;
  options.argv = {dir / "missing"};
  int code = 0;
  std::string message = spawn_error(options, &code);
  EXPECT_EQ(code, ENOENT);
  EXPECT_NE(message.find("exec(" + (dir / "missing") + ")"), std::string::npos) << message;
}

TEST(ProcessSpawnFailure, FailedExecLeavesNoZombie) {
  SpawnOptions options;
  options.argv = {"conduit-test-no-such-program"};
  EXPECT_THROW(Process::spawn(options), SystemError);
  errno = 0;
  EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1) << "a child is left to reap";
  EXPECT_EQ(errno, ECHILD);
}

TEST(ProcessSpawnFailure, NonExecutableFileThrowsEACCES) {
  TempDir dir;
  std::string script = dir / "script";
  std::ofstream(script) << "#!/bin/sh\necho should-not-run\n";
  ASSERT_EQ(::chmod(script.c_str(), 0644), 0);
  SpawnOptions options;
  options.argv = {script};
  int code = 0;
  std::string message = spawn_error(options, &code);
  EXPECT_EQ(code, EACCES);
  EXPECT_NE(message.find(script), std::string::npos) << message;
}

TEST(ProcessSpawnFailure, ProgramIsNotLookedUpInTheCurrentDirectory) {
  // "argv[0] is looked up in PATH when it contains no slash": a program that
  // is only in the working directory is not found.
  TempDir dir;
  std::string name = "conduit-test-cwd-only-program";
  std::string script = dir / name;
  std::ofstream(script) << "#!/bin/sh\necho ran-from-cwd\n";
  ASSERT_EQ(::chmod(script.c_str(), 0755), 0);
  char* previous = ::getcwd(nullptr, 0);
  ASSERT_NE(previous, nullptr);
  ASSERT_EQ(::chdir(dir.path().c_str()), 0);
  SpawnOptions options;
  options.argv = {name};
  PipePair out = PipePair::create();
  options.stdout_fd = out.write_end.get();
  int code = 0;
  std::string message = spawn_error(options, &code);
  EXPECT_EQ(::chdir(previous), 0);
  std::free(previous);
  EXPECT_EQ(code, ENOENT) << message;
}

TEST(ProcessSpawnFailure, ExecFailureIsReportedEvenWhenAnInheritedNumberIsTaken) {
  // spawn() reports exec errors through an internal pipe whose descriptors
  // take the lowest free numbers. Installing an inherited descriptor at one
  // of those numbers must not swallow the report.
  PipePair out = PipePair::create();
  int low_read, low_write;
  {
    PipePair probe = PipePair::create();  // the numbers spawn's pipe will get
    low_read = probe.read_end.get();
    low_write = probe.write_end.get();
  }
  SpawnOptions options;
  options.argv = {"conduit-test-no-such-program"};
  options.inherit = {{low_write, out.write_end.get()}};
  int code = 0;
  std::string message = spawn_error(options, &code);
  EXPECT_EQ(code, ENOENT) << "inherit target " << low_write << " (internal pipe " << low_read << ","
                          << low_write << "): " << message;
}

TEST(ProcessSpawnFailure, EmptyArgumentListThrowsError) {
  SpawnOptions options;
  EXPECT_THROW(Process::spawn(options), Error);
}

// --- Exit status -----------------------------------------------------------------

TEST(ProcessExitStatus, ExitCodeIsReported) {
  SpawnOptions options;
  options.argv = {"sh", "-c", "exit 3"};
  Process child = Process::spawn(options);
  ExitStatus status = child.wait();
  EXPECT_EQ(status.code, 3);
  EXPECT_EQ(status.signal, 0);
  EXPECT_FALSE(status.success());
  EXPECT_EQ(status.describe(), "exited with code 3");
}

TEST(ProcessExitStatus, ZeroExitIsSuccess) {
  SpawnOptions options;
  options.argv = {"true"};
  Process child = Process::spawn(options);
  ExitStatus status = child.wait();
  EXPECT_TRUE(status.success());
  EXPECT_EQ(status.describe(), "exited with code 0");
}

TEST(ProcessExitStatus, DeathBySignalIsReportedWithItsName) {
  SpawnOptions options;
  options.argv = {"sh", "-c", "kill -TERM $$"};
  Process child = Process::spawn(options);
  ExitStatus status = child.wait();
  EXPECT_EQ(status.signal, SIGTERM);
  EXPECT_FALSE(status.success());
  EXPECT_EQ(status.describe(), "killed by signal 15 (Terminated)");
}

TEST(ProcessExitStatus, KillDeliversTheSignal) {
  SpawnOptions options;
  options.argv = {"sleep", "5"};
  Process child = Process::spawn(options);
  child.kill(SIGKILL);
  auto status = child.wait_for(5s);
  ASSERT_TRUE(status);
  EXPECT_EQ(status->signal, SIGKILL);
  EXPECT_EQ(status->describe(), "killed by signal 9 (Killed)");
}

TEST(ProcessExitStatus, ChildStartsWithDefaultSigpipeEvenIfTheParentIgnoresIt) {
  ignore_sigpipe();
  SpawnOptions options;
  options.argv = {"cat", "/proc/self/status"};
  std::istringstream status(output_of(options));
  unsigned long long ignored = ~0ull;
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("SigIgn:", 0) == 0) ignored = std::stoull(line.substr(7), nullptr, 16);
  }
  ASSERT_NE(ignored, ~0ull) << "no SigIgn line";
  EXPECT_EQ(ignored & (1ull << (SIGPIPE - 1)), 0u) << "SIGPIPE is ignored in the child";
}

// --- Waiting -------------------------------------------------------------------

TEST(ProcessWait, WaitForTimesOutWithNulloptWhileTheChildRuns) {
  SpawnOptions options;
  options.argv = {"sleep", "5"};
  Process child = Process::spawn(options);
  auto start = std::chrono::steady_clock::now();
  auto status = child.wait_for(100ms);
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_FALSE(status.has_value());
  EXPECT_GE(elapsed, 100ms);
  EXPECT_LT(elapsed, 2s);
  EXPECT_TRUE(child.running());
}

TEST(ProcessWait, WaitForReturnsTheStatusOnceTheChildExits) {
  SpawnOptions options;
  options.argv = {"sh", "-c", "exit 7"};
  Process child = Process::spawn(options);
  auto status = child.wait_for(10s);
  ASSERT_TRUE(status);
  EXPECT_EQ(status->code, 7);
  EXPECT_FALSE(child.running());
}

TEST(ProcessWait, WaitIsIdempotent) {
  SpawnOptions options;
  options.argv = {"sh", "-c", "exit 4"};
  Process child = Process::spawn(options);
  EXPECT_EQ(child.wait().code, 4);
  EXPECT_EQ(child.wait().code, 4);
  auto again = child.wait_for(0ms);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->code, 4);
}

TEST(ProcessWait, WaitOnAnEmptyProcessThrows) {
  Process empty;
  EXPECT_FALSE(empty.running());
  EXPECT_THROW(empty.wait(), Error);
}

TEST(ProcessWait, WaitForOnAnEmptyProcessDoesNotReapSomeoneElsesChild) {
  // Run in a child of our own: if the status is stolen, the real Process's
  // destructor fails too, and that must not take the test runner down.
  pid_t tester = conduit::testing::fork_child([] {
    SpawnOptions options;
    options.argv = {"sh", "-c", "exit 5"};
    Process real = Process::spawn(options);
    // Let it finish (a zombie, not yet reaped).
    ASSERT_TRUE(eventually([&] {
      siginfo_t info{};
      return ::waitid(P_PID, static_cast<id_t>(real.pid()), &info, WEXITED | WNOHANG | WNOWAIT) ==
                 0 &&
             info.si_pid == real.pid();
    }));
    Process empty;  // like a moved-from Process
    try {
      (void)empty.wait_for(0ms);
    } catch (const Error&) {
      // Refusing, as wait() does, is fine.
    }
    ExitStatus status{};
    try {
      status = real.wait();
    } catch (const Error& error) {
      ADD_FAILURE() << "the child's status was stolen: " << error.what();
      ::_exit(1);
    }
    EXPECT_EQ(status.code, 5);
  });
  EXPECT_TRUE(conduit::testing::exited_cleanly(conduit::testing::wait_child(tester)));
}

TEST(ProcessWait, KillAfterReapingDoesNothing) {
  SpawnOptions options;
  options.argv = {"true"};
  Process child = Process::spawn(options);
  child.wait();
  EXPECT_FALSE(child.running());
  child.kill(SIGKILL);  // must not signal a recycled pid
  EXPECT_TRUE(child.wait().success());
}

// --- Ownership -------------------------------------------------------------------

TEST(ProcessLifetime, DestroyingARunningProcessKillsAndReapsIt) {
  pid_t pid = 0;
  {
    SpawnOptions options;
    options.argv = {"sleep", "5"};
    Process child = Process::spawn(options);
    pid = child.pid();
    ASSERT_GT(pid, 0);
    ASSERT_EQ(::kill(pid, 0), 0);
  }
  // Reaped, not a zombie: the pid no longer exists at all.
  EXPECT_TRUE(process_gone(pid));
  errno = 0;
  EXPECT_EQ(::waitpid(pid, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
}

TEST(ProcessLifetime, DestroyingAProcessReapedElsewhereDoesNotAbort) {
  // If someone else reaped the child (a waitpid(-1) loop, SIGCHLD ignored),
  // the destructor's waitpid fails; a destructor must not throw.
  pid_t tester = conduit::testing::fork_child([] {
    SpawnOptions options;
    options.argv = {"true"};
    Process child = Process::spawn(options);
    ASSERT_EQ(::waitpid(child.pid(), nullptr, 0), child.pid());
  });  // ~Process runs here
  int status = conduit::testing::wait_child(tester);
  ASSERT_NE(status, -1) << "the child hung";
  bool killed = WIFSIGNALED(status);
  EXPECT_FALSE(killed) << "killed by signal " << WTERMSIG(status);
  EXPECT_TRUE(conduit::testing::exited_cleanly(status));
}

TEST(ProcessLifetime, MovingTransfersOwnership) {
  SpawnOptions options;
  options.argv = {"sleep", "5"};
  Process original = Process::spawn(options);
  pid_t pid = original.pid();
  Process moved(std::move(original));
  EXPECT_FALSE(original.running());
  EXPECT_TRUE(moved.running());
  EXPECT_EQ(moved.pid(), pid);
  { Process discard(std::move(original)); }  // destroying the moved-from one
  EXPECT_EQ(::kill(pid, 0), 0) << "the moved-from Process killed the child";
  moved.kill(SIGKILL);
  EXPECT_EQ(moved.wait().signal, SIGKILL);
}

TEST(ProcessLifetime, MoveAssigningOverARunningProcessKillsAndReapsTheOldChild) {
  SpawnOptions sleeper;
  sleeper.argv = {"sleep", "5"};
  Process child = Process::spawn(sleeper);
  pid_t old_pid = child.pid();
  SpawnOptions quick;
  quick.argv = {"true"};
  child = Process::spawn(quick);
  EXPECT_TRUE(process_gone(old_pid));
  EXPECT_TRUE(child.wait().success());
}

}  // namespace
}  // namespace conduit::ipc
