// Helpers for the tests of shared memory, semaphores and robust mutexes:
// unique POSIX IPC names, objects placed in shared memory, a second user,
// signalling between a parent and a forked child, and catching SystemError.
#pragma once

#include <grp.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <utility>

#include "conduit/error.hpp"
#include "conduit/ipc/pipe.hpp"
#include "conduit/ipc/shared_memory.hpp"

namespace conduit::testing {

// A POSIX IPC name no other test (or test process) uses: "/conduit-test-PID-N-tag".
inline std::string unique_ipc_name(const std::string& tag = "t") {
  static std::atomic<int> counter{0};
  return "/conduit-test-" + std::to_string(::getpid()) + "-" + std::to_string(++counter) + "-" +
         tag;
}

// True when /dev/shm has an entry for `file` (a name without the slash, or
// "sem.NAME" for a named semaphore).
inline bool in_dev_shm(const std::string& file) {
  struct stat st {};
  return ::lstat(("/dev/shm/" + file).c_str(), &st) == 0;
}

// The user tests switch to when they need to be refused: "nobody".
constexpr uid_t unprivileged_id = 65534;

// Drops this (forked child) process to the unprivileged user and group, so
// that permission checks apply (the tests run as root, which bypasses them).
inline void drop_privileges() {
  if (::setgroups(0, nullptr) != 0 ||
      ::setresgid(unprivileged_id, unprivileged_id, unprivileged_id) != 0 ||
      ::setresuid(unprivileged_id, unprivileged_id, unprivileged_id) != 0)
    throw std::runtime_error("could not drop privileges");
}

// An object of type T constructed in its own anonymous shared memory segment,
// so that children forked afterwards share it. Destroys the object (in the
// process that made it) and releases the memory on destruction.
template <typename T>
class InSharedMemory {
 public:
  template <typename... Args>
  explicit InSharedMemory(Args&&... args)
      : segment_(ipc::SharedMemory::anonymous("conduit-test", sizeof(T))),
        mapping_(segment_.map()),
        object_(new (mapping_.data()) T(std::forward<Args>(args)...)) {}
  ~InSharedMemory() { std::destroy_at(object_); }
  InSharedMemory(const InSharedMemory&) = delete;
  InSharedMemory& operator=(const InSharedMemory&) = delete;

  T& operator*() const { return *object_; }
  T* operator->() const { return object_; }

 private:
  ipc::SharedMemory segment_;
  ipc::Mapping mapping_;
  T* object_;
};

// A one-shot, one-way signal between processes over a pipe: fire() in one,
// wait_for() in the other. Create it before forking.
class Signal {
 public:
  Signal() : pipe_(ipc::PipePair::create()) {}

  void fire() const {
    char byte = 1;
    (void)!::write(pipe_.write_end.get(), &byte, 1);
  }
  // True once fired; false when timeout passes first.
  bool wait_for(std::chrono::milliseconds timeout = std::chrono::seconds(10)) const {
    pollfd ready{pipe_.read_end.get(), POLLIN, 0};
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() < 0) return false;
      int n = ::poll(&ready, 1, static_cast<int>(left.count()));
      if (n > 0) {
        char byte;
        return ::read(pipe_.read_end.get(), &byte, 1) == 1;
      }
      if (n == 0) return false;
    }
  }

 private:
  ipc::PipePair pipe_;
};

// While alive, SIGUSR1 runs a handler installed without SA_RESTART, so it
// interrupts a blocking call with EINTR. interrupt(thread) sends it.
class InterruptingSignal {
 public:
  InterruptingSignal() {
    struct sigaction action {};
    action.sa_handler = [](int) { delivered().fetch_add(1); };
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0;
    ::sigaction(SIGUSR1, &action, &previous_);
    delivered() = 0;
  }
  ~InterruptingSignal() { ::sigaction(SIGUSR1, &previous_, nullptr); }
  InterruptingSignal(const InterruptingSignal&) = delete;
  InterruptingSignal& operator=(const InterruptingSignal&) = delete;

  static void interrupt(pthread_t thread) { ::pthread_kill(thread, SIGUSR1); }
  // How many times the handler ran.
  static int count() { return delivered().load(); }

 private:
  static std::atomic<int>& delivered() {
    static std::atomic<int> value{0};
    return value;
  }
  struct sigaction previous_ {};
};

// Interrupts `thread` with SIGUSR1 `times` times, `every` apart, from another
// thread, then calls then(). The destructor joins.
class Interrupter {
 public:
  Interrupter(
      pthread_t thread, int times, std::chrono::milliseconds every,
      std::function<void()> then = [] {})
      : thread_([=] {
          for (int i = 0; i < times; ++i) {
            std::this_thread::sleep_for(every);
            InterruptingSignal::interrupt(thread);
          }
          then();
        }) {}
  ~Interrupter() { thread_.join(); }
  Interrupter(const Interrupter&) = delete;
  Interrupter& operator=(const Interrupter&) = delete;

 private:
  std::thread thread_;
};

// Measures how long f takes.
template <typename F>
std::chrono::milliseconds time_of(F f) {
  auto start = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               start);
}

}  // namespace conduit::testing
