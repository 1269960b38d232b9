// mq:/name channels (see queue_transport.hpp), and the channel instance
// numbers both queue schemes use.
#include <fcntl.h>
#include <mqueue.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "conduit/error.hpp"
#include "conduit/ipc/posix_message_queue.hpp"
#include "leftovers.hpp"
#include "queue_transport.hpp"
#include "slow_readers.hpp"

namespace conduit::ipc {

// ---- ChannelInstance ----------------------------------------------------------

namespace {

struct InstanceRegistry {
  std::mutex mutex;
  pid_t pid = 0;  // a forked child starts afresh
  std::set<std::uint32_t> used;
};

InstanceRegistry& instance_registry() {
  static InstanceRegistry registry;
  return registry;
}

}  // namespace

ChannelInstance::ChannelInstance() {
  InstanceRegistry& registry = instance_registry();
  std::lock_guard lock(registry.mutex);
  if (registry.pid != ::getpid()) {
    registry.used.clear();
    registry.pid = ::getpid();
  }
  while (registry.used.count(number_) != 0) ++number_;
  registry.used.insert(number_);
  held_ = true;
}

ChannelInstance::ChannelInstance(ChannelInstance&& other) noexcept
    : number_(other.number_), held_(std::exchange(other.held_, false)) {}

ChannelInstance& ChannelInstance::operator=(ChannelInstance&& other) noexcept {
  if (this != &other) {
    release();
    number_ = other.number_;
    held_ = std::exchange(other.held_, false);
  }
  return *this;
}

ChannelInstance::~ChannelInstance() {
  release();
}

void ChannelInstance::release() noexcept {
  if (!held_) return;
  held_ = false;
  InstanceRegistry& registry = instance_registry();
  std::lock_guard lock(registry.mutex);
  if (registry.pid == ::getpid()) registry.used.erase(number_);
}

// ---- mq: ------------------------------------------------------------------------

namespace {

// How often a blocked channel looks whether its peer is still there.
constexpr std::chrono::milliseconds kPeerCheckInterval{200};
// Reply queues the server keeps open, least recently used closed first.
constexpr std::size_t kReplyQueueCache = 64;
// Default attributes: what an unprivileged process may ask for on a machine
// with the kernel's default limits.
constexpr long kDefaultMaxMessages = 10;
constexpr long kDefaultMessageSize = 8192;

std::string reply_queue_name(const std::string& name, std::uint32_t pid, std::uint32_t instance) {
  std::string reply = name + "." + std::to_string(pid);
  if (instance != 0) reply += "." + std::to_string(instance);
  return reply;
}

ino_t inode_of(int fd) {
  struct stat st {};
  return ::fstat(fd, &st) == 0 ? st.st_ino : 0;
}

std::uint32_t tag_of(ino_t inode) {
  return static_cast<std::uint32_t>(inode);
}

// True when no process holds the exclusive lock its owner takes on queue fd:
// the owner closed it or died.
bool owner_gone(int fd) {
  if (::flock(fd, LOCK_SH | LOCK_NB) != 0) return false;
  ::flock(fd, LOCK_UN);
  return true;
}

// Unlinks `name` if it still names the queue with `inode`.
void unlink_if_same(const std::string& name, ino_t inode) {
  mqd_t fd = ::mq_open(name.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd == static_cast<mqd_t>(-1)) return;
  bool same = inode_of(fd) == inode;
  ::mq_close(fd);
  if (same) ::mq_unlink(name.c_str());
}

// Removes the reply queues "/name.PID" and "/name.PID.N" that clients killed
// before they could remove them left behind: their process is gone and
// nobody holds the lock a client keeps on its own queue. `directory` is the
// mqueue filesystem (open_mqueue_directory()); without it, nothing is done.
void remove_reply_queues_of_gone_clients(int directory, const std::string& name) {
  if (directory < 0) return;
  std::string prefix = name.substr(1) + ".";
  for (const std::string& entry : directory_entries(directory)) {
    std::string_view rest;
    std::optional<pid_t> pid = pid_after(entry, prefix, &rest);
    if (!pid || rest.find_first_not_of("0123456789") != std::string_view::npos ||
        !process_gone(*pid))
      continue;
    std::string queue = "/" + entry;
    mqd_t fd = ::mq_open(queue.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd == static_cast<mqd_t>(-1)) continue;
    bool unused = owner_gone(fd);
    ino_t inode = inode_of(fd);
    ::mq_close(fd);
    if (unused) unlink_if_same(queue, inode);
  }
}

// The time until the deadline, for the queue's own timed calls.
std::chrono::nanoseconds time_left(const Deadline& deadline) {
  if (deadline.never()) return std::chrono::hours(24 * 365);
  return std::chrono::milliseconds(deadline.poll_timeout_ms());
}

// Holds an exclusive lock on a queue its owner keeps open, so peers can tell
// whether the owner is alive.
void lock_as_owner(const PosixMessageQueue& queue) {
  ::flock(queue.fd(), LOCK_EX | LOCK_NB);
}

// The client side: sends requests to "/name", receives replies on its own
// queue.
class PosixQueueClient final : public Transport {
 public:
  PosixQueueClient(const Uri& uri, const Settings& settings, const ChannelOptions& options)
      : Transport(uri.str(), settings.max_message_size, options.cancellation) {
    try {
      request_ = PosixMessageQueue::open(uri.path, QueueAccess::send_only);
    } catch (const SystemError& error) {
      if (error.code() != ENOENT) throw;
      throw SystemError("connect", uri_, ENOENT,
                        "no queue " + uri.path +
                            " exists; is the server running (conduit ipc serve " + uri.str() +
                            ")?");
    }
    PosixQueueAttributes attributes = request_.attributes();
    if (attributes.message_size < static_cast<long>(kQueueHeaderSize))
      throw Error("connect(" + uri_ + "): queue " + uri.path + " carries messages of at most " +
                  std::to_string(attributes.message_size) +
                  " bytes, too small for a conduit channel; was it created by another program?");
    std::size_t server_max = static_cast<std::size_t>(attributes.message_size) - kQueueHeaderSize;
    if (uri.has_option("max") && settings.max_message_size > server_max)
      throw Error("connect(" + uri_ + "): the server's queue carries messages of at most " +
                  std::to_string(server_max) + " bytes (its message size of " +
                  std::to_string(attributes.message_size) +
                  " less conduit's 16-byte header); ask for at most that with ?max=");
    max_message_size_ = std::min(settings.max_message_size, server_max);
    create_reply_queue(uri.path, attributes, settings.mode);
    lock_as_owner(reply_);

    QueueRequestHeader header{kQueueRequestMagic, static_cast<std::uint32_t>(::getpid()),
                              instance_.number(), tag_of(inode_of(reply_.fd()))};
    capacity_ = static_cast<std::size_t>(attributes.message_size);
    outgoing_ = std::make_unique_for_overwrite<std::byte[]>(capacity_);
    incoming_ = std::make_unique_for_overwrite<std::byte[]>(capacity_);
    std::memcpy(outgoing_.get(), &header, sizeof header);
  }

