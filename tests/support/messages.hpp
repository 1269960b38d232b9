// Helpers for tests that send messages: byte buffers, numbered messages that
// cannot pass for one another, text <-> bytes, receiving one whole message
// from a Channel with a limit, and describing a child's wait status.
#pragma once

#include <sys/wait.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "conduit/ipc/channel.hpp"
#include "test_support.hpp"

namespace conduit::testing {

using Bytes = std::vector<std::byte>;

// Message number `index` of `size` bytes: the index in its first 8 bytes (as
// many as fit), then a pattern that depends on the index, so a reordered,
// stale, truncated or corrupted message cannot pass for the expected one.
inline Bytes make_message(std::uint64_t index, std::size_t size) {
  Bytes message(size);
  for (std::size_t i = 0; i < size; ++i)
    message[i] = i < 8 ? static_cast<std::byte>(index >> (8 * i))
                       : static_cast<std::byte>(index * 131 + i * 7 + (i >> 8) + 1);
  return message;
}

inline Bytes bytes_of(std::string_view text) {
  Bytes bytes(text.size());
  if (!text.empty()) std::memcpy(bytes.data(), text.data(), text.size());
  return bytes;
}

inline std::string text_of(std::span<const std::byte> bytes) {
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

// Receives one whole message or throws: tests never wait without a limit.
inline Bytes receive_message(ipc::Channel& channel,
                             std::chrono::nanoseconds timeout = std::chrono::milliseconds(10000)) {
  ipc::Received received = channel.receive(timeout);
  if (received.status == ipc::ReceiveStatus::timed_out)
    throw std::runtime_error("no message arrived in time on " + channel.uri());
  if (received.status == ipc::ReceiveStatus::closed)
    throw std::runtime_error("the peer closed " + channel.uri() + " instead of sending");
  return Bytes(received.message.begin(), received.message.end());
}

// A wait status as wait_child() returns it, in words.
inline std::string describe(int status) {
  if (status == -1) return "did not finish in time";
  if (WIFEXITED(status)) return "exited with " + std::to_string(WEXITSTATUS(status));
  return "killed by signal " + std::to_string(WTERMSIG(status));
}

}  // namespace conduit::testing
