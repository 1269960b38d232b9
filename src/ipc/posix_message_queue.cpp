#include "conduit/ipc/posix_message_queue.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <mqueue.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <fstream>

#include "conduit/error.hpp"
#include "kernel_setting.hpp"

namespace conduit::ipc {
namespace {

int open_flags(QueueAccess access) {
  switch (access) {
    case QueueAccess::receive_only:
      return O_RDONLY;
    case QueueAccess::send_only:
      return O_WRONLY;
    case QueueAccess::send_and_receive:
      return O_RDWR;
  }
  return O_RDWR;
}

const char* access_text(QueueAccess access) {
  switch (access) {
    case QueueAccess::receive_only:
      return "receiving";
    case QueueAccess::send_only:
      return "sending";
    case QueueAccess::send_and_receive:
      return "sending and receiving";
  }
  return "";
}

long read_long(std::string_view setting) {
  std::string text = detail::kernel_setting(setting);
  long value = -1;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc() ? value : -1;
}

// What the kernel charges against RLIMIT_MSGQUEUE for a queue (ipc/mqueue.c:
// the messages themselves, one struct msg_msg per message and one priority
// tree node per distinct priority), estimated from the sizes on x86-64.
long long charged_bytes(const PosixQueueAttributes& attributes) {
  constexpr long long kMessageHeader = 48;  // sizeof(struct msg_msg)
  constexpr long long kTreeNode = 40;       // sizeof(struct posix_msg_tree_node)
  long long messages = attributes.max_messages;
  return messages * attributes.message_size + messages * kMessageHeader +
         std::min<long long>(messages, kPosixQueuePriorities) * kTreeNode;
}

std::size_t open_descriptor_count() {
  std::size_t count = 0;
  if (DIR* directory = ::opendir("/proc/self/fd")) {
    while (::readdir(directory) != nullptr) ++count;
    ::closedir(directory);
  }
  return count >= 2 ? count - 2 : count;  // "." and ".."
}

std::string rlimit_text(long long bytes) {
  return bytes == -2 ? "unlimited" : std::to_string(bytes) + " bytes";
}

// Why mq_open(O_CREAT) failed with `code`, when a limit or a rule explains it.
std::string create_hint(int code, const PosixQueueAttributes& attributes) {
  PosixQueueLimits limits = PosixQueueLimits::current();
  std::string asked = std::to_string(attributes.max_messages) + " messages of " +
                      std::to_string(attributes.message_size) + " bytes";
  const std::string namespace_hint =
      " (root can raise it with sysctl; it applies per IPC namespace, so a process in its own "
      "namespace, `unshare --ipc`, may raise it there without touching the machine's setting; "
      "processes with CAP_SYS_RESOURCE are exempt)";
  switch (code) {
    case EINVAL: {
      if (attributes.max_messages < 1 || attributes.message_size < 1)
        return "asked for " + asked + "; both must be at least 1";
      std::string hint;
      if (limits.msg_max >= 0 && attributes.max_messages > limits.msg_max)
        hint = "asked for " + std::to_string(attributes.max_messages) +
               " messages, above the limit fs.mqueue.msg_max = " + std::to_string(limits.msg_max) +
               " (/proc/sys/fs/mqueue/msg_max); raise it with `sysctl -w fs.mqueue.msg_max=" +
               std::to_string(attributes.max_messages) + "`";
      if (limits.msgsize_max >= 0 && attributes.message_size > limits.msgsize_max) {
        if (!hint.empty()) hint += "; and ";
        hint += "asked for messages of " + std::to_string(attributes.message_size) +
                " bytes, above the limit fs.mqueue.msgsize_max = " +
                std::to_string(limits.msgsize_max) +
                " (/proc/sys/fs/mqueue/msgsize_max); raise it with `sysctl -w "
                "fs.mqueue.msgsize_max=" +
                std::to_string(attributes.message_size) + "`";
      }
      if (!hint.empty()) return hint + namespace_hint;
      return "the kernel refused " + asked +
             " (the total size overflows, or it exceeds the "
             "hard limits of 65536 messages and 16 MiB per message)";
    }
    case ENOSPC:
      return "this IPC namespace has reached fs.mqueue.queues_max = " +
             std::to_string(limits.queues_max) +
             " queues (/proc/sys/fs/mqueue/queues_max); unlink queues nobody uses (they persist "
             "until unlinked) or raise it with `sysctl -w fs.mqueue.queues_max=N`" +
             namespace_hint;
    case EMFILE: {
      rlimit files{};
      ::getrlimit(RLIMIT_NOFILE, &files);
      if (files.rlim_cur != RLIM_INFINITY && open_descriptor_count() + 1 >= files.rlim_cur)
        return "this process has reached its limit of " + std::to_string(files.rlim_cur) +
               " open files (ulimit -n)";
      return "all POSIX queues of this user together may reserve at most RLIMIT_MSGQUEUE = " +
             rlimit_text(limits.rlimit_bytes) + " (ulimit -q), and this queue of " + asked +
             " needs about " + std::to_string(charged_bytes(attributes)) +
             " bytes more; unlink queues nobody uses (they persist until unlinked), ask for "
             "fewer or smaller messages, or raise the limit (`ulimit -q`, or 'msgqueue' in "
             "/etc/security/limits.conf; above the hard limit only root can)";
    }
    case ENFILE:
      return "the system has reached its limit of open files (fs.file-max)";
    case ENOMEM:
      return "not enough memory for " + asked;
    case EEXIST:
      return "a queue by this name exists already; queues persist until unlinked, so it may be "
             "left over from an earlier process (remove it with PosixMessageQueue::unlink, or "
             "rm /dev/mqueue/NAME where the mqueue filesystem is mounted)";
    case EACCES:
      return "this user may not create the queue";
    default:
      return {};
  }
}

std::string open_hint(int code, QueueAccess access) {
  switch (code) {
    case ENOENT:
      return "no queue by this name exists (has its creator started?)";
    case EACCES:
      return std::string("the queue's permissions do not grant this user ") + access_text(access);
    case EMFILE:
      return "this process has reached its limit of open files (ulimit -n)";
    case ENFILE:
      return "the system has reached its limit of open files (fs.file-max)";
    default:
      return {};
  }
}

void check_name(const char* call, const std::string& name) {
  std::string problem = posix_queue_name_problem(name);
  if (!problem.empty()) throw SystemError(call, name, EINVAL, problem);
}

// CLOCK_REALTIME now + timeout (at least now, saturating far in the future).
timespec realtime_deadline(std::chrono::nanoseconds timeout) {
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  if (timeout < std::chrono::nanoseconds::zero()) timeout = std::chrono::nanoseconds::zero();
  constexpr std::int64_t kBillion = 1'000'000'000;
  std::int64_t seconds = timeout.count() / kBillion;
  std::int64_t nanoseconds = timeout.count() % kBillion + now.tv_nsec;
  if (nanoseconds >= kBillion) {
    nanoseconds -= kBillion;
    ++seconds;
  }
  // Past 2^62 seconds the kernel's timers saturate anyway.
  constexpr std::int64_t kFarFuture = std::int64_t{1} << 62;
  timespec at{};
  at.tv_sec = seconds > kFarFuture - now.tv_sec ? kFarFuture : now.tv_sec + seconds;
  at.tv_nsec = nanoseconds;
  return at;
}

// An absolute time that has already passed: the timed calls then return at
// once (ETIMEDOUT) instead of waiting.
constexpr timespec kAlreadyPassed{0, 0};

}  // namespace

std::string posix_queue_name_problem(std::string_view name, std::string_view object) {
  const std::string rule = " (a POSIX " + std::string(object) +
                           " name is one leading '/' followed by 1 to " + std::to_string(NAME_MAX) +
                           " characters, none of them '/', and not \".\" or \"..\")";
  if (name.empty() || name.front() != '/') return "the name does not start with '/'" + rule;
  if (name.size() == 1) return "the name is empty after the '/'" + rule;
  if (name.find('/', 1) != std::string_view::npos)
    return "the name has a '/' after the first character" + rule;
  if (name.size() - 1 > NAME_MAX)
    return "the name is " + std::to_string(name.size() - 1) + " characters long" + rule;
  if (name == "/." || name == "/..") return "the name is \".\" or \"..\"" + rule;
  return {};
}

PosixQueueLimits PosixQueueLimits::current() {
  PosixQueueLimits limits;
  limits.msg_max = read_long("fs.mqueue.msg_max");
  limits.msgsize_max = read_long("fs.mqueue.msgsize_max");
  limits.msg_default = read_long("fs.mqueue.msg_default");
  limits.msgsize_default = read_long("fs.mqueue.msgsize_default");
  limits.queues_max = read_long("fs.mqueue.queues_max");
  rlimit bytes{};
  if (::getrlimit(RLIMIT_MSGQUEUE, &bytes) == 0)
    limits.rlimit_bytes =
        bytes.rlim_cur == RLIM_INFINITY ? -2 : static_cast<long long>(bytes.rlim_cur);
  return limits;
}

PosixMessageQueue PosixMessageQueue::create(const std::string& name, QueueAccess access,
                                            const PosixQueueAttributes& attributes, mode_t mode) {
  check_name("mq_open(O_CREAT|O_EXCL)", name);
  mq_attr attr{};
  attr.mq_maxmsg = attributes.max_messages;
  attr.mq_msgsize = attributes.message_size;
  mqd_t fd = ::mq_open(name.c_str(), open_flags(access) | O_CREAT | O_EXCL | O_CLOEXEC,
                       mode & 07777, &attr);
  if (fd == static_cast<mqd_t>(-1)) {
    int code = errno;
    throw SystemError("mq_open(O_CREAT|O_EXCL)", name, code, create_hint(code, attributes));
  }
  PosixMessageQueue queue;
  queue.fd_.reset(fd);
  queue.name_ = name;
  queue.owner_ = true;
  queue.creator_ = ::getpid();
  // mq_open applies the umask; the caller asked for exactly `mode`.
  if (::fchmod(fd, mode & 07777) < 0) throw SystemError("fchmod", name, errno);
  struct stat st {};
  if (::fstat(fd, &st) == 0) queue.inode_ = st.st_ino;
  return queue;
}

PosixMessageQueue PosixMessageQueue::open(const std::string& name, QueueAccess access) {
  check_name("mq_open", name);
  mqd_t fd = ::mq_open(name.c_str(), open_flags(access) | O_CLOEXEC);
  if (fd == static_cast<mqd_t>(-1)) {
    int code = errno;
    throw SystemError("mq_open", name, code, open_hint(code, access));
  }
  PosixMessageQueue queue;
  queue.fd_.reset(fd);
  queue.name_ = name;
  struct stat st {};
  if (::fstat(fd, &st) == 0) queue.inode_ = st.st_ino;
  return queue;
}

PosixMessageQueue PosixMessageQueue::adopt(FileDescriptor fd, std::string name) {
  mq_attr attr{};
  if (::mq_getattr(fd.get(), &attr) < 0)
    throw Error("adopt(" + name + "): descriptor " + std::to_string(fd.get()) +
                " is not a POSIX message queue");
  PosixMessageQueue queue;
  queue.fd_ = std::move(fd);
  queue.name_ = std::move(name);
  struct stat st {};
  if (::fstat(queue.fd_.get(), &st) == 0) queue.inode_ = st.st_ino;
  return queue;
}

bool PosixMessageQueue::unlink(const std::string& name) {
  check_name("mq_unlink", name);
  if (::mq_unlink(name.c_str()) == 0) return true;
  int code = errno;
  if (code == ENOENT) return false;
  throw SystemError("mq_unlink", name, code,
                    code == EACCES ? "this user may not remove the queue" : "");
}

PosixMessageQueue::PosixMessageQueue(PosixMessageQueue&& other) noexcept
    : fd_(std::move(other.fd_)),
      name_(std::move(other.name_)),
      owner_(std::exchange(other.owner_, false)),
      creator_(other.creator_),
      inode_(other.inode_) {
  other.name_.clear();
}

PosixMessageQueue& PosixMessageQueue::operator=(PosixMessageQueue&& other) noexcept {
  if (this != &other) {
    remove();
    fd_ = std::move(other.fd_);
    name_ = std::move(other.name_);
    owner_ = std::exchange(other.owner_, false);
    creator_ = other.creator_;
    inode_ = other.inode_;
    other.name_.clear();
  }
  return *this;
}

PosixMessageQueue::~PosixMessageQueue() {
  remove();
}

void PosixMessageQueue::remove() noexcept {
  if (!owner_) return;
  owner_ = false;
  if (::getpid() != creator_) return;
  // Leave the name alone if it now names another queue: someone unlinked
  // ours and created a new one.
  mqd_t current = ::mq_open(name_.c_str(), O_RDONLY | O_CLOEXEC);
  if (current == static_cast<mqd_t>(-1) && errno == EACCES)
    current = ::mq_open(name_.c_str(), O_WRONLY | O_CLOEXEC);
  if (current == static_cast<mqd_t>(-1)) {
    if (errno != ENOENT) ::mq_unlink(name_.c_str());
    return;
  }
  struct stat st {};
  bool same = ::fstat(current, &st) == 0 && st.st_ino == inode_;
  ::mq_close(current);
  if (same) ::mq_unlink(name_.c_str());
}

PosixQueueAttributes PosixMessageQueue::attributes() const {
  mq_attr attr{};
  if (::mq_getattr(fd_.get(), &attr) < 0) throw SystemError("mq_getattr", name_, errno);
  return PosixQueueAttributes{attr.mq_maxmsg, attr.mq_msgsize};
}

long PosixMessageQueue::pending() const {
  mq_attr attr{};
  if (::mq_getattr(fd_.get(), &attr) < 0) throw SystemError("mq_getattr", name_, errno);
  return attr.mq_curmsgs;
}

namespace {

// Sends with mq_timedsend until `deadline` (nullptr: no limit). False when
// the deadline passes with the queue still full.
bool send_until(int fd, const std::string& name, std::span<const std::byte> message,
                unsigned priority, const timespec* deadline) {
  if (priority >= kPosixQueuePriorities)
    throw Error("mq_send(" + name + "): priority " + std::to_string(priority) +
                " is out of range; priorities run from 0 to " +
                std::to_string(kPosixQueuePriorities - 1));
  for (;;) {
    // An empty span may have no data pointer; mq_timedsend wants one anyway.
    const char* data = message.empty() ? "" : reinterpret_cast<const char*>(message.data());
    // glibc insists on a timeout pointer: no deadline means plain mq_send.
    int rc = deadline ? ::mq_timedsend(fd, data, message.size(), priority, deadline)
                      : ::mq_send(fd, data, message.size(), priority);
    if (rc == 0) return true;
    int code = errno;
    if (code == EINTR) continue;
    if (code == ETIMEDOUT || code == EAGAIN) return false;
    if (code == EMSGSIZE) {
      mq_attr attr{};
      ::mq_getattr(fd, &attr);
      throw MessageTooLarge(
          "mq_send(" + name + "): a message of " + std::to_string(message.size()) +
          " bytes exceeds the queue's message size of " + std::to_string(attr.mq_msgsize) +
          " bytes (mq_msgsize, fixed when the queue was created)");
    }
    throw SystemError("mq_send", name, code,
                      code == EBADF ? "the queue was not opened for sending" : "");
  }
}

std::optional<PosixQueueMessage> receive_until(int fd, const std::string& name,
                                               std::span<std::byte> buffer,
                                               const timespec* deadline) {
  for (;;) {
    unsigned priority = 0;
    char* data = reinterpret_cast<char*>(buffer.data());
    ssize_t n = deadline ? ::mq_timedreceive(fd, data, buffer.size(), &priority, deadline)
                         : ::mq_receive(fd, data, buffer.size(), &priority);
    if (n >= 0) return PosixQueueMessage{static_cast<std::size_t>(n), priority};
    int code = errno;
    if (code == EINTR) continue;
    if (code == ETIMEDOUT || code == EAGAIN) return std::nullopt;
    if (code == EMSGSIZE) {
      mq_attr attr{};
      ::mq_getattr(fd, &attr);
      throw SystemError("mq_receive", name, code,
                        "the receive buffer of " + std::to_string(buffer.size()) +
                            " bytes is smaller than the queue's message size of " +
                            std::to_string(attr.mq_msgsize) +
                            " bytes (mq_msgsize); POSIX queues need a buffer that large whatever "
                            "the size of the waiting message, which stays queued");
    }
    throw SystemError("mq_receive", name, code,
                      code == EBADF ? "the queue was not opened for receiving" : "");
  }
}

}  // namespace

void PosixMessageQueue::send(std::span<const std::byte> message, unsigned priority) {
  while (!send_until(fd_.get(), name_, message, priority, nullptr)) {
    // Only a descriptor someone made non-blocking gets here (EAGAIN).
    pollfd ready{fd_.get(), POLLOUT, 0};
    ::poll(&ready, 1, -1);
  }
}

bool PosixMessageQueue::try_send(std::span<const std::byte> message, unsigned priority) {
  return send_until(fd_.get(), name_, message, priority, &kAlreadyPassed);
}

bool PosixMessageQueue::send_for(std::span<const std::byte> message, unsigned priority,
                                 std::chrono::nanoseconds timeout) {
  timespec deadline = realtime_deadline(timeout);
  return send_until(fd_.get(), name_, message, priority, &deadline);
}

PosixQueueMessage PosixMessageQueue::receive(std::span<std::byte> buffer) {
  for (;;) {
    if (auto message = receive_until(fd_.get(), name_, buffer, nullptr)) return *message;
    // Only a descriptor someone made non-blocking gets here (EAGAIN).
    pollfd ready{fd_.get(), POLLIN, 0};
    ::poll(&ready, 1, -1);
  }
}

std::optional<PosixQueueMessage> PosixMessageQueue::try_receive(std::span<std::byte> buffer) {
  return receive_until(fd_.get(), name_, buffer, &kAlreadyPassed);
}

std::optional<PosixQueueMessage> PosixMessageQueue::receive_for(std::span<std::byte> buffer,
                                                                std::chrono::nanoseconds timeout) {
  timespec deadline = realtime_deadline(timeout);
  return receive_until(fd_.get(), name_, buffer, &deadline);
}

}  // namespace conduit::ipc
