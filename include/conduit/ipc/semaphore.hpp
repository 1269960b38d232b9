// Semaphores: POSIX named (sem_open), POSIX unnamed process-shared (sem_init
// in shared memory) and System V semaphore sets (semget).
//
// Every wait comes in three forms: wait() blocks, try_wait() never blocks,
// wait_for(timeout) gives up after timeout (measured on CLOCK_MONOTONIC, so
// changes to the wall clock do not shorten or stretch it) and returns false.
// A signal arriving during a wait does not end it: EINTR is retried, with the
// time already spent deducted.
//
// Which one to use:
// - NamedSemaphore: unrelated processes meet by name (/dev/shm/sem.NAME).
// - UnnamedSemaphore: processes that already share memory (a memfd or a
//   segment) put the semaphore inside it; nothing is named, nothing outlives
//   the memory.
// - SysVSemaphoreSet: the only kind the kernel repairs when a process dies
//   holding it (SEM_UNDO), and the only kind that changes several semaphores
//   in one atomic step. Every operation is a system call, so it is the slowest.
//
// Semaphores have no owner, so a POSIX semaphore taken by a process that then
// dies stays taken and its peers wait forever: use timeouts, SEM_UNDO, or a
// RobustMutex (conduit/ipc/robust_mutex.hpp), which reports a dead owner.
#pragma once

#include <semaphore.h>
#include <sys/types.h>

#include <chrono>
#include <optional>
#include <span>
#include <string>

namespace conduit::ipc {

// A POSIX named semaphore. Move-only. The creator owns the name and removes
// it (sem_unlink) on destruction, unless the name meanwhile names another
// semaphore; processes that opened it keep using it until they close it.
class NamedSemaphore {
 public:
  // Creates "/name" (one leading slash, no other, not "/." or "/..", at most
  // 251 characters after the slash since glibc adds "sem.") with `value` and
  // exactly `mode` (the umask is not applied). Throws SystemError: EEXIST
  // when the name is taken, EINVAL for a malformed name (naming the rule) or
  // a value over SEM_VALUE_MAX, EACCES.
  static NamedSemaphore create(const std::string& name, unsigned value, mode_t mode = 0600);
  // Opens an existing "/name"; does not own the name. Throws SystemError:
  // ENOENT, EACCES (the mode does not grant read and write to this user).
  static NamedSemaphore open(const std::string& name);

  NamedSemaphore() = default;
  NamedSemaphore(NamedSemaphore&& other) noexcept;
  NamedSemaphore& operator=(NamedSemaphore&& other) noexcept;
  NamedSemaphore(const NamedSemaphore&) = delete;
  NamedSemaphore& operator=(const NamedSemaphore&) = delete;
  // Closes the semaphore; the owner also removes the name.
  ~NamedSemaphore();

  // Increments the value, waking one waiter. Throws SystemError (EOVERFLOW)
  // at SEM_VALUE_MAX.
  void post();
  // Decrements the value, blocking while it is 0.
  void wait();
  // Decrements the value if it is above 0; false otherwise.
  bool try_wait();
  // Decrements the value, waiting at most timeout; false when it ran out.
  bool wait_for(std::chrono::nanoseconds timeout);
  // The current value (a snapshot; it may change at once).
  int value() const;

  const std::string& name() const { return name_; }
  bool owns_name() const { return owner_; }
  // Removes the name now (owner or not); the semaphore lives on while open.
  // Does nothing when the name is already gone. This object no longer owns it.
  void unlink();

 private:
  sem_t* semaphore_ = nullptr;
  std::string name_;
  bool owner_ = false;
  dev_t device_ = 0;
  ino_t inode_ = 0;
};

// A POSIX unnamed semaphore shared between processes (sem_init with pshared
// = 1). It is not a handle but the semaphore itself, so it lives where it is
// constructed. Placement contract:
// - Construct it (placement new, e.g. as a member of a struct) inside memory
//   mapped MAP_SHARED by every process that uses it: a SharedMemory mapping,
//   or a memfd / MAP_SHARED|MAP_ANONYMOUS mapping inherited across fork. On
//   the stack or heap it is visible to one process only.
// - Exactly one process constructs it, before any other uses it, and destroys
//   it (std::destroy_at) once no process uses it any more; the others reach it
//   through their own mapping of the same memory (at any address).
// - Keep the memory mapped while waiting on it.
// Neither copyable nor movable: a copy of a semaphore is not a semaphore.
class UnnamedSemaphore {
 public:
  // Initialises the semaphore with `value`. Throws SystemError (EINVAL) for a
  // value over SEM_VALUE_MAX.
  explicit UnnamedSemaphore(unsigned value);
  UnnamedSemaphore(const UnnamedSemaphore&) = delete;
  UnnamedSemaphore& operator=(const UnnamedSemaphore&) = delete;
  // REQUIRES: no process is waiting on it.
  ~UnnamedSemaphore();

