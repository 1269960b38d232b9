// The mechanism behind a Channel or ChannelListener (internal).
#pragma once

#include <chrono>
#include <optional>
#include <span>
#include <string>

#include "conduit/ipc/channel.hpp"
#include "conduit/ipc/uri.hpp"

namespace conduit::ipc {

// What a URI and ChannelOptions decide together.
struct Settings {
  std::size_t max_message_size;
  bool raw;
  mode_t mode;  // of created FIFOs, socket files, queues and segments
};

Settings settings_for(const Uri& uri, const ChannelOptions& options);

class Transport {
 public:
  Transport(std::string uri, std::size_t max_message_size, const Cancellation* cancellation)
      : uri_(std::move(uri)), max_message_size_(max_message_size), cancellation_(cancellation) {}
  virtual ~Transport() = default;

  virtual void send(std::span<const std::byte> message) = 0;
  virtual Received receive(std::chrono::nanoseconds timeout) = 0;
  virtual std::optional<PeerCredentials> peer_credentials() const { return std::nullopt; }
  virtual std::uint64_t dropped_replies() const { return 0; }

  virtual std::size_t max_message_size() const { return max_message_size_; }
  const std::string& uri() const { return uri_; }

 protected:
  void check_send_size(std::size_t size) const;

  std::string uri_;
  std::size_t max_message_size_;
  const Cancellation* cancellation_;
};

class ListenerImpl {
 public:
  virtual ~ListenerImpl() = default;
  virtual std::optional<Channel> accept(std::chrono::nanoseconds timeout) = 0;
  virtual PeerModel peer_model() const = 0;
  virtual std::string uri() const = 0;
};

// A point in time to wait until; "never" for kWaitForever.
class Deadline {
 public:
  explicit Deadline(std::chrono::nanoseconds timeout);
  bool never() const { return never_; }
  // Milliseconds left for poll(): -1 for never, rounded up, at least 0.
  int poll_timeout_ms() const;
  // A deadline `interval` from now, or this one when it comes first.
  Deadline sooner(std::chrono::milliseconds interval) const;

 private:
  bool never_;
  std::chrono::steady_clock::time_point at_;
};

// Waits until fd has `events` (POLLIN or POLLOUT), the deadline passes, or
// the cancellation fires. Returns false on timeout; throws Cancelled or
// SystemError. Hang-ups count as ready: the next read or write reports them.
bool wait_for_fd(int fd, short events, const Deadline& deadline, const Cancellation* cancellation,
                 const std::string& uri);

// Sleeps for `pause` (zero: yields the processor), throwing Cancelled as soon
// as the cancellation fires. For what the kernel offers no way to wait on.
void pause_or_cancel(std::chrono::nanoseconds pause, const Cancellation* cancellation,
                     const std::string& uri);

}  // namespace conduit::ipc