  void send(std::span<const std::byte> message) override {
    check_send_size(message.size());
    if (!message.empty())
      std::memcpy(outgoing_.get() + kQueueHeaderSize, message.data(), message.size());
    std::span<const std::byte> request(outgoing_.get(), kQueueHeaderSize + message.size());
    for (;;) {
      if (request_.try_send(request)) return;
      if (!wait_for_fd(request_.fd(), POLLOUT, Deadline(kPeerCheckInterval), cancellation_, uri_) &&
          owner_gone(request_.fd()))
        throw SystemError("mq_send", uri_, EPIPE,
                          "the server is gone (its queue is full and no process serves it)");
    }
  }

  Received receive(std::chrono::nanoseconds timeout) override {
    Deadline deadline(timeout);
    for (;;) {
      // Without a Cancellation to watch, wait inside mq_timedreceive itself:
      // one system call per message, as a bare loop would make.
      std::optional<PosixQueueMessage> reply =
          cancellation_ ? reply_.try_receive({incoming_.get(), capacity_})
                        : reply_.receive_for({incoming_.get(), capacity_},
                                             time_left(deadline.sooner(kPeerCheckInterval)));
      if (reply) {
        if (reply->size > max_message_size_)
          throw MessageTooLarge("receive(" + uri_ + "): discarded a " +
                                std::to_string(reply->size) + "-byte message; the maximum is " +
                                std::to_string(max_message_size_) + " (raise it with ?max=)");
        return Received{ReceiveStatus::message, {incoming_.get(), reply->size}};
      }
      bool expired = deadline.poll_timeout_ms() == 0;
      bool ready = !expired && cancellation_ &&
                   wait_for_fd(reply_.fd(), POLLIN, deadline.sooner(kPeerCheckInterval),
                               cancellation_, uri_);
      if (!ready) {
        // The server removes its queue when it stops; one that was killed
        // leaves it, but no longer holds its lock either way.
        if (owner_gone(request_.fd()) && reply_.pending() == 0)
          return Received{ReceiveStatus::closed, {}};
        if (expired || deadline.poll_timeout_ms() == 0)
          return Received{ReceiveStatus::timed_out, {}};
      }
    }
  }

