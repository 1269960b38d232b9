// sysvmq:KEY channels (see queue_transport.hpp).
//
// System V queues offer nothing to poll, so a channel that must also watch a
// deadline or a Cancellation retries msgrcv/msgsnd with IPC_NOWAIT and
// pauses in between (detail::RetryBackoff: 20 us doubling to 2 ms). A
// Cancellation still stops it at once: the pauses wait on its eventfd.
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <limits>
#include <thread>
#include <vector>

#include "conduit/error.hpp"
#include "conduit/ipc/shared_memory.hpp"  // key_from_path
#include "conduit/ipc/sysv_message_queue.hpp"
#include "deadline.hpp"
#include "kernel_setting.hpp"
#include "leftovers.hpp"
#include "queue_transport.hpp"
#include "retry_backoff.hpp"
#include "sysv_key.hpp"

namespace conduit::ipc {
namespace {

using Clock = std::chrono::steady_clock;

constexpr long kRequestType = 1;
// Requests a busy server sets aside so replies find room in the queue.
constexpr std::size_t kBacklogLimit = 256;
// Clients whose unread replies the server removes once they are gone.
constexpr std::size_t kRecentClients = 64;
// How often an idle server looks for replies that gone clients left unread.
constexpr std::chrono::milliseconds kGoneClientCheckInterval{200};
// The owner record: the first message of a server's queue, of a type no
// reply reaches, naming the server's process.
constexpr long kOwnerType = std::numeric_limits<long>::max();
constexpr std::uint32_t kOwnerMagic = 0x4f514443;  // "CDQO" in memory
struct OwnerRecord {
  std::uint32_t magic;
  std::uint32_t pid;
  std::uint64_t pid_namespace;  // where pid means the server
};
// How far into the queue the owner record is looked for.
constexpr std::size_t kOwnerRecordSearch = 16;

// The key a sysvmq: URI names: a number (decimal or 0x hex), or ftok() of an
// existing path.
key_t key_for(const Uri& uri) {
  if (!uri.path.empty() && uri.path.front() == '/') return key_from_path(uri.path);
  if (auto key = parse_sysv_key(uri.path)) return *key;
  throw InvalidUri("invalid URI '" + uri.str() +
                   "': the key must be a number from 1 to 0xffffffff or an absolute path");
}

long reply_type(std::uint32_t pid, std::uint32_t instance) {
  if constexpr (sizeof(long) < 8) {
    if (instance != 0)
      throw Error("sysvmq: a second channel per process needs 64-bit message types");
  }
  return static_cast<long>(pid) + 1 + (static_cast<long>(instance) << (sizeof(long) * 4));
}

// The queue's owner record; a pid of 0 when it has none (not a conduit
// server's queue, or a kernel that cannot copy messages out).
OwnerRecord server_of(const SysVMessageQueue& queue) {
  SysVMessageBuffer buffer(sizeof(OwnerRecord));
  try {
    for (std::size_t index = 0; index < kOwnerRecordSearch; ++index) {
      std::optional<std::size_t> size = queue.try_copy(buffer, index);
      if (!size) break;
      OwnerRecord record{};
      std::memcpy(&record, buffer.body().data(), sizeof record);
      if (buffer.type() == kOwnerType && *size == sizeof record && record.magic == kOwnerMagic)
        return record;
    }
  } catch (const SystemError&) {
  }
  return OwnerRecord{};
}

bool gone(const OwnerRecord& server) {
  return server.pid != 0 && process_gone(static_cast<pid_t>(server.pid), server.pid_namespace);
}

bool removed(const SystemError& error) {
  return error.code() == EIDRM || error.code() == EINVAL;
}

// The largest message (without conduit's header) the kernel lets a queue
// with `max_bytes` of room carry. When ?max= asks for more, says which
// limit stands in the way.
std::size_t message_limit(std::size_t max_bytes, const Uri& uri, const Settings& settings,
                          const char* call) {
  SysVQueueLimits limits = SysVQueueLimits::current();
  // The owner record takes its room in the queue for good.
  std::size_t kernel = max_bytes > sizeof(OwnerRecord) ? max_bytes - sizeof(OwnerRecord) : 0;
  if (limits.msgmax > 0) kernel = std::min(kernel, static_cast<std::size_t>(limits.msgmax));
  kernel = kernel > kQueueHeaderSize ? kernel - kQueueHeaderSize : 0;
  if (uri.has_option("max") && settings.max_message_size > kernel) {
    std::size_t needed = settings.max_message_size + kQueueHeaderSize;
    std::string why =
        limits.msgmax >= 0 && needed > static_cast<std::size_t>(limits.msgmax)
            ? "kernel.msgmax = " + std::to_string(limits.msgmax) +
                  " bytes per message (/proc/sys/kernel/msgmax); raise it with `sysctl -w "
                  "kernel.msgmax=" +
                  std::to_string(needed) + "`"
            : "the queue's room of " + std::to_string(max_bytes) +
                  " bytes (msg_qbytes, from kernel.msgmnb = " +
                  detail::kernel_setting("kernel.msgmnb") +
                  " when the queue was created; /proc/sys/kernel/msgmnb) less the " +
                  std::to_string(sizeof(OwnerRecord)) +
                  " bytes of the record naming the server; raise it with `sysctl -w "
                  "kernel.msgmnb=" +
                  std::to_string(needed + sizeof(OwnerRecord)) + "` before the server starts";
    throw MessageTooLarge(std::string(call) + "(" + uri.str() + "): ?max=" +
                          std::to_string(settings.max_message_size) + " needs messages of " +
                          std::to_string(needed) + " bytes (with conduit's " +
                          std::to_string(kQueueHeaderSize) + "-byte header), above " + why +
                          "; it applies per IPC namespace, so a process in its own (`unshare "
                          "--ipc`) may raise it there");
  }
  return std::min(settings.max_message_size, kernel);
}

class SysVQueueClient final : public Transport {
 public:
  SysVQueueClient(const Uri& uri, const Settings& settings, const ChannelOptions& options)
      : Transport(uri.str(), settings.max_message_size, options.cancellation) {
    key_t key = key_for(uri);
    try {
      queue_ = SysVMessageQueue::open(key, QueueAccess::send_and_receive);
    } catch (const SystemError& error) {
      if (error.code() != ENOENT) throw;
      throw SystemError("connect", uri_, ENOENT,
                        "no queue has " + detail::describe_sysv_key(key) +
                            "; is the server running (conduit ipc serve " + uri_ + ")?");
    }
    if (OwnerRecord server = server_of(queue_); gone(server))
      throw SystemError("connect", uri_, ECONNREFUSED,
                        server_gone_hint(static_cast<pid_t>(server.pid), "the queue", uri_));
    max_message_size_ = message_limit(queue_.status().max_bytes, uri, settings, "connect");
    QueueRequestHeader header{kQueueRequestMagic, static_cast<std::uint32_t>(::getpid()),
                              instance_.number(), 0};
    reply_type_ = reply_type(header.pid, header.instance);
    outgoing_ = std::make_unique<SysVMessageBuffer>(kQueueHeaderSize + max_message_size_);
    outgoing_->set_type(kRequestType);
    std::memcpy(outgoing_->body().data(), &header, sizeof header);
    incoming_ = std::make_unique<SysVMessageBuffer>(max_message_size_);
    // Replies to an earlier process with this pid that it never read.
    discard_replies();
  }

