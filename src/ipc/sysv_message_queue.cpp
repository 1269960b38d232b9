#include "conduit/ipc/sysv_message_queue.hpp"

#include <sys/msg.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <thread>

#include "conduit/error.hpp"
#include "kernel_setting.hpp"
#include "retry_backoff.hpp"
#include "sysv_key.hpp"

namespace conduit::ipc {
namespace {

using Clock = std::chrono::steady_clock;

long read_long(std::string_view setting) {
  std::string text = detail::kernel_setting(setting);
  long value = -1;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc() ? value : -1;
}

std::string queue_target(int id) {
  return "msqid " + std::to_string(id);
}

int access_bits(QueueAccess access) {
  switch (access) {
    case QueueAccess::receive_only:
      return 0400;
    case QueueAccess::send_only:
      return 0200;
    case QueueAccess::send_and_receive:
      return 0600;
  }
  return 0600;
}

// "queue 5 (owner uid 0, mode 600, 3 messages waiting): another process may
// be using it, ..." for the error about an existing queue, as far as this
// user may see it.
std::string describe_existing(key_t key) {
  int id = ::msgget(key, 0);
  std::string queue = "a queue";
  std::string remove = "`ipcrm -Q KEY` removes it";
  if (id >= 0) {
    queue = "queue " + std::to_string(id);
    remove = "`ipcrm -q " + std::to_string(id) + "` removes it";
    msqid_ds info{};
    if (::msgctl(id, IPC_STAT, &info) == 0) {
      char mode[8];
      std::snprintf(mode, sizeof mode, "%o", static_cast<unsigned>(info.msg_perm.mode & 0777));
      queue += " (owner uid " + std::to_string(info.msg_perm.uid) + ", mode " + mode + ", " +
               std::to_string(info.msg_qnum) + " messages waiting)";
    }
  }
  return queue +
         ": another process may be using it, or it is left over from an earlier one "
         "(queues persist until removed; " +
         remove + "); or choose another key";
}

const char* kRemoved = "the queue has been removed";

// What to say when msgsnd failed with EINVAL for a valid type: the message
// is above kernel.msgmax, or the queue is gone.
[[noreturn]] void throw_send_einval(int id, std::size_t size) {
  long msgmax = read_long("kernel.msgmax");
  if (msgmax >= 0 && size > static_cast<std::size_t>(msgmax))
    throw MessageTooLarge("msgsnd(" + queue_target(id) + "): a message of " + std::to_string(size) +
                          " bytes exceeds the limit kernel.msgmax = " + std::to_string(msgmax) +
                          " bytes per message (/proc/sys/kernel/msgmax); raise it with `sysctl -w "
                          "kernel.msgmax=" +
                          std::to_string(size) +
                          "` (it applies per IPC namespace: a process in its own, `unshare "
                          "--ipc`, may raise it there)");
  throw SystemError("msgsnd", queue_target(id), EINVAL, kRemoved);
}

// A message larger than the queue's msg_qbytes never fits: msgsnd would
// wait for room forever.
void check_fits(int id, std::size_t size) {
  msqid_ds info{};
  if (::msgctl(id, IPC_STAT, &info) < 0) return;
  if (size > info.msg_qbytes)
    throw MessageTooLarge(
        "msgsnd(" + queue_target(id) + "): a message of " + std::to_string(size) +
        " bytes can never fit in this queue, which holds at most " +
        std::to_string(info.msg_qbytes) +
        " bytes (its msg_qbytes, from kernel.msgmnb = " + detail::kernel_setting("kernel.msgmnb") +
        " when it was created; raise kernel.msgmnb with sysctl before creating the queue)");
}

void pause_for(std::chrono::nanoseconds pause) {
  if (pause == std::chrono::nanoseconds::zero())
    std::this_thread::yield();
  else
    std::this_thread::sleep_for(pause);
}

}  // namespace

std::optional<key_t> parse_sysv_key(std::string_view text) {
  bool hex = text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X');
  if (hex) text.remove_prefix(2);
  unsigned long long value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, hex ? 16 : 10);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value == 0 ||
      value > 0xffffffffull)
    return std::nullopt;
  return static_cast<key_t>(static_cast<std::uint32_t>(value));
}