 private:
  // Creates "/name.PID[.N]" like the server's queue. A name left behind by a
  // killed process with the same pid (nobody holds its lock) is replaced;
  // one in use (a process with this pid in another PID namespace) is
  // skipped for the next instance number.
  void create_reply_queue(const std::string& name, const PosixQueueAttributes& attributes,
                          mode_t mode) {
    std::vector<ChannelInstance> taken;
    for (int attempt = 0;; ++attempt) {
      std::string reply_name =
          reply_queue_name(name, static_cast<std::uint32_t>(::getpid()), instance_.number());
      try {
        reply_ = PosixMessageQueue::create(reply_name, QueueAccess::receive_only, attributes, mode);
        return;
      } catch (const SystemError& error) {
        if (error.code() != EEXIST || attempt >= 16) throw;
        mqd_t stale = ::mq_open(reply_name.c_str(), O_RDONLY | O_CLOEXEC);
        if (stale != static_cast<mqd_t>(-1)) {
          bool unused = owner_gone(stale);
          ::mq_close(stale);
          if (unused) {
            PosixMessageQueue::unlink(reply_name);
            continue;
          }
        }
        taken.push_back(std::move(instance_));
        instance_ = ChannelInstance();
      }
    }
  }

  PosixMessageQueue request_;
  ChannelInstance instance_;
  PosixMessageQueue reply_;  // owned: removed with the channel
  std::size_t capacity_ = 0;
  std::unique_ptr<std::byte[]> outgoing_;  // header, then the message
  std::unique_ptr<std::byte[]> incoming_;
};

// The server's shared channel: receives every client's requests, replies to
// the sender of the last one.
class PosixQueueServer final : public Transport {
 public:
  // mqueue_directory: where to look for reply queues that killed clients
  // left behind (may be empty).
  PosixQueueServer(PosixMessageQueue requests, std::string name, std::string uri,
                   const ChannelOptions& options, FileDescriptor mqueue_directory)
      : Transport(std::move(uri), 0, options.cancellation),
        requests_(std::move(requests)),
        name_(std::move(name)),
        mqueue_directory_(std::move(mqueue_directory)),
        slow_readers_(options.reply_timeout) {
    capacity_ = static_cast<std::size_t>(requests_.attributes().message_size);
    max_message_size_ = capacity_ - kQueueHeaderSize;
    incoming_ = std::make_unique_for_overwrite<std::byte[]>(capacity_);
  }

  // Removes the reply queues of clients that died without removing them.
  ~PosixQueueServer() override {
    for (ReplyQueue& reply : replies_) forget(reply);
  }

  void send(std::span<const std::byte> message) override {
    check_send_size(message.size());
    if (!has_sender_)
      throw Error("send(" + uri_ +
                  "): no client has sent a message yet, so there is nobody to reply to");
    ReplyQueue& reply = reply_queue(sender_);
    Deadline deadline(slow_readers_.patience_for(reply.name));
    for (;;) {
      if (reply.queue.try_send(message)) {
        slow_readers_.delivered(reply.name);
        return;
      }
      if (wait_for_fd(reply.queue.fd(), POLLOUT, deadline.sooner(kPeerCheckInterval), cancellation_,
                      uri_))
        continue;
      if (owner_gone(reply.queue.fd())) {
        std::string name = reply.name;
        drop(reply);
        throw SystemError("mq_send", name, EPIPE,
                          "client " + std::to_string(sender_.pid) +
                              " is gone without reading its replies; its queue is removed");
      }
      if (deadline.poll_timeout_ms() == 0) {
        slow_readers_.dropped(reply.name);
        return;
      }
    }
  }

  std::uint64_t dropped_replies() const override { return slow_readers_.dropped_count(); }