  // Removes replies that arrived for this channel and were never read.
  ~SysVQueueClient() override { discard_replies(); }

  void send(std::span<const std::byte> message) override {
    check_send_size(message.size());
    if (!message.empty())
      std::memcpy(outgoing_->body().data() + kQueueHeaderSize, message.data(), message.size());
    std::size_t size = kQueueHeaderSize + message.size();
    detail::RetryBackoff backoff;
    try {
      if (cancellation_ == nullptr) return queue_.send(*outgoing_, size);
      while (!queue_.try_send(*outgoing_, size))
        pause_or_cancel(backoff.next(), cancellation_, uri_);
    } catch (const SystemError& error) {
      if (!removed(error)) throw;
      throw SystemError("msgsnd", uri_, error.code(), "the server removed the queue: it stopped");
    }
  }

  Received receive(std::chrono::nanoseconds timeout) override {
    try {
      if (timeout == kWaitForever && cancellation_ == nullptr)
        return message(queue_.receive(*incoming_, reply_type_));
      auto deadline = detail::deadline_after(timeout);
      detail::RetryBackoff backoff;
      for (;;) {
        if (auto size = queue_.try_receive(*incoming_, reply_type_)) return message(*size);
        auto left = deadline - Clock::now();
        if (left <= std::chrono::nanoseconds::zero()) return Received{ReceiveStatus::timed_out, {}};
        pause_or_cancel(backoff.next(left), cancellation_, uri_);
      }
    } catch (const SystemError& error) {
      if (removed(error)) return Received{ReceiveStatus::closed, {}};
      if (error.code() != E2BIG) throw;
      queue_.discard_next(reply_type_);
      throw MessageTooLarge("receive(" + uri_ +
                            "): discarded a message larger than the maximum of " +
                            std::to_string(max_message_size_) + " bytes (raise it with ?max=)");
    }
  }

 private:
  Received message(std::size_t size) {
    return Received{ReceiveStatus::message, incoming_->body().first(size)};
  }

