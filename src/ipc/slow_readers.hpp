// The clients of a shared server channel (unix+dgram, mq) that do not read
// their replies (internal).
//
// One channel answers every client, so a reply must never wait for long on
// one client: the server waits at most ChannelOptions::reply_timeout for room
// in a client's queue, then drops the reply and counts it. A client whose
// reply was dropped gets no wait at all from then on, until a reply to it
// goes through again: a client that sends without reading costs the server
// one timeout, not one per request.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace conduit::ipc {

class SlowReaders {
 public:
  // At most this many slow clients are remembered; the oldest is forgotten
  // first (and waited for again once).
  static constexpr std::size_t kRemembered = 256;

  explicit SlowReaders(std::chrono::milliseconds patience) : patience_(patience) {}

  // How long to wait for room for a reply to `client`.
  std::chrono::nanoseconds patience_for(const std::string& client) const {
    return known(client) ? std::chrono::nanoseconds::zero() : patience_;
  }

  // A reply to `client` went through: it reads again.
  void delivered(const std::string& client) {
    if (slow_.empty()) return;
    std::erase(slow_, client);
  }

  // A reply to `client` was dropped.
  void dropped(const std::string& client) {
    ++dropped_;
    if (known(client)) return;
    if (slow_.size() >= kRemembered) slow_.erase(slow_.begin());
    slow_.push_back(client);
  }

  std::uint64_t dropped_count() const { return dropped_; }

 private:
  bool known(const std::string& client) const {
    return std::find(slow_.begin(), slow_.end(), client) != slow_.end();
  }

  std::chrono::milliseconds patience_;
  std::vector<std::string> slow_;  // oldest first
  std::uint64_t dropped_ = 0;
};

}  // namespace conduit::ipc