  Received receive(std::chrono::nanoseconds timeout) override {
    Deadline deadline(timeout);
    for (;;) {
      auto now = std::chrono::steady_clock::now();
      if (now >= next_sweep_) {
        remove_reply_queues_of_gone_clients(mqueue_directory_.get(), name_);
        next_sweep_ = now + kLeftoverSweepInterval;
      }
      Deadline wait =
          deadline.sooner(std::chrono::ceil<std::chrono::milliseconds>(next_sweep_ - now));
      std::optional<PosixQueueMessage> request =
          cancellation_ || deadline.poll_timeout_ms() == 0
              ? requests_.try_receive({incoming_.get(), capacity_})
              : requests_.receive_for({incoming_.get(), capacity_}, time_left(wait));
      if (request) {
        QueueRequestHeader header{};
        if (request->size >= kQueueHeaderSize)
          std::memcpy(&header, incoming_.get(), kQueueHeaderSize);
        if (request->size < kQueueHeaderSize || header.magic != kQueueRequestMagic)
          throw ProtocolError("receive(" + uri_ + "): discarded a " +
                              std::to_string(request->size) +
                              "-byte message without conduit's request header (sent by another "
                              "program?); nobody can be answered for it");
        sender_ = header;
        has_sender_ = true;
        return Received{ReceiveStatus::message,
                        {incoming_.get() + kQueueHeaderSize, request->size - kQueueHeaderSize}};
      }
      if (deadline.poll_timeout_ms() == 0) return Received{ReceiveStatus::timed_out, {}};
      if (cancellation_) wait_for_fd(requests_.fd(), POLLIN, wait, cancellation_, uri_);
    }
  }

 private:
  struct ReplyQueue {
    std::uint32_t pid = 0;
    std::uint32_t instance = 0;
    std::uint32_t tag = 0;
    std::string name;
    ino_t inode = 0;
    PosixMessageQueue queue;
    std::uint64_t last_used = 0;
  };

  // The open reply queue of the client `header` names, opening it (and
  // closing the least recently used one) when needed.
  ReplyQueue& reply_queue(const QueueRequestHeader& header) {
    auto found = std::find_if(replies_.begin(), replies_.end(), [&](const ReplyQueue& reply) {
      return reply.pid == header.pid && reply.instance == header.instance;
    });
    if (found != replies_.end() && found->tag == header.tag) {
      found->last_used = ++uses_;
      return *found;
    }
    if (found != replies_.end()) drop(*found);  // an earlier client with this pid
    ReplyQueue reply;
    reply.pid = header.pid;
    reply.instance = header.instance;
    reply.tag = header.tag;
    reply.name = reply_queue_name(name_, header.pid, header.instance);
    try {
      reply.queue = PosixMessageQueue::open(reply.name, QueueAccess::send_only);
    } catch (const SystemError& error) {
      if (error.code() != ENOENT) throw;
      throw SystemError(
          "mq_open", reply.name, ENOENT,
          "client " + std::to_string(header.pid) + " is gone: its reply queue no longer exists");
    }
    reply.inode = inode_of(reply.queue.fd());
    if (tag_of(reply.inode) != header.tag)
      throw Error("send(" + uri_ + "): reply queue " + reply.name +
                  " no longer belongs to the client that sent the message (it left, and another "
                  "with the same pid came); not replying");
    reply.last_used = ++uses_;
    if (replies_.size() >= kReplyQueueCache) {
      auto oldest = std::min_element(
          replies_.begin(), replies_.end(),
          [](const ReplyQueue& a, const ReplyQueue& b) { return a.last_used < b.last_used; });
      drop(*oldest);
    }
    replies_.push_back(std::move(reply));
    return replies_.back();
  }

  // Removes the reply queue of a client that is gone but left it behind.
  static void forget(ReplyQueue& reply) {
    if (reply.queue && owner_gone(reply.queue.fd())) unlink_if_same(reply.name, reply.inode);
  }

  void drop(ReplyQueue& reply) {
    forget(reply);
    std::swap(reply, replies_.back());
    replies_.pop_back();
  }