  void discard_replies() noexcept {
    try {
      for (int i = 0; i < 100000 && queue_.discard_next(reply_type_); ++i) {
      }
    } catch (const Error&) {
      // The queue is gone, and the replies with it.
    }
  }

  SysVMessageQueue queue_;
  ChannelInstance instance_;
  long reply_type_ = 0;
  std::unique_ptr<SysVMessageBuffer> outgoing_;  // type 1, header, message
  std::unique_ptr<SysVMessageBuffer> incoming_;
};

class SysVQueueServer final : public Transport {
 public:
  SysVQueueServer(SysVMessageQueue queue, std::size_t max_message_size, std::string uri,
                  const Cancellation* cancellation)
      : Transport(std::move(uri), max_message_size, cancellation), queue_(std::move(queue)) {
    incoming_ = std::make_unique<SysVMessageBuffer>(kQueueHeaderSize + max_message_size_);
    outgoing_ = std::make_unique<SysVMessageBuffer>(max_message_size_);
  }

  void send(std::span<const std::byte> message) override {
    check_send_size(message.size());
    if (!has_sender_)
      throw Error("send(" + uri_ +
                  "): no client has sent a message yet, so there is nobody to reply to");
    outgoing_->set_type(reply_type(sender_.pid, sender_.instance));
    if (!message.empty()) std::memcpy(outgoing_->body().data(), message.data(), message.size());
    detail::RetryBackoff backoff;
    try {
      for (;;) {
        if (queue_.try_send(*outgoing_, message.size())) {
          remember(sender_);
          return;
        }
        // The queue is full. Requests waiting in it can block replies for
        // good (every client waits for its reply before sending again), so
        // set them aside, and drop replies nobody will ever read.
        if (set_requests_aside() || drop_replies_of_gone_clients()) continue;
        if (process_gone(static_cast<pid_t>(sender_.pid)))
          throw SystemError("msgsnd", uri_, ESRCH,
                            "client " + std::to_string(sender_.pid) +
                                " is gone and the queue is full; its reply is dropped");
        pause_or_cancel(backoff.next(), cancellation_, uri_);
      }
    } catch (const SystemError& error) {
      if (!removed(error)) throw;
      throw SystemError("msgsnd", uri_, error.code(), "the queue has been removed");
    }
  }

  Received receive(std::chrono::nanoseconds timeout) override {
    if (!backlog_.empty()) {
      current_ = std::move(backlog_.front());
      backlog_.pop_front();
      return request({current_.data(), current_.size()});
    }
    // Always by retrying, even without a deadline, so an idle server can
    // clear replies that gone clients left in the queue: they would
    // otherwise fill it for good.
    try {
      auto deadline = detail::deadline_after(timeout);
      detail::RetryBackoff backoff;
      for (;;) {
        if (auto size = queue_.try_receive(*incoming_, kRequestType))
          return request(incoming_->body().first(*size));
        auto now = Clock::now();
        if (now >= deadline) return Received{ReceiveStatus::timed_out, {}};
        if (now >= next_check_) {
          drop_replies_of_gone_clients();
          next_check_ = now + kGoneClientCheckInterval;
        }
        pause_or_cancel(backoff.next(deadline - now), cancellation_, uri_);
      }
    } catch (const SystemError& error) {
      if (removed(error)) return Received{ReceiveStatus::closed, {}};
      if (error.code() != E2BIG) throw;
      queue_.discard_next(kRequestType);
      throw MessageTooLarge("receive(" + uri_ +
                            "): discarded a request larger than the maximum of " +
                            std::to_string(max_message_size_) + " bytes (raise it with ?max=)");
    }
  }

 private:
  struct Client {
    std::uint32_t pid;
    std::uint32_t instance;
  };

  Received request(std::span<const std::byte> bytes) {
    QueueRequestHeader header{};
    if (bytes.size() >= kQueueHeaderSize) std::memcpy(&header, bytes.data(), kQueueHeaderSize);
    if (bytes.size() < kQueueHeaderSize || header.magic != kQueueRequestMagic)
      throw ProtocolError("receive(" + uri_ + "): discarded a " + std::to_string(bytes.size()) +
                          "-byte request without conduit's header (sent by another program?); "
                          "nobody can be answered for it");
    sender_ = Client{header.pid, header.instance};
    has_sender_ = true;
    return Received{ReceiveStatus::message, bytes.subspan(kQueueHeaderSize)};
  }

  // Moves requests waiting in the queue into the backlog; true if any.
  bool set_requests_aside() {
    if (!spare_) spare_ = std::make_unique<SysVMessageBuffer>(incoming_->capacity());
    bool moved = false;
    while (backlog_.size() < kBacklogLimit) {
      std::optional<std::size_t> size;
      try {
        size = queue_.try_receive(*spare_, kRequestType);
      } catch (const SystemError& error) {
        if (error.code() != E2BIG) throw;
        queue_.discard_next(kRequestType);  // receive() would discard it too
        moved = true;
        continue;
      }
      if (!size) break;
      auto body = spare_->body().first(*size);
      backlog_.emplace_back(body.begin(), body.end());
      moved = true;
    }
    return moved;
  }