SysVQueueLimits SysVQueueLimits::current() {
  SysVQueueLimits limits;
  limits.msgmax = read_long("kernel.msgmax");
  limits.msgmnb = read_long("kernel.msgmnb");
  limits.msgmni = read_long("kernel.msgmni");
  return limits;
}

SysVMessageBuffer::SysVMessageBuffer(std::size_t capacity)
    : storage_(std::make_unique<long[]>(1 + (capacity + sizeof(long) - 1) / sizeof(long))),
      capacity_(capacity) {}

SysVMessageQueue SysVMessageQueue::create(key_t key, mode_t mode) {
  const std::string target = detail::describe_sysv_key(key);
  int id = ::msgget(key, IPC_CREAT | IPC_EXCL | static_cast<int>(mode & 0777));
  if (id < 0) {
    int code = errno;
    switch (code) {
      case EEXIST:
        throw SystemError(
            "msgget(IPC_CREAT|IPC_EXCL)", target, code,
            detail::describe_sysv_key(key) + " already names " + describe_existing(key));
      case ENOSPC:
        throw SystemError("msgget(IPC_CREAT|IPC_EXCL)", target, code,
                          "this IPC namespace has reached " +
                              detail::describe_kernel_setting("kernel.msgmni") +
                              " queues; remove queues nobody uses (`ipcs -q`, `ipcrm -q ID`) or "
                              "raise it with `sysctl -w kernel.msgmni=N`");
      case EACCES:
        throw SystemError("msgget(IPC_CREAT|IPC_EXCL)", target, code,
                          "a queue with this key exists and this user may not use it");
      default:
        throw SystemError("msgget(IPC_CREAT|IPC_EXCL)", target, code);
    }
  }
  SysVMessageQueue queue;
  queue.id_ = id;
  queue.key_ = key;
  queue.owner_ = true;
  queue.creator_ = ::getpid();
  return queue;
}

SysVMessageQueue SysVMessageQueue::open(key_t key, QueueAccess access) {
  const std::string target = detail::describe_sysv_key(key);
  int id = ::msgget(key, access_bits(access));
  if (id < 0) {
    int code = errno;
    switch (code) {
      case ENOENT:
        throw SystemError("msgget", target, code,
                          "no queue has this key (has its creator started?)");
      case EACCES:
        throw SystemError("msgget", target, code,
                          std::string("the queue's permissions do not grant this user ") +
                              (access == QueueAccess::receive_only ? "receiving"
                               : access == QueueAccess::send_only  ? "sending"
                                                                   : "sending and receiving"));
      default:
        throw SystemError("msgget", target, code);
    }
  }
  SysVMessageQueue queue;
  queue.id_ = id;
  queue.key_ = key;
  return queue;
}

SysVMessageQueue SysVMessageQueue::attach(int id) {
  msqid_ds info{};
  if (::msgctl(id, IPC_STAT, &info) < 0 && errno != EACCES) {
    int code = errno;
    throw SystemError("msgctl(IPC_STAT)", queue_target(id), code,
                      code == EINVAL || code == EIDRM ? "no queue has this id" : "");
  }
  SysVMessageQueue queue;
  queue.id_ = id;
  queue.key_ = info.msg_perm.__key;
  return queue;
}

SysVMessageQueue::SysVMessageQueue(SysVMessageQueue&& other) noexcept
    : id_(std::exchange(other.id_, -1)),
      key_(other.key_),
      owner_(std::exchange(other.owner_, false)),
      creator_(other.creator_),
      staging_(std::move(other.staging_)) {}

SysVMessageQueue& SysVMessageQueue::operator=(SysVMessageQueue&& other) noexcept {
  if (this != &other) {
    if (owner_ && id_ >= 0 && ::getpid() == creator_) ::msgctl(id_, IPC_RMID, nullptr);
    id_ = std::exchange(other.id_, -1);
    key_ = other.key_;
    owner_ = std::exchange(other.owner_, false);
    creator_ = other.creator_;
    staging_ = std::move(other.staging_);
  }
  return *this;
}

