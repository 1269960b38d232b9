#include "conduit/ipc/semaphore.hpp"

#include <fcntl.h>
#include <limits.h>
#include <sys/sem.h>
#include <sys/stat.h>

#include <cerrno>
#include <utility>
#include <vector>

#include "conduit/error.hpp"
#include "deadline.hpp"
#include "kernel_setting.hpp"
#include "posix_name.hpp"
#include "sysv_key.hpp"

namespace conduit::ipc {
namespace {

// glibc stores "/name" as /dev/shm/sem.name, which leaves NAME_MAX - 4
// characters for the name.
constexpr const char* sem_file_prefix = "/dev/shm/sem.";
constexpr std::size_t sem_name_max = NAME_MAX - 4;

// The largest value of a System V semaphore (SEMVMX in the kernel).
constexpr int sysv_value_max = 32767;

const char* const sysv_limits_hint =
    " (kernel.sem = SEMMSL SEMMNS SEMOPM SEMMNI: semaphores per set, in all sets, operations "
    "per semop, sets)";

std::string sem_file(const std::string& name) {
  return sem_file_prefix + name.substr(1);
}

// ---- POSIX semaphores, named or not ------------------------------------------------

void posix_post(sem_t* semaphore, const std::string& target) {
  if (::sem_post(semaphore) < 0) {
    int code = errno;
    if (code == EOVERFLOW)
      throw SystemError("sem_post", target, code,
                        "the value is at SEM_VALUE_MAX (" + std::to_string(SEM_VALUE_MAX) + ")");
    throw SystemError("sem_post", target, code);
  }
}

void posix_wait(sem_t* semaphore, const std::string& target) {
  while (::sem_wait(semaphore) < 0) {
    if (errno != EINTR) throw SystemError("sem_wait", target, errno);
  }
}

bool posix_try_wait(sem_t* semaphore, const std::string& target) {
  while (::sem_trywait(semaphore) < 0) {
    if (errno == EAGAIN) return false;
    if (errno != EINTR) throw SystemError("sem_trywait", target, errno);
  }
  return true;
}

bool posix_wait_for(sem_t* semaphore, const std::string& target, std::chrono::nanoseconds timeout) {
  // An absolute deadline, so a retry after EINTR does not start the clock again.
  const timespec deadline = detail::monotonic_timespec(detail::deadline_after(timeout));
  while (::sem_clockwait(semaphore, CLOCK_MONOTONIC, &deadline) < 0) {
    if (errno == ETIMEDOUT) return false;
    if (errno != EINTR) throw SystemError("sem_clockwait", target, errno);
  }
  return true;
}

int posix_value(sem_t* semaphore, const std::string& target) {
  int value = 0;
  if (::sem_getvalue(semaphore, &value) < 0) throw SystemError("sem_getvalue", target, errno);
  return value;
}

std::string value_too_large(unsigned value) {
  return "the value " + std::to_string(value) + " is over SEM_VALUE_MAX (" +
         std::to_string(SEM_VALUE_MAX) + ")";
}

// ---- System V ----------------------------------------------------------------------

// The argument of semctl, which callers must define themselves (semctl(2)).
union SemctlArgument {
  int value;
  semid_ds* info;
  unsigned short* values;
};

std::string semid_target(int id) {
  return "semid " + std::to_string(id);
}

[[noreturn]] void throw_semop_error(const char* call, int id, int count, int code) {
  switch (code) {
    case EIDRM:
    case EINVAL:
      throw SystemError(call, semid_target(id), code, "the semaphore set has been removed");
    case EFBIG:
      throw SystemError(call, semid_target(id), code,
                        "a semaphore index is out of range: the set has " + std::to_string(count));
    case E2BIG:
      throw SystemError(call, semid_target(id), code,
                        "more operations than SEMOPM allow: " +
                            detail::describe_kernel_setting("kernel.sem") + sysv_limits_hint);
    case ERANGE:
      throw SystemError(call, semid_target(id), code,
                        "the value (or this process's undo adjustment) would pass SEMVMX (32767)");
    case EACCES:
      throw SystemError(call, semid_target(id), code,
                        "the set's mode does not let this user alter it");
    default:
      throw SystemError(call, semid_target(id), code);
  }
}

void check_index(const char* call, int id, int count, int index) {
  if (index < 0 || index >= count)
    throw SystemError(call, semid_target(id), EINVAL,
                      "semaphore index " + std::to_string(index) +
                          " is out of range: the set has " + std::to_string(count));
}

}  // namespace

// ---- NamedSemaphore ---------------------------------------------------------------

NamedSemaphore NamedSemaphore::create(const std::string& name, unsigned value, mode_t mode) {
  detail::check_posix_name("sem_open", name, sem_name_max);
  if (value > SEM_VALUE_MAX) throw SystemError("sem_open", name, EINVAL, value_too_large(value));
  sem_t* semaphore = ::sem_open(name.c_str(), O_CREAT | O_EXCL, mode & 07777, value);
  if (semaphore == SEM_FAILED) {
    int code = errno;
    if (code == EEXIST)
      throw SystemError("sem_open(O_CREAT|O_EXCL)", name, code,
                        "the name is taken; a stale semaphore from a crashed run can be removed "
                        "with NamedSemaphore::open(name).unlink() or rm " +
                            sem_file(name));
    if (code == EACCES)
      throw SystemError("sem_open(O_CREAT|O_EXCL)", name, code,
                        "this user may not create entries in /dev/shm");
    throw SystemError("sem_open(O_CREAT|O_EXCL)", name, code);
  }
  NamedSemaphore created;
  created.semaphore_ = semaphore;
  created.name_ = name;
  created.owner_ = true;
  // Remember which file is ours, so that the destructor removes only it.
  const std::string file = sem_file(name);
  struct stat st {};
  if (::stat(file.c_str(), &st) < 0) {
    int code = errno;
    created.unlink();
    throw SystemError("stat", file, code);
  }
  created.device_ = st.st_dev;
  created.inode_ = st.st_ino;
  // sem_open applies the umask; the caller asked for exactly `mode`. glibc
  // gives no descriptor, so the file is changed by name; until then its mode
  // is at most as permissive as asked.
  if (::chmod(file.c_str(), mode & 07777) < 0) throw SystemError("chmod", file, errno);
  return created;
}

NamedSemaphore NamedSemaphore::open(const std::string& name) {
  detail::check_posix_name("sem_open", name, sem_name_max);
  sem_t* semaphore = ::sem_open(name.c_str(), 0);
  if (semaphore == SEM_FAILED) {
    int code = errno;
    if (code == ENOENT)
      throw SystemError("sem_open", name, code,
                        "no semaphore has that name: it was not created yet, or was removed");
    if (code == EACCES)
      throw SystemError("sem_open", name, code,
                        "the semaphore's mode does not let this user read and write it");
    throw SystemError("sem_open", name, code);
  }
  NamedSemaphore opened;
  opened.semaphore_ = semaphore;
  opened.name_ = name;
  return opened;
}

NamedSemaphore::NamedSemaphore(NamedSemaphore&& other) noexcept
    : semaphore_(std::exchange(other.semaphore_, nullptr)),
      name_(std::exchange(other.name_, {})),
      owner_(std::exchange(other.owner_, false)),
      device_(other.device_),
      inode_(other.inode_) {}

NamedSemaphore& NamedSemaphore::operator=(NamedSemaphore&& other) noexcept {
  if (this != &other) {
    NamedSemaphore previous(std::move(*this));  // closes the old semaphore on leaving
    semaphore_ = std::exchange(other.semaphore_, nullptr);
    name_ = std::exchange(other.name_, {});
    owner_ = std::exchange(other.owner_, false);
    device_ = other.device_;
    inode_ = other.inode_;
  }
  return *this;
}

NamedSemaphore::~NamedSemaphore() {
  if (semaphore_ != nullptr) ::sem_close(semaphore_);
  if (!owner_) return;
  // Remove the name only while it still refers to this semaphore.
  struct stat st {};
  if (::stat(sem_file(name_).c_str(), &st) == 0 && st.st_dev == device_ && st.st_ino == inode_)
    ::sem_unlink(name_.c_str());
}

void NamedSemaphore::post() {
  posix_post(semaphore_, name_);
}

void NamedSemaphore::wait() {
  posix_wait(semaphore_, name_);
}

bool NamedSemaphore::try_wait() {
  return posix_try_wait(semaphore_, name_);
}

bool NamedSemaphore::wait_for(std::chrono::nanoseconds timeout) {
  return posix_wait_for(semaphore_, name_, timeout);
}

int NamedSemaphore::value() const {
  return posix_value(semaphore_, name_);
}

void NamedSemaphore::unlink() {
  owner_ = false;
  if (name_.empty()) return;
  if (::sem_unlink(name_.c_str()) < 0 && errno != ENOENT)
    throw SystemError("sem_unlink", name_, errno);
}

// ---- UnnamedSemaphore ---------------------------------------------------------------

namespace {
const std::string unnamed_target = "unnamed semaphore";
}  // namespace

UnnamedSemaphore::UnnamedSemaphore(unsigned value) {
  if (value > SEM_VALUE_MAX)
    throw SystemError("sem_init", unnamed_target, EINVAL, value_too_large(value));
  if (::sem_init(&semaphore_, 1, value) < 0) throw SystemError("sem_init", unnamed_target, errno);
}

UnnamedSemaphore::~UnnamedSemaphore() {
  ::sem_destroy(&semaphore_);
}

void UnnamedSemaphore::post() {
  posix_post(&semaphore_, unnamed_target);
}

void UnnamedSemaphore::wait() {
  posix_wait(&semaphore_, unnamed_target);
}

bool UnnamedSemaphore::try_wait() {
  return posix_try_wait(&semaphore_, unnamed_target);
}

bool UnnamedSemaphore::wait_for(std::chrono::nanoseconds timeout) {
  return posix_wait_for(&semaphore_, unnamed_target, timeout);
}

int UnnamedSemaphore::value() const {
  return posix_value(&semaphore_, unnamed_target);
}

// ---- SysVSemaphoreSet ---------------------------------------------------------------

SysVSemaphoreSet SysVSemaphoreSet::create(key_t key, int count, unsigned short value, mode_t mode) {
  const std::string target = detail::describe_sysv_key(key);
  if (value > sysv_value_max)
    throw SystemError("semctl(SETALL)", target, ERANGE,
                      "the value " + std::to_string(value) + " is over SEMVMX (32767)");
  int id = ::semget(key, count, IPC_CREAT | IPC_EXCL | static_cast<int>(mode & 0777));
  if (id < 0) {
    int code = errno;
    const std::string asked = "asked for " + std::to_string(count) + " semaphores";
    if (code == EEXIST)
      throw SystemError("semget(IPC_CREAT|IPC_EXCL)", target, code,
                        "a set with this key exists; a stale one from a crashed run can be "
                        "removed with ipcrm -S KEY");
    if (code == EINVAL)
      throw SystemError("semget", target, code,
                        asked + ", but a set holds 1 to SEMMSL: " +
                            detail::describe_kernel_setting("kernel.sem") + sysv_limits_hint);
    if (code == ENOSPC)
      throw SystemError("semget", target, code,
                        asked + ": the number of sets would pass SEMMNI or of semaphores SEMMNS: " +
                            detail::describe_kernel_setting("kernel.sem") + sysv_limits_hint +
                            " (ipcs -s -u shows the usage)");
    throw SystemError("semget", target, code);
  }
  SysVSemaphoreSet set;
  set.id_ = id;
  set.count_ = count;
  set.owner_ = true;
  if (value != 0) {
    std::vector<unsigned short> values(static_cast<std::size_t>(count), value);
    SemctlArgument argument{};
    argument.values = values.data();
    if (::semctl(id, 0, SETALL, argument) < 0)
      throw SystemError("semctl(SETALL)", semid_target(id), errno);
  }
  return set;
}

SysVSemaphoreSet SysVSemaphoreSet::open(key_t key) {
  const std::string target = detail::describe_sysv_key(key);
  int id = ::semget(key, 0, 0600);
  if (id < 0) {
    int code = errno;
    if (code == ENOENT)
      throw SystemError("semget", target, code,
                        "no semaphore set has this key: it was not created yet, or was removed");
    if (code == EACCES)
      throw SystemError("semget", target, code,
                        "the set's mode does not let this user read and alter it");
    throw SystemError("semget", target, code);
  }
  semid_ds info{};
  SemctlArgument argument{};
  argument.info = &info;
  if (::semctl(id, 0, IPC_STAT, argument) < 0)
    throw SystemError("semctl(IPC_STAT)", semid_target(id), errno);
  SysVSemaphoreSet set;
  set.id_ = id;
  set.count_ = static_cast<int>(info.sem_nsems);
  return set;
}

SysVSemaphoreSet::SysVSemaphoreSet(SysVSemaphoreSet&& other) noexcept
    : id_(std::exchange(other.id_, -1)),
      count_(std::exchange(other.count_, 0)),
      owner_(std::exchange(other.owner_, false)) {}

SysVSemaphoreSet& SysVSemaphoreSet::operator=(SysVSemaphoreSet&& other) noexcept {
  if (this != &other) {
    if (owner_) ::semctl(id_, 0, IPC_RMID);
    id_ = std::exchange(other.id_, -1);
    count_ = std::exchange(other.count_, 0);
    owner_ = std::exchange(other.owner_, false);
  }
  return *this;
}

SysVSemaphoreSet::~SysVSemaphoreSet() {
  if (owner_) ::semctl(id_, 0, IPC_RMID);
}

void SysVSemaphoreSet::post(int index, Undo undo) {
  SemaphoreOperation operation{static_cast<unsigned short>(index), 1};
  apply({&operation, 1}, std::nullopt, undo);
}

void SysVSemaphoreSet::wait(int index, Undo undo) {
  SemaphoreOperation operation{static_cast<unsigned short>(index), -1};
  apply({&operation, 1}, std::nullopt, undo);
}

bool SysVSemaphoreSet::try_wait(int index, Undo undo) {
  SemaphoreOperation operation{static_cast<unsigned short>(index), -1};
  return apply({&operation, 1}, std::chrono::nanoseconds::zero(), undo);
}

bool SysVSemaphoreSet::wait_for(std::chrono::nanoseconds timeout, int index, Undo undo) {
  SemaphoreOperation operation{static_cast<unsigned short>(index), -1};
  return apply({&operation, 1}, timeout, undo);
}

bool SysVSemaphoreSet::apply(std::span<const SemaphoreOperation> operations,
                             std::optional<std::chrono::nanoseconds> timeout, Undo undo) {
  short flags = undo == Undo::yes ? SEM_UNDO : 0;
  if (timeout && *timeout <= std::chrono::nanoseconds::zero()) flags |= IPC_NOWAIT;
  // Up to 16 operations without touching the heap.
  sembuf local[16];
  std::vector<sembuf> heap;
  sembuf* buffer = local;
  if (operations.size() > std::size(local)) {
    heap.resize(operations.size());
    buffer = heap.data();
  }
  for (std::size_t i = 0; i < operations.size(); ++i)
    buffer[i] = sembuf{operations[i].index, operations[i].delta, flags};

  const bool timed = timeout && !(flags & IPC_NOWAIT);
  const detail::Deadline deadline = timed ? detail::deadline_after(*timeout) : detail::Deadline{};
  for (;;) {
    int result;
    if (timed) {
      // semtimedop takes the time left, so recompute it after an interruption.
      timespec left = detail::remaining_timespec(deadline);
      result = ::semtimedop(id_, buffer, operations.size(), &left);
    } else {
      result = ::semop(id_, buffer, operations.size());
    }
    if (result == 0) return true;
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return false;
    throw_semop_error(timed ? "semtimedop" : "semop", id_, count_, errno);
  }
}

int SysVSemaphoreSet::value(int index) const {
  check_index("semctl(GETVAL)", id_, count_, index);
  int value = ::semctl(id_, index, GETVAL);
  if (value < 0) throw_semop_error("semctl(GETVAL)", id_, count_, errno);
  return value;
}

void SysVSemaphoreSet::set_value(int index, int value) {
  check_index("semctl(SETVAL)", id_, count_, index);
  SemctlArgument argument{};
  argument.value = value;
  if (::semctl(id_, index, SETVAL, argument) < 0)
    throw_semop_error("semctl(SETVAL)", id_, count_, errno);
}

int SysVSemaphoreSet::waiting(int index) const {
  check_index("semctl(GETNCNT)", id_, count_, index);
  int count = ::semctl(id_, index, GETNCNT);
  if (count < 0) throw_semop_error("semctl(GETNCNT)", id_, count_, errno);
  return count;
}

void SysVSemaphoreSet::remove() {
  owner_ = false;
  if (id_ < 0) return;
  if (::semctl(id_, 0, IPC_RMID) < 0 && errno != EINVAL && errno != EIDRM)
    throw SystemError("semctl(IPC_RMID)", semid_target(id_), errno,
                      "only the set's owner, creator or root may remove it");
}

}  // namespace conduit::ipc