  // Removes unread replies to clients that no longer exist; true if any.
  bool drop_replies_of_gone_clients() {
    bool dropped = false;
    for (auto it = recent_.begin(); it != recent_.end();) {
      if (!process_gone(static_cast<pid_t>(it->pid))) {
        ++it;
        continue;
      }
      long type = reply_type(it->pid, it->instance);
      while (queue_.discard_next(type)) dropped = true;
      it = recent_.erase(it);
    }
    return dropped;
  }

  void remember(const Client& client) {
    auto found = std::find_if(recent_.begin(), recent_.end(), [&](const Client& c) {
      return c.pid == client.pid && c.instance == client.instance;
    });
    if (found != recent_.end()) {
      if (found + 1 != recent_.end()) std::rotate(found, found + 1, recent_.end());
      return;
    }
    if (recent_.size() >= kRecentClients) recent_.erase(recent_.begin());
    recent_.push_back(client);
  }

  SysVMessageQueue queue_;                       // attached; the listener owns the queue
  std::unique_ptr<SysVMessageBuffer> incoming_;  // header, then the request
  std::unique_ptr<SysVMessageBuffer> outgoing_;
  std::unique_ptr<SysVMessageBuffer> spare_;
  std::deque<std::vector<std::byte>> backlog_;
  std::vector<std::byte> current_;
  Client sender_{};
  bool has_sender_ = false;
  std::vector<Client> recent_;  // least recently answered first
  Clock::time_point next_check_ = Clock::now() + kGoneClientCheckInterval;
};

class SysVQueueListener final : public ListenerImpl {
 public:
  SysVQueueListener(const Uri& uri, const Settings& settings, const ChannelOptions& options)
      : uri_(uri.str()), cancellation_(options.cancellation) {
    key_t key = key_for(uri);
    SysVQueueLimits limits = SysVQueueLimits::current();
    std::size_t room = limits.msgmnb > 0 ? static_cast<std::size_t>(limits.msgmnb) : 16384;
    max_message_size_ = message_limit(room, uri, settings, "listen");
    try {
      queue_ = SysVMessageQueue::create(key, settings.mode);
    } catch (const SystemError& error) {
      if (error.code() != EEXIST) throw;
      take_over(key, settings.mode, error);
    }
    OwnerRecord record{kOwnerMagic, static_cast<std::uint32_t>(::getpid()), pid_namespace()};
    queue_.try_send(kOwnerType, std::as_bytes(std::span(&record, 1)));
  }

  std::optional<Channel> accept(std::chrono::nanoseconds) override {
    if (accepted_)
      throw Error("accept(" + uri_ + "): a message queue server has one shared channel");
    accepted_ = true;
    return Channel(std::make_unique<SysVQueueServer>(SysVMessageQueue::attach(queue_.id()),
                                                     max_message_size_, uri_, cancellation_));
  }
  PeerModel peer_model() const override { return PeerModel::single; }
  std::string uri() const override { return uri_; }

 private:
  // Replaces the queue a killed server left behind (its owner record names a
  // process that is gone); refuses a live server's, and a queue that names
  // no server.
  void take_over(key_t key, mode_t mode, const SystemError& exists) {
    OwnerRecord server = server_of(SysVMessageQueue::open(key));
    if (server.pid == 0)
      throw SystemError("listen", uri_, EADDRINUSE,
                        hint_of(exists) +
                            " (it names no conduit server, and a server does not take over "
                            "such a queue)");
    if (!gone(server))
      throw SystemError("listen", uri_, EADDRINUSE,
                        "another server (pid " + std::to_string(server.pid) +
                            ") is serving on this queue; stop it or choose another key");
    SysVMessageQueue::open(key).remove();
    queue_ = SysVMessageQueue::create(key, mode);
  }

  std::string uri_;
  const Cancellation* cancellation_;
  std::size_t max_message_size_ = 0;
  SysVMessageQueue queue_;  // owned: removed with the listener
  bool accepted_ = false;
};

}  // namespace

std::unique_ptr<Transport> connect_sysv_queue(const Uri& uri, const Settings& settings,
                                              const ChannelOptions& options) {
  return std::make_unique<SysVQueueClient>(uri, settings, options);
}

std::unique_ptr<ListenerImpl> listen_sysv_queue(const Uri& uri, const Settings& settings,
                                                const ChannelOptions& options) {
  return std::make_unique<SysVQueueListener>(uri, settings, options);
}

}  // namespace conduit::ipc
