// Writing and reading exact bytes on a connected socket, for tests that play
// a client byte by byte.
#pragma once

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <string_view>

namespace conduit::testing {

// Sends all of `bytes`, failing the test when the socket refuses.
inline void send_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    ASSERT_GT(n, 0) << std::strerror(errno);
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

// Reads until what arrived holds `needle` (empty: never), the peer closes,
// or `timeout`; what arrived, with "<timeout>" appended when neither came.
inline std::string read_until(int fd, std::string_view needle,
                              std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  std::string text;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (needle.empty() || text.find(needle) == std::string::npos) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return text + "<timeout>";
    pollfd ready{fd, POLLIN, 0};
    if (::poll(&ready, 1, static_cast<int>(left.count())) <= 0) continue;
    char chunk[4096];
    ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) return text;
    text.append(chunk, static_cast<std::size_t>(n));
  }
  return text;
}

// Reads until the peer closes or `timeout`; what arrived, with "<timeout>"
// appended when the peer never closed.
inline std::string read_until_closed(int fd,
                                     std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  return read_until(fd, {}, timeout);
}

// Milliseconds until the peer closes `fd` (what arrives meanwhile is
// dropped), or about `timeout` when it never does.
inline long long ms_until_closed(int fd,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  const auto started = std::chrono::steady_clock::now();
  read_until_closed(fd, timeout);
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               started)
      .count();
}

}  // namespace conduit::testing