SysVMessageQueue::~SysVMessageQueue() {
  // Only the creating process removes the queue, not a forked child that
  // inherited this object.
  if (owner_ && id_ >= 0 && ::getpid() == creator_) ::msgctl(id_, IPC_RMID, nullptr);
}

void SysVMessageQueue::remove() {
  owner_ = false;
  if (id_ < 0) return;
  if (::msgctl(id_, IPC_RMID, nullptr) < 0) {
    int code = errno;
    if (code == EINVAL || code == EIDRM) return;
    throw SystemError(
        "msgctl(IPC_RMID)", queue_target(id_), code,
        code == EPERM ? "only the queue's owner or creator (or root) may remove it" : "");
  }
}

SysVQueueStatus SysVMessageQueue::status() const {
  msqid_ds info{};
  if (::msgctl(id_, IPC_STAT, &info) < 0) {
    int code = errno;
    throw SystemError("msgctl(IPC_STAT)", queue_target(id_), code,
                      code == EACCES                    ? "this user may not read the queue"
                      : code == EINVAL || code == EIDRM ? kRemoved
                                                        : "");
  }
  SysVQueueStatus status;
  status.messages = info.msg_qnum;
  status.bytes = info.__msg_cbytes;
  status.max_bytes = info.msg_qbytes;
  status.last_sender = info.msg_lspid;
  status.last_receiver = info.msg_lrpid;
  status.owner_uid = info.msg_perm.uid;
  status.mode = info.msg_perm.mode & 0777;
  return status;
}

namespace {

enum class Wait { none, until_deadline, forever };

bool send_until(int id, const SysVMessageBuffer& message, std::size_t size, Wait wait,
                Clock::time_point deadline) {
  if (message.type() < 1)
    throw Error("msgsnd(" + queue_target(id) + "): message type " + std::to_string(message.type()) +
                " is invalid; types start at 1");
  if (size > message.capacity())
    throw Error("msgsnd(" + queue_target(id) + "): size " + std::to_string(size) +
                " exceeds the buffer's capacity of " + std::to_string(message.capacity()));
  detail::RetryBackoff backoff;
  bool checked_fit = false;
  int flags = IPC_NOWAIT;
  for (;;) {
    if (::msgsnd(id, message.raw(), size, flags) == 0) return true;
    int code = errno;
    if (code == EINTR) continue;
    if (code == EAGAIN) {
      if (!checked_fit) {
        check_fits(id, size);
        checked_fit = true;
      }
      if (wait == Wait::none) return false;
      if (wait == Wait::forever) {
        flags = 0;
        continue;
      }
      auto left = deadline - Clock::now();
      if (left <= std::chrono::nanoseconds::zero()) return false;
      pause_for(backoff.next(left));
      continue;
    }
    if (code == EINVAL) throw_send_einval(id, size);
    throw SystemError("msgsnd", queue_target(id), code,
                      code == EIDRM    ? kRemoved
                      : code == EACCES ? "the queue's permissions do not grant this user sending"
                                       : "");
  }
}

std::optional<std::size_t> receive_until(int id, SysVMessageBuffer& into, long type, Wait wait,
                                         Clock::time_point deadline) {
  detail::RetryBackoff backoff;
  int flags = wait == Wait::forever ? 0 : IPC_NOWAIT;
  for (;;) {
    ssize_t n = ::msgrcv(id, into.raw(), into.capacity(), type, flags);
    if (n >= 0) return static_cast<std::size_t>(n);
    int code = errno;
    if (code == EINTR) continue;
    if (code == ENOMSG) {
      if (wait == Wait::none) return std::nullopt;
      auto left = deadline - Clock::now();
      if (left <= std::chrono::nanoseconds::zero()) return std::nullopt;
      pause_for(backoff.next(left));
      continue;
    }
    if (code == E2BIG)
      throw SystemError("msgrcv", queue_target(id), code,
                        "the message selected by type " + std::to_string(type) +
                            " is larger than the receive buffer of " +
                            std::to_string(into.capacity()) +
                            " bytes; it stays queued (receive it with a larger buffer, or drop "
                            "it with discard_next())");
    throw SystemError("msgrcv", queue_target(id), code,
                      code == EIDRM || code == EINVAL ? kRemoved
                      : code == EACCES ? "the queue's permissions do not grant this user receiving"
                                       : "");
  }
}

Clock::time_point deadline_after(std::chrono::nanoseconds timeout) {
  auto now = Clock::now();
  if (timeout < std::chrono::nanoseconds::zero()) timeout = std::chrono::nanoseconds::zero();
  if (timeout > Clock::time_point::max() - now) return Clock::time_point::max();
  return now + timeout;
}

}  // namespace

