// POSIX message queues (mq_open).
//
// A queue is a kernel object named "/name" that holds up to max_messages
// messages of up to message_size bytes each, delivered highest priority
// first and in send order within a priority. The kernel's rules, which this
// API keeps visible:
// - Persistence: a queue and the messages in it outlive every process that
//   opened it, until someone unlinks the name (or the machine reboots). The
//   creator of a queue owns its name and unlinks it on destruction unless
//   told to persist(); queues opened by name are never unlinked by this API.
// - Limits: without CAP_SYS_RESOURCE a queue may hold at most
//   fs.mqueue.msg_max messages (default 10) of at most fs.mqueue.msgsize_max
//   bytes (default 8192); an IPC namespace holds at most fs.mqueue.queues_max
//   queues (default 256); and all queues of one user together may reserve
//   at most RLIMIT_MSGQUEUE bytes (`ulimit -q`, default 819200), counted as
//   max_messages * message_size plus the kernel's bookkeeping. Errors caused
//   by a limit name it, its current value and how to raise it.
// - A receive needs a buffer of at least message_size bytes, whatever the
//   size of the waiting message (EMSGSIZE otherwise).
// - Names: "/" followed by 1 to 255 characters, none of them '/', and not
//   "." or "..". With mqueue mounted (mount -t mqueue none /dev/mqueue) the
//   queues appear as files there.
// - The descriptor (fd()) is a file descriptor on Linux: poll() reports
//   POLLIN when a message is waiting and POLLOUT when there is room.
//
// Timed operations take a relative timeout and wait until CLOCK_REALTIME
// reaches now + timeout (what mq_timedsend and mq_timedreceive take), so a
// jump of the wall clock shortens or lengthens the wait. Calls interrupted by
// a signal (EINTR) are retried, keeping the same deadline.
//
// Threads: the kernel serialises operations on one queue, so any number of
// threads and processes may send and receive on it at once.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "conduit/ipc/file_descriptor.hpp"

namespace conduit::ipc {

// What an opened queue may be used for.
enum class QueueAccess {
  receive_only,      // O_RDONLY
  send_only,         // O_WRONLY
  send_and_receive,  // O_RDWR
};

struct PosixQueueAttributes {
  long max_messages = 10;    // mq_maxmsg; at most fs.mqueue.msg_max
  long message_size = 8192;  // mq_msgsize; at most fs.mqueue.msgsize_max
};

// The limits that apply to this process now (see above). A value is -1 when
// it cannot be read.
struct PosixQueueLimits {
  long msg_max = -1;            // fs.mqueue.msg_max
  long msgsize_max = -1;        // fs.mqueue.msgsize_max
  long msg_default = -1;        // fs.mqueue.msg_default (mq_open without attributes)
  long msgsize_default = -1;    // fs.mqueue.msgsize_default
  long queues_max = -1;         // fs.mqueue.queues_max
  long long rlimit_bytes = -1;  // RLIMIT_MSGQUEUE soft limit; -2 for unlimited

  // Reads the values for this process's IPC namespace and resource limits.
  static PosixQueueLimits current();
};

// The highest priority plus one (MQ_PRIO_MAX on Linux: 32768).
inline constexpr unsigned kPosixQueuePriorities = 32768;

struct PosixQueueMessage {
  std::size_t size = 0;   // bytes written to the front of the buffer
  unsigned priority = 0;  // 0 (lowest) to kPosixQueuePriorities - 1
};

// Returns why `name` is not a valid queue name, or an empty string when it
// is (see the naming rules above). POSIX shared-memory objects follow the
// same rules: `object` names what the name is for in the message ("queue",
// "shared-memory object").
std::string posix_queue_name_problem(std::string_view name, std::string_view object = "queue");

// An open POSIX message queue. Move-only; closes its descriptor on
// destruction and, when it owns the name, unlinks it.
class PosixMessageQueue {
 public:
  // Creates the queue "/name" (O_CREAT | O_EXCL) with exactly `mode` (the
  // umask is not applied) and owns its name. Throws SystemError: EINVAL for
  // a malformed name (with the rule broken) or for attributes above
  // fs.mqueue.msg_max / msgsize_max (naming the limit, its current value and
  // the sysctl to raise it); EEXIST when the name is taken (queues persist:
  // perhaps an earlier process never unlinked it); ENOSPC naming
  // fs.mqueue.queues_max; EMFILE naming RLIMIT_MSGQUEUE (ulimit -q) and the
  // bytes the queue needs, or the open-file limit when that is the cause.
  static PosixMessageQueue create(const std::string& name,
                                  QueueAccess access = QueueAccess::send_and_receive,
                                  const PosixQueueAttributes& attributes = {}, mode_t mode = 0600);

