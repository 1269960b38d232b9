// Helpers for the message queue tests: names and keys no other test (or
// parallel test process) uses, checks that a queue exists, running code in
// an IPC namespace of its own with raised limits, and dropping root.
#pragma once

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <mqueue.h>
#include <sched.h>
#include <sys/msg.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "conduit/ipc/shared_memory.hpp"       // key_from_path
#include "conduit/ipc/sysv_message_queue.hpp"  // parse_sysv_key
#include "conduit/ipc/uri.hpp"
#include "test_support.hpp"

namespace conduit::testing {

// "/conduit-test-PID-N-tag": unique in this process and across processes.
inline std::string unique_queue_name(const std::string& tag = "q") {
  static std::atomic<unsigned> counter{0};
  return "/conduit-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" +
         tag;
}

// True when a POSIX queue of that name exists (/dev/mqueue is not mounted
// everywhere, so ask mq_open).
inline bool posix_queue_exists(const std::string& name) {
  mqd_t fd = ::mq_open(name.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd != static_cast<mqd_t>(-1)) {
    ::mq_close(fd);
    return true;
  }
  return errno != ENOENT;
}

// A System V key no queue uses right now, distinct for each call and (by
// the pid in it) for each test process.
inline key_t unused_sysv_key() {
  static std::atomic<unsigned> counter{0};
  for (;;) {
    unsigned n = counter++;
    auto key = static_cast<key_t>(
        0x43000000u | ((static_cast<unsigned>(::getpid()) & 0xffffu) << 8) | (n & 0xffu));
    if (::msgget(key, 0) < 0 && errno == ENOENT) return key;
  }
}

inline bool sysv_queue_exists(key_t key) {
  return ::msgget(key, 0) >= 0 || errno != ENOENT;
}

inline std::string hex_key(key_t key) {
  char text[16];
  std::snprintf(text, sizeof text, "0x%08x", static_cast<unsigned>(key));
  return text;
}

// A fresh queue channel URI of the scheme ("mq" or "sysvmq") that no
// other test uses: mq:/conduit-test-...-tag or sysvmq:0x........
inline std::string fresh_queue_uri(const std::string& scheme, const std::string& tag) {
  if (scheme == "mq") return "mq:" + unique_queue_name(tag);
  return "sysvmq:" + hex_key(unused_sysv_key());
}

// True when the queue the URI names exists: mq_open or msgget by key.
inline bool queue_exists(const std::string& text) {
  ipc::Uri uri = ipc::Uri::parse(text);
  if (uri.scheme == "mq") return posix_queue_exists(uri.path);
  key_t key =
      uri.path.front() == '/' ? ipc::key_from_path(uri.path) : *ipc::parse_sysv_key(uri.path);
  return sysv_queue_exists(key);
}

// Writes value to /proc/sys/<path> (as seen from this process's namespaces).
inline bool write_sysctl(const std::string& path, const std::string& value) {
  std::ofstream file("/proc/sys/" + path);
  file << value << '\n';
  file.flush();
  return static_cast<bool>(file);
}

// The exit code of a child that could not get an IPC namespace of its own.
inline constexpr int kNoIpcNamespace = 77;

// Runs body in a forked child that first moves into a new IPC namespace
// (unshare(CLONE_NEWIPC), what `unshare --ipc` does) and sets the given
// sysctls (path under /proc/sys, value) there, leaving the machine's own
// settings alone. Returns the wait status as wait_child() does; the child
// exits kNoIpcNamespace when it could not unshare or set a limit (the
// caller should skip then).
inline int run_in_own_ipc_namespace(const std::vector<std::pair<std::string, std::string>>& sysctls,
                                    const std::function<void()>& body,
                                    std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
  pid_t pid = fork_child([&] {
    if (::unshare(CLONE_NEWIPC) != 0) {
      std::fprintf(stderr, "unshare(CLONE_NEWIPC): %s\n", std::strerror(errno));
      std::fflush(nullptr);
      ::_exit(kNoIpcNamespace);
    }
    for (const auto& [path, value] : sysctls) {
      if (!write_sysctl(path, value)) {
        std::fprintf(stderr, "cannot set /proc/sys/%s\n", path.c_str());
        std::fflush(nullptr);
        ::_exit(kNoIpcNamespace);
      }
    }
    body();
  });
  return wait_child(pid, timeout);
}

inline bool skipped_for_lack_of_namespace(int status) {
  return status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == kNoIpcNamespace;
}

// In a forked child: become user and group 65534 (nobody), dropping root's
// capabilities, so permission checks apply. Returns false on failure.
inline bool become_nobody() {
  return ::setgroups(0, nullptr) == 0 && ::setresgid(65534, 65534, 65534) == 0 &&
         ::setresuid(65534, 65534, 65534) == 0;
}

}  // namespace conduit::testing