void SysVMessageQueue::send(const SysVMessageBuffer& message, std::size_t size) {
  send_until(id_, message, size, Wait::forever, {});
}

bool SysVMessageQueue::try_send(const SysVMessageBuffer& message, std::size_t size) {
  return send_until(id_, message, size, Wait::none, {});
}

bool SysVMessageQueue::send_for(const SysVMessageBuffer& message, std::size_t size,
                                std::chrono::nanoseconds timeout) {
  return send_until(id_, message, size, Wait::until_deadline, deadline_after(timeout));
}

namespace {

SysVMessageBuffer& stage(std::unique_ptr<SysVMessageBuffer>& staging, long type,
                         std::span<const std::byte> body) {
  if (!staging || staging->capacity() < body.size())
    staging = std::make_unique<SysVMessageBuffer>(body.size());
  staging->set_type(type);
  if (!body.empty()) std::memcpy(staging->body().data(), body.data(), body.size());
  return *staging;
}

}  // namespace

void SysVMessageQueue::send(long type, std::span<const std::byte> body) {
  send(stage(staging_, type, body), body.size());
}

bool SysVMessageQueue::try_send(long type, std::span<const std::byte> body) {
  return try_send(stage(staging_, type, body), body.size());
}

bool SysVMessageQueue::send_for(long type, std::span<const std::byte> body,
                                std::chrono::nanoseconds timeout) {
  return send_for(stage(staging_, type, body), body.size(), timeout);
}

std::size_t SysVMessageQueue::receive(SysVMessageBuffer& into, long type) {
  return *receive_until(id_, into, type, Wait::forever, {});
}

std::optional<std::size_t> SysVMessageQueue::try_receive(SysVMessageBuffer& into, long type) {
  return receive_until(id_, into, type, Wait::none, {});
}

std::optional<std::size_t> SysVMessageQueue::receive_for(SysVMessageBuffer& into, long type,
                                                         std::chrono::nanoseconds timeout) {
  return receive_until(id_, into, type, Wait::until_deadline, deadline_after(timeout));
}

std::optional<std::size_t> SysVMessageQueue::try_copy(SysVMessageBuffer& into,
                                                      std::size_t index) const {
  for (;;) {
    ssize_t n = ::msgrcv(id_, into.raw(), into.capacity(), static_cast<long>(index),
                         IPC_NOWAIT | MSG_COPY | MSG_NOERROR);
    if (n >= 0) return static_cast<std::size_t>(n);
    int code = errno;
    if (code == EINTR) continue;
    if (code == ENOMSG) return std::nullopt;
    throw SystemError("msgrcv(MSG_COPY)", queue_target(id_), code,
                      code == ENOSYS ? "this kernel was built without CONFIG_CHECKPOINT_RESTORE"
                      : code == EIDRM || code == EINVAL ? kRemoved
                                                        : "");
  }
}

std::optional<long> SysVMessageQueue::discard_next(long type) {
  long message_type = 0;  // a struct msgbuf with no room for a body
  for (;;) {
    if (::msgrcv(id_, &message_type, 0, type, IPC_NOWAIT | MSG_NOERROR) >= 0) return message_type;
    int code = errno;
    if (code == EINTR) continue;
    if (code == ENOMSG) return std::nullopt;
    throw SystemError("msgrcv(MSG_NOERROR)", queue_target(id_), code,
                      code == EIDRM || code == EINVAL ? kRemoved : "");
  }
}

}  // namespace conduit::ipc