  // Opens the existing queue "/name"; does not own the name. Throws
  // SystemError: ENOENT when there is none, EACCES when its mode does not
  // grant `access` to this user, EINVAL for a malformed name.
  static PosixMessageQueue open(const std::string& name,
                                QueueAccess access = QueueAccess::send_and_receive);

  // Adopts a queue descriptor: a duplicate of another queue's fd(), or one
  // received over a UNIX socket (SCM_RIGHTS). Does not own any name; `name`
  // only labels errors. Throws Error when fd is not a message queue.
  static PosixMessageQueue adopt(FileDescriptor fd, std::string name = "(adopted queue)");

  // Removes the name "/name": processes that have the queue open keep using
  // it until they close it, and the messages go with the last one. Returns
  // false when no such queue exists. Throws SystemError: EACCES, EINVAL.
  static bool unlink(const std::string& name);

  PosixMessageQueue() = default;
  PosixMessageQueue(PosixMessageQueue&& other) noexcept;
  PosixMessageQueue& operator=(PosixMessageQueue&& other) noexcept;
  PosixMessageQueue(const PosixMessageQueue&) = delete;
  PosixMessageQueue& operator=(const PosixMessageQueue&) = delete;
  ~PosixMessageQueue();

  explicit operator bool() const { return static_cast<bool>(fd_); }
  // The queue descriptor (an mqd_t; pollable).
  int fd() const { return fd_.get(); }
  const std::string& name() const { return name_; }
  // True when destroying this object unlinks the name.
  bool owns_name() const { return owner_; }

  // Gives up ownership of the name: the queue and its messages stay in the
  // system after this object (and this process) is gone, until someone calls
  // unlink(name()). Use it to hand messages to a process that runs later.
  void persist() noexcept { owner_ = false; }

  // Unlinks the name now if this object owns it (idempotent). The name is
  // left alone when it meanwhile names another queue, and in a forked child
  // (only the creating process unlinks).
  void remove() noexcept;

  // The queue's attributes as the kernel reports them (mq_getattr).
  PosixQueueAttributes attributes() const;
  // The number of messages waiting (mq_curmsgs).
  long pending() const;

  // Sends one message, waiting while the queue is full. Throws
  // MessageTooLarge above attributes().message_size, Error for a priority
  // of kPosixQueuePriorities or more, SystemError (EBADF when not opened for
  // sending).
  void send(std::span<const std::byte> message, unsigned priority = 0);
  // As send(), but returns false at once when the queue is full.
  bool try_send(std::span<const std::byte> message, unsigned priority = 0);
  // As send(), but returns false when the queue stays full for `timeout`.
  bool send_for(std::span<const std::byte> message, unsigned priority,
                std::chrono::nanoseconds timeout);

  // Receives the oldest message of the highest priority into the front of
  // `buffer`, waiting while the queue is empty. REQUIRES: buffer.size() >=
  // attributes().message_size; otherwise throws SystemError(EMSGSIZE) saying
  // so, and the message stays queued. Throws SystemError (EBADF when not
  // opened for receiving).
  PosixQueueMessage receive(std::span<std::byte> buffer);
  // As receive(), but returns std::nullopt at once when the queue is empty.
  std::optional<PosixQueueMessage> try_receive(std::span<std::byte> buffer);
  // As receive(), but returns std::nullopt when nothing arrives in `timeout`.
  std::optional<PosixQueueMessage> receive_for(std::span<std::byte> buffer,
                                               std::chrono::nanoseconds timeout);

 private:
  FileDescriptor fd_;
  std::string name_;
  bool owner_ = false;
  pid_t creator_ = 0;
  ino_t inode_ = 0;
};

}  // namespace conduit::ipc