  PosixMessageQueue requests_;  // a duplicate of the listener's descriptor
  std::string name_;
  FileDescriptor mqueue_directory_;
  std::chrono::steady_clock::time_point next_sweep_ = std::chrono::steady_clock::now();
  std::size_t capacity_ = 0;
  std::unique_ptr<std::byte[]> incoming_;
  QueueRequestHeader sender_{};
  bool has_sender_ = false;
  std::vector<ReplyQueue> replies_;
  std::uint64_t uses_ = 0;
  SlowReaders slow_readers_;
};

class PosixQueueListener final : public ListenerImpl {
 public:
  PosixQueueListener(const Uri& uri, const Settings& settings, const ChannelOptions& options)
      : uri_(uri.str()), name_(uri.path), options_(options) {
    PosixQueueLimits limits = PosixQueueLimits::current();
    PosixQueueAttributes attributes;
    attributes.max_messages = kDefaultMaxMessages;
    if (limits.msg_max >= 1)
      attributes.max_messages = std::min(attributes.max_messages, limits.msg_max);
    std::size_t wanted = settings.max_message_size + kQueueHeaderSize;
    if (uri.has_option("max")) {
      attributes.message_size = static_cast<long>(wanted);
    } else {
      std::size_t size = std::min<std::size_t>(kDefaultMessageSize, wanted);
      if (limits.msgsize_max >= static_cast<long>(kQueueHeaderSize))
        size = std::min<std::size_t>(size, static_cast<std::size_t>(limits.msgsize_max));
      attributes.message_size = static_cast<long>(size);
    }
    try {
      requests_ = create(attributes, settings.mode);
    } catch (const SystemError& error) {
      if (error.code() != EINVAL || !uri.has_option("max") || limits.msgsize_max < 0 ||
          attributes.message_size <= limits.msgsize_max)
        throw;
      std::string needed = std::to_string(attributes.message_size);
      throw SystemError(
          "listen", uri_, EINVAL,
          "?max=" + std::to_string(settings.max_message_size) + " needs queue messages of " +
              needed + " bytes (with conduit's " + std::to_string(kQueueHeaderSize) +
              "-byte header), above the limit fs.mqueue.msgsize_max = " +
              std::to_string(limits.msgsize_max) +
              " (/proc/sys/fs/mqueue/msgsize_max); raise it with `sysctl -w "
              "fs.mqueue.msgsize_max=" +
              needed +
              "`; it applies per IPC namespace, so a process in its own (`unshare --ipc`) may "
              "raise it there");
    }
    lock_as_owner(requests_);
    mqueue_directory_ = open_mqueue_directory();
    remove_reply_queues_of_gone_clients(mqueue_directory_.get(), name_);
  }

  std::optional<Channel> accept(std::chrono::nanoseconds) override {
    if (accepted_)
      throw Error("accept(" + uri_ + "): a message queue server has one shared channel");
    accepted_ = true;
    int fd = ::fcntl(requests_.fd(), F_DUPFD_CLOEXEC, 3);
    if (fd < 0) throw SystemError("dup", uri_, errno);
    return Channel(
        std::make_unique<PosixQueueServer>(PosixMessageQueue::adopt(FileDescriptor(fd), name_),
                                           name_, uri_, options_, std::move(mqueue_directory_)));
  }
  PeerModel peer_model() const override { return PeerModel::single; }
  std::string uri() const override { return uri_; }

 private:
  // Creates the request queue, replacing one left behind by a server that
  // was killed (no process holds its lock).
  PosixMessageQueue create(const PosixQueueAttributes& attributes, mode_t mode) {
    try {
      return PosixMessageQueue::create(name_, QueueAccess::receive_only, attributes, mode);
    } catch (const SystemError& error) {
      if (error.code() != EEXIST) throw;
    }
    mqd_t existing = ::mq_open(name_.c_str(), O_RDONLY | O_CLOEXEC);
    if (existing != static_cast<mqd_t>(-1)) {
      // A client checking on the server holds a shared lock for a moment.
      bool unused = false;
      for (int attempt = 0; attempt < 5 && !unused; ++attempt) {
        unused = owner_gone(existing);
        if (!unused) std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
      ::mq_close(existing);
      if (!unused)
        throw SystemError(
            "listen", uri_, EADDRINUSE,
            "another process is serving queue " + name_ + "; stop it or choose another name");
    }
    PosixMessageQueue::unlink(name_);
    return PosixMessageQueue::create(name_, QueueAccess::receive_only, attributes, mode);
  }

  std::string uri_;
  std::string name_;
  ChannelOptions options_;
  PosixMessageQueue requests_;       // owned: removed with the listener
  FileDescriptor mqueue_directory_;  // handed to the channel
  bool accepted_ = false;
};

}  // namespace

std::unique_ptr<Transport> connect_posix_queue(const Uri& uri, const Settings& settings,
                                               const ChannelOptions& options) {
  return std::make_unique<PosixQueueClient>(uri, settings, options);
}

std::unique_ptr<ListenerImpl> listen_posix_queue(const Uri& uri, const Settings& settings,
                                                 const ChannelOptions& options) {
  return std::make_unique<PosixQueueListener>(uri, settings, options);
}

}  // namespace conduit::ipc
