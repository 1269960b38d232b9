// System V message queues (msgget, msgsnd, msgrcv).
//
// A queue is a kernel object found by a numeric key: a number agreed on by
// the processes, one made from an existing file with ftok (key_from_path()
// in shared_memory.hpp), or IPC_PRIVATE for a new queue that only processes
// told its id (forked children, say) can reach. `ipcs -q` lists the queues.
// The kernel's rules, which this API keeps visible:
// - Persistence: a queue outlives every process until it is removed
//   (IPC_RMID). The creator owns it and removes it on destruction unless
//   told to release() it; queues opened by key are never removed by this API
//   unless remove() is called.
// - Typed messages: every message has a type, a number >= 1. A receive picks
//   by type: 0 takes the oldest message of any type; a positive T takes the
//   oldest message of type T; a negative -T takes the oldest message of the
//   lowest type <= T (so types can serve as priorities, lowest first).
// - Limits: a message carries at most kernel.msgmax bytes (default 8192); a
//   queue holds at most kernel.msgmnb bytes of messages (default 16384; its
//   msg_qbytes, which only CAP_SYS_RESOURCE may raise above msgmnb); at most
//   kernel.msgmni queues exist per IPC namespace. Errors caused by a limit
//   name it, its current value and the sysctl that raises it.
// - A receive into a buffer smaller than the selected message fails (E2BIG)
//   and leaves the message queued; this API never truncates silently
//   (MSG_NOERROR) but offers discard_next() to drop such a message on
//   purpose.
// - Permissions: a mode like a file's, checked on every send and receive
//   (root with CAP_IPC_OWNER passes every check); the umask does not apply.
//
// There is no way to wait for a System V queue with a timeout: msgsnd and
// msgrcv either block without limit or fail at once (IPC_NOWAIT), and the
// queue has no descriptor to poll. The timed operations here therefore
// retry with IPC_NOWAIT: first yielding the processor between attempts (64
// times), then sleeping 20 microseconds, doubling up to 2 milliseconds. A
// message that arrives during a long wait is thus picked up at most about
// 2 ms late; the untimed operations block in the kernel and wake at once.
// Calls interrupted by a signal are retried.
//
// Threads: the kernel serialises operations on one queue. One thread may
// send while another receives on the same object; the convenience send()
// that copies into an internal buffer must not be called by two threads at
// once.
#pragma once

#include <sys/ipc.h>
#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "conduit/ipc/posix_message_queue.hpp"  // QueueAccess

namespace conduit::ipc {

// The limits that apply in this process's IPC namespace now; -1 when a value
// cannot be read.
struct SysVQueueLimits {
  long msgmax = -1;  // kernel.msgmax: bytes per message
  long msgmnb = -1;  // kernel.msgmnb: bytes per queue (default for msg_qbytes)
  long msgmni = -1;  // kernel.msgmni: queues per namespace

  static SysVQueueLimits current();
};

// Parses a key written as a decimal number or in hex with 0x (as `ipcs`
// prints keys), from 1 to 0xffffffff; std::nullopt for anything else.
std::optional<key_t> parse_sysv_key(std::string_view text);

// What IPC_STAT reports about a queue.
struct SysVQueueStatus {
  std::size_t messages = 0;   // msg_qnum
  std::size_t bytes = 0;      // msg_cbytes: bytes in the messages waiting
  std::size_t max_bytes = 0;  // msg_qbytes: bytes the queue may hold
  pid_t last_sender = 0;      // msg_lspid
  pid_t last_receiver = 0;    // msg_lrpid
  uid_t owner_uid = 0;
  mode_t mode = 0;  // permission bits
};

// A message laid out the way msgsnd and msgrcv want it: the type, then the
// body (up to capacity() bytes), so sending and receiving copy nothing
// beyond what the kernel copies. Move-only.
class SysVMessageBuffer {
 public:
  explicit SysVMessageBuffer(std::size_t capacity);

  long type() const { return *storage_.get(); }
  void set_type(long type) { *storage_.get() = type; }
  // The whole body area; after a receive, its first `size` bytes.
  std::span<std::byte> body() {
    return {reinterpret_cast<std::byte*>(storage_.get() + 1), capacity_};
  }
  std::span<const std::byte> body() const {
    return {reinterpret_cast<const std::byte*>(storage_.get() + 1), capacity_};
  }
  std::size_t capacity() const { return capacity_; }

  // The struct msgbuf msgsnd and msgrcv take.
  void* raw() { return storage_.get(); }
  const void* raw() const { return storage_.get(); }

