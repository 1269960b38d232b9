// Helpers shared by conduit's tests: temporary directories, the conduit
// binary, child processes with deadlines, and polling with a timeout.
#pragma once

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "conduit/error.hpp"
#include "conduit/ipc/pipe.hpp"
#include "conduit/ipc/process.hpp"
#include "conduit/ipc/uri.hpp"

// Expects the string haystack to contain needle, printing both when not.
#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_PRED_FORMAT2(::testing::IsSubstring, needle, haystack)

namespace conduit::testing {

// Runs work(thread) on `count` threads at once (thread = 0 .. count-1) and
// waits for them all.
inline void on_threads(int count, const std::function<void(int)>& work) {
  std::vector<std::thread> threads;
  for (int t = 0; t < count; ++t) threads.emplace_back(work, t);
  for (std::thread& thread : threads) thread.join();
}

inline bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Runs f and returns the code and text of the SystemError it throws; fails
// the test when f throws nothing or something else.
template <typename F>
std::pair<int, std::string> system_error_of(F f) {
  try {
    f();
  } catch (const SystemError& error) {
    return {error.code(), error.what()};
  } catch (const std::exception& error) {
    ADD_FAILURE() << "threw something other than SystemError: " << error.what();
    return {0, error.what()};
  }
  ADD_FAILURE() << "no SystemError was thrown";
  return {0, ""};
}

// The message of the InvalidUri that parsing text throws; fails the test
// (and returns "") when text parses.
inline std::string uri_parse_error(const std::string& text) {
  try {
    ipc::Uri::parse(text);
  } catch (const InvalidUri& error) {
    return error.what();
  }
  ADD_FAILURE() << "'" << text << "' parsed without error";
  return "";
}

// Path of the conduit command-line binary built alongside the tests.
inline std::string conduit_binary() {
  return CONDUIT_BINARY;
}

// A fresh directory under /tmp, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir() {
    char name[] = "/tmp/conduit-test-XXXXXX";
    if (!::mkdtemp(name)) throw std::runtime_error("mkdtemp failed");
    path_ = name;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Polls predicate every millisecond until it is true or timeout passes.
inline bool eventually(const std::function<bool()>& predicate,
                       std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (predicate()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return predicate();
}

// A line of /proc/PID/status ("Threads", "VmRSS", ...) as a number (VmRSS
// in kB, as the kernel writes it); -1 when the process or the line is not
// there.
inline long proc_status(const std::string& key, const std::string& pid = "self") {
  std::ifstream status("/proc/" + pid + "/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind(key + ":", 0) == 0) return std::stol(line.substr(key.size() + 1));
  return -1;
}

// Runs body in a forked child and returns the child. The child exits 0 when
// body returns normally, 1 when a gtest assertion failed in it (reported on
// stderr) and 2 when it threw.
inline pid_t fork_child(const std::function<void()>& body) {
  pid_t pid = ::fork();
  if (pid == 0) {
    int code = 0;
    try {
      body();
      if (::testing::Test::HasFailure()) code = 1;
    } catch (const std::exception& error) {
      std::fprintf(stderr, "child threw: %s\n", error.what());
      code = 2;
    }
    std::fflush(nullptr);
    ::_exit(code);
  }
  return pid;
}

// Waits for a forked child at most timeout; kills it if it is still running.
// Returns the raw wait status, or -1 on timeout.
inline int wait_child(pid_t pid, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  int status = 0;
  bool done = eventually([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, timeout);
  if (!done) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    return -1;
  }
  return status;
}

inline bool exited_cleanly(int status) {
  return status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// The result of running a command to completion.
struct CommandResult {
  ipc::ExitStatus status;
  std::string out;
  std::string err;
};

// Runs argv with stdin from /dev/null (or `input`), capturing stdout and
// stderr; kills it after timeout and fails the current test in that case.
CommandResult run_command(const std::vector<std::string>& argv,
                          std::chrono::milliseconds timeout = std::chrono::seconds(30),
                          const std::string& input = "");

// A server child that announces "listening on ADDRESS" on stderr (`conduit
// ipc serve`, `conduit serve`), stopped with SIGTERM on destruction.
class ServerProcess {
 public:
  // Starts argv and waits for its first "listening on" line. uri() is the
  // address it announced (with the real port for tcp://...:0).
  explicit ServerProcess(const std::vector<std::string>& argv);
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  const std::string& uri() const { return uri_; }
  ipc::Process& process() { return process_; }
  // Sends SIGTERM and waits for the exit status.
  ipc::ExitStatus stop();
  // What the server wrote to stderr so far.
  std::string errors();

 private:
  ipc::Process process_;
  ipc::FileDescriptor stderr_;
  std::string uri_;
  std::string captured_;
};

// A `conduit ipc serve URI` child.
class EchoServer : public ServerProcess {
 public:
  explicit EchoServer(const std::string& uri)
      : ServerProcess({conduit_binary(), "ipc", "serve", uri}) {}
};

}  // namespace conduit::testing