  // As for NamedSemaphore.
  void post();
  void wait();
  bool try_wait();
  bool wait_for(std::chrono::nanoseconds timeout);
  int value() const;

 private:
  mutable sem_t semaphore_;
};

// Whether the kernel undoes an operation when the process that made it exits
// (SEM_UNDO): a process killed while holding a semaphore then gives it back.
enum class Undo { yes, no };

// One change to one semaphore of a set, for SysVSemaphoreSet::apply():
// delta < 0 waits until the value is at least -delta and subtracts it,
// delta > 0 adds it, delta == 0 waits until the value is 0.
struct SemaphoreOperation {
  unsigned short index = 0;
  short delta = 0;
};

// A System V semaphore set (semget). Move-only. The creator removes the set
// (IPC_RMID) on destruction, which wakes every waiter with an error (EIDRM).
// Sets are not subject to the umask; `ipcs -s` lists them.
//
// SEM_UNDO is the default: with it, wait() then post() in a process leaves no
// adjustment behind, and a process that dies between them gives the unit back.
// For a counting semaphore where one process posts and another waits (a
// producer and a consumer), pass Undo::no to both, or a dead poster's posts
// are taken back when it exits.
class SysVSemaphoreSet {
 public:
  // Creates a set of `count` semaphores, each with `value`, for `key`
  // (IPC_CREAT | IPC_EXCL; IPC_PRIVATE for a private set) with permission
  // bits `mode`. Throws SystemError: EEXIST when the key is taken; EINVAL
  // naming kernel.sem's SEMMSL when count is 0 or too large; ERANGE for a
  // value over SEMVMX (32767); ENOSPC naming SEMMNI or SEMMNS. A process that
  // opens the set by key in the moment between its creation and the values
  // being set sees 0s.
  static SysVSemaphoreSet create(key_t key, int count, unsigned short value = 0,
                                 mode_t mode = 0600);
  // Opens an existing set by key, checking that its mode grants read and
  // alter to this user; does not own it. Throws SystemError: ENOENT, EACCES.
  static SysVSemaphoreSet open(key_t key);

  SysVSemaphoreSet() = default;
  SysVSemaphoreSet(SysVSemaphoreSet&& other) noexcept;
  SysVSemaphoreSet& operator=(SysVSemaphoreSet&& other) noexcept;
  SysVSemaphoreSet(const SysVSemaphoreSet&) = delete;
  SysVSemaphoreSet& operator=(const SysVSemaphoreSet&) = delete;
  ~SysVSemaphoreSet();

  // Adds 1 to semaphore `index`. Throws SystemError: ERANGE at SEMVMX,
  // EIDRM when the set was removed, EACCES.
  void post(int index = 0, Undo undo = Undo::yes);
  // Subtracts 1 from semaphore `index`, blocking while it is 0. Throws
  // SystemError: EIDRM when the set is removed meanwhile.
  void wait(int index = 0, Undo undo = Undo::yes);
  // Subtracts 1 if the value is above 0 (IPC_NOWAIT); false otherwise.
  bool try_wait(int index = 0, Undo undo = Undo::yes);
  // Subtracts 1, waiting at most timeout (semtimedop); false when it ran out.
  bool wait_for(std::chrono::nanoseconds timeout, int index = 0, Undo undo = Undo::yes);
  // Applies all operations atomically: none takes effect until all can.
  // Waits at most `timeout` (forever when nullopt; zero means IPC_NOWAIT);
  // false when it ran out. Throws SystemError: EFBIG for an index out of
  // range, E2BIG for more than kernel.sem's SEMOPM operations, EIDRM.
  bool apply(std::span<const SemaphoreOperation> operations,
             std::optional<std::chrono::nanoseconds> timeout = std::nullopt, Undo undo = Undo::yes);

  // The current value of semaphore `index` (GETVAL).
  int value(int index = 0) const;
  // Sets semaphore `index` to `value` (SETVAL), which also clears every
  // process's undo adjustment for it.
  void set_value(int index, int value);
  // How many processes are blocked waiting to decrement `index` (GETNCNT).
  int waiting(int index = 0) const;

  int id() const { return id_; }
  int size() const { return count_; }
  bool owner() const { return owner_; }
  // Removes the set now (IPC_RMID), owner or not; waiters fail with EIDRM.
  // Does nothing when already removed; throws SystemError (EPERM) when this
  // user may not. This object no longer owns the set.
  void remove();

 private:
  int id_ = -1;
  int count_ = 0;
  bool owner_ = false;
};

}  // namespace conduit::ipc
