// Helpers for tests on descriptors and filesystem nodes: whether a path
// exists and its permission bits, waiting for readability, accepting a
// connection within a time limit, sending text whole, and what this process
// holds (descriptors and threads, as /proc lists them).
#pragma once

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace conduit::testing {

// True when something (anything, even a dangling link) is at path.
inline bool exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

// Permission bits of what is at path (st_mode & 07777), or -1 when nothing is.
inline int mode_of(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return -1;
  return static_cast<int>(st.st_mode & 07777);
}

// Waits at most timeout for fd to become readable.
inline bool readable(int fd, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  pollfd ready{fd, POLLIN, 0};
  return ::poll(&ready, 1, static_cast<int>(timeout.count())) == 1;
}

// Accepts one connection on listener (anything with fd() and accept()),
// failing (by throwing) if none arrives in time.
template <typename Listener>
auto accept_within(Listener& listener,
                   std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  if (!readable(listener.fd(), timeout)) throw std::runtime_error("no connection arrived");
  return listener.accept();
}

// Sends all of text in one send(2), failing the test otherwise.
inline void send_text(int fd, const std::string& text) {
  ASSERT_EQ(::send(fd, text.data(), text.size(), MSG_NOSIGNAL), static_cast<ssize_t>(text.size()));
}

// Entries in a /proc directory of this process: "fd" (open descriptors) or
// "task" (threads).
inline std::size_t proc_entries(const std::string& directory) {
  std::size_t count = 0;
  for ([[maybe_unused]] const auto& entry :
       std::filesystem::directory_iterator("/proc/self/" + directory))
    ++count;
  return count;
}

inline std::size_t open_descriptor_count() {
  return proc_entries("fd");
}
inline std::size_t thread_count() {
  return proc_entries("task");
}

}  // namespace conduit::testing