 private:
  std::unique_ptr<long[]> storage_;  // the type, then the body
  std::size_t capacity_;
};

// One System V message queue. Move-only; the owner removes it on
// destruction.
class SysVMessageQueue {
 public:
  // Creates a queue for `key` (IPC_CREAT | IPC_EXCL; IPC_PRIVATE always makes
  // a new one) with permission bits `mode`, and owns it. Throws SystemError:
  // EEXIST when a queue has this key already (queues persist: perhaps one
  // left over; `ipcrm -q ID` removes it), ENOSPC naming kernel.msgmni.
  static SysVMessageQueue create(key_t key, mode_t mode = 0600);

  // Opens the existing queue for `key`, checking that its mode grants
  // `access` to this user; does not own it. Throws SystemError: ENOENT,
  // EACCES.
  static SysVMessageQueue open(key_t key, QueueAccess access = QueueAccess::send_and_receive);

  // Adopts a queue known by its id (from create().id() in a parent process,
  // say); does not own it. Throws SystemError (EINVAL, EIDRM) when no queue
  // has that id.
  static SysVMessageQueue attach(int id);

  SysVMessageQueue() = default;
  SysVMessageQueue(SysVMessageQueue&& other) noexcept;
  SysVMessageQueue& operator=(SysVMessageQueue&& other) noexcept;
  SysVMessageQueue(const SysVMessageQueue&) = delete;
  SysVMessageQueue& operator=(const SysVMessageQueue&) = delete;
  ~SysVMessageQueue();

  explicit operator bool() const { return id_ >= 0; }
  int id() const { return id_; }
  key_t key() const { return key_; }
  bool owner() const { return owner_; }

  // Gives up ownership: the queue and its messages stay in the system after
  // this object is gone, until someone removes it (`ipcrm -q ID`).
  void release() noexcept { owner_ = false; }

  // Removes the queue now (IPC_RMID), owner or not: processes blocked on it
  // fail with EIDRM and its messages are gone. Does nothing when it is gone
  // already. Throws SystemError (EPERM) when this user may not remove it.
  void remove();

  // IPC_STAT. Throws SystemError (EACCES without read permission).
  SysVQueueStatus status() const;

  // Sends body() [0, size) of `message` with message.type(), waiting while
  // the queue is full. REQUIRES: message.type() >= 1 (else Error). Throws
  // MessageTooLarge naming kernel.msgmax when size is above it, or the
  // queue's msg_qbytes (kernel.msgmnb) when the message could never fit;
  // SystemError: EACCES, EIDRM (the queue was removed).
  void send(const SysVMessageBuffer& message, std::size_t size);
  // As send(), but returns false at once when the queue is full.
  bool try_send(const SysVMessageBuffer& message, std::size_t size);
  // As send(), but returns false when the queue stays full for `timeout`.
  bool send_for(const SysVMessageBuffer& message, std::size_t size,
                std::chrono::nanoseconds timeout);

  // Convenience: the same, copying `body` into an internal buffer first.
  void send(long type, std::span<const std::byte> body);
  bool try_send(long type, std::span<const std::byte> body);
  bool send_for(long type, std::span<const std::byte> body, std::chrono::nanoseconds timeout);

  // Receives the message `type` selects (see above) into `into`, waiting
  // while there is none; returns the body's size, and into.type() is the
  // message's type. Throws SystemError: E2BIG when the selected message is
  // larger than into.capacity() (it stays queued; see discard_next()),
  // EACCES, EIDRM (the queue was removed).
  std::size_t receive(SysVMessageBuffer& into, long type = 0);
  // As receive(), but returns std::nullopt at once when no message matches.
  std::optional<std::size_t> try_receive(SysVMessageBuffer& into, long type = 0);
  // As receive(), but returns std::nullopt when none arrives in `timeout`.
  std::optional<std::size_t> receive_for(SysVMessageBuffer& into, long type,
                                         std::chrono::nanoseconds timeout);

  // Copies the message at position `index` (0: the oldest, whatever its
  // type) into `into` without removing it (msgrcv with MSG_COPY, truncating
  // to into.capacity()); returns the copied size, and into.type() is the
  // message's type; std::nullopt when the queue holds no message there.
  // Throws SystemError: ENOSYS on a kernel built without
  // CONFIG_CHECKPOINT_RESTORE, EACCES, EIDRM.
  std::optional<std::size_t> try_copy(SysVMessageBuffer& into, std::size_t index) const;

  // Removes the message `type` selects without reading it (msgrcv with
  // MSG_NOERROR into an empty buffer), whatever its size; returns its type,
  // or std::nullopt when none matches. For a message too large to receive.
  std::optional<long> discard_next(long type = 0);

 private:
  int id_ = -1;
  key_t key_ = IPC_PRIVATE;
  bool owner_ = false;
  pid_t creator_ = 0;
  std::unique_ptr<SysVMessageBuffer> staging_;  // for the convenience send()
};

}  // namespace conduit::ipc
