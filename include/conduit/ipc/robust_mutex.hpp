// A process-shared mutex that survives its owner's death, and a
// process-shared condition variable to go with it.
//
// A semaphore or an ordinary mutex held by a process that crashes stays held,
// and every other process waits on it forever. A robust mutex
// (PTHREAD_MUTEX_ROBUST) is released by the kernel when its owning thread
// dies, and the next locker is told so: it gets the mutex with
// LockResult::previous_owner_died, because the state it protects may be half
// updated. That locker repairs the state and calls mark_consistent(); if it
// unlocks without doing so, the mutex becomes permanently unusable
// (ENOTRECOVERABLE) and every later lock throws, so nobody trusts the state.
//
// Placement contract, as for UnnamedSemaphore (conduit/ipc/semaphore.hpp):
// - Construct RobustMutex and SharedCondition (placement new, e.g. as members
//   of a struct) in memory mapped MAP_SHARED by every process that uses them,
//   such as a SharedMemory mapping or a memfd mapping inherited across fork.
// - Exactly one process constructs them, before the others use them, and
//   destroys them (std::destroy_at) once nobody uses them. The others reach
//   them through their own mapping of the same memory, at any address.
// - A process keeps the memory mapped while it holds the mutex: the kernel
//   marks the mutex of a dying owner through the owner's mapping.
// Neither type is copyable or movable.
//
// Ownership belongs to a thread: a thread that exits holding the mutex counts
// as a dead owner, like a process that does.
#pragma once

#include <pthread.h>

#include <chrono>
#include <concepts>
#include <optional>
#include <utility>

namespace conduit::ipc {

// How a lock was obtained.
enum class LockResult {
  acquired,             // the mutex was free or released normally
  previous_owner_died,  // the owner died holding it: repair, then mark_consistent()
};

// A robust, process-shared, error-checking mutex (pthread_mutex_t with
// PTHREAD_PROCESS_SHARED, PTHREAD_MUTEX_ROBUST, PTHREAD_MUTEX_ERRORCHECK).
//
// Every locking call throws SystemError: ENOTRECOVERABLE when an earlier
// locker was told the owner died and unlocked without mark_consistent() (the
// mutex must be destroyed and re-created with its state), EDEADLK when this
// thread already holds it (try_lock included).
class RobustMutex {
 public:
  // Throws SystemError when the attributes are not supported.
  RobustMutex();
  RobustMutex(const RobustMutex&) = delete;
  RobustMutex& operator=(const RobustMutex&) = delete;
  // REQUIRES: no thread holds or waits for the mutex.
  ~RobustMutex();

  // Locks, blocking until the mutex is free.
  LockResult lock();
  // Locks, and when the previous owner died calls repair() with the mutex
  // held, then mark_consistent(). When repair throws, the mutex is unlocked
  // unrepaired (so it becomes not recoverable) and the exception propagates.
  template <std::invocable Repair>
  LockResult lock(Repair&& repair);
  // Locks if the mutex is free (or its owner is dead); std::nullopt if another
  // thread holds it.
  std::optional<LockResult> try_lock();
  // Locks, waiting at most timeout (on CLOCK_MONOTONIC); std::nullopt when
  // the timeout ran out first.
  std::optional<LockResult> lock_for(std::chrono::nanoseconds timeout);
  // Unlocks. Throws SystemError (EPERM) when this thread does not hold it.
  void unlock();

  // Declares the protected state repaired after previous_owner_died, so the
  // mutex stays usable. REQUIRES: this thread holds the mutex, obtained with
  // previous_owner_died. Throws SystemError (EINVAL) otherwise.
  void mark_consistent();

  // The pthread mutex, for SharedCondition.
  pthread_mutex_t* native_handle() { return &mutex_; }

 private:
  pthread_mutex_t mutex_;
};

// Holds a RobustMutex for a scope: locks on construction, unlocks on
// destruction. Move-only.
class RobustLock {
 public:
  // Locks `mutex`. When the previous owner died, previous_owner_died() is
  // true and the holder must repair and call mark_consistent() before the
  // scope ends, or the mutex becomes not recoverable.
  explicit RobustLock(RobustMutex& mutex) : mutex_(&mutex), result_(mutex.lock()) {}
  // Locks `mutex`, running repair() first when the previous owner died (see
  // RobustMutex::lock(repair)).
  template <std::invocable Repair>
  RobustLock(RobustMutex& mutex, Repair&& repair)
      : mutex_(&mutex), result_(mutex.lock(std::forward<Repair>(repair))) {}
  RobustLock(RobustLock&& other) noexcept
      : mutex_(std::exchange(other.mutex_, nullptr)), result_(other.result_) {}
  RobustLock& operator=(RobustLock&&) = delete;
  RobustLock(const RobustLock&) = delete;
  RobustLock& operator=(const RobustLock&) = delete;
  ~RobustLock() {
    if (mutex_ != nullptr) ::pthread_mutex_unlock(mutex_->native_handle());
  }

  bool previous_owner_died() const { return result_ == LockResult::previous_owner_died; }
  // Marks the mutex consistent after a repair.
  void mark_consistent() {
    mutex_->mark_consistent();
    result_ = LockResult::acquired;
  }
  RobustMutex& mutex() const { return *mutex_; }

 private:
  friend class SharedCondition;

  RobustMutex* mutex_;
  LockResult result_;
};

// A process-shared condition variable (pthread_cond_t with
// PTHREAD_PROCESS_SHARED, timed waits on CLOCK_MONOTONIC), used with a
// RobustMutex. Placement contract as above.
//
// Waits can wake spuriously: wait in a loop on a predicate of the shared
// state. When a waiter's process dies, a notify_one() may be spent on it; use
// notify_all() where waiters can die. The destructor does not call
// pthread_cond_destroy, because glibc's waits for every waiter that started
// to leave, and a waiter whose process died never does; on Linux the
// condition variable holds no other resource, so nothing leaks.
class SharedCondition {
 public:
  // Throws SystemError when the attributes are not supported.
  SharedCondition();
  SharedCondition(const SharedCondition&) = delete;
  SharedCondition& operator=(const SharedCondition&) = delete;
  ~SharedCondition() = default;

  // Atomically unlocks `mutex` and waits for a notification, then locks it
  // again. Returns previous_owner_died when the mutex's owner died while this
  // thread waited (repair as after RobustMutex::lock). REQUIRES: this thread
  // holds `mutex`. Throws SystemError like RobustMutex::lock().
  LockResult wait(RobustMutex& mutex);
  // As wait(), giving up after timeout: std::nullopt when it ran out (the
  // mutex is held again either way). previous_owner_died takes precedence
  // over the timeout.
  std::optional<LockResult> wait_for(RobustMutex& mutex, std::chrono::nanoseconds timeout);
  // The same with a RobustLock, whose previous_owner_died() then tells.
  LockResult wait(RobustLock& lock);
  std::optional<LockResult> wait_for(RobustLock& lock, std::chrono::nanoseconds timeout);

  // Wakes one waiter, or all.
  void notify_one();
  void notify_all();

 private:
  pthread_cond_t condition_;
};

template <std::invocable Repair>
LockResult RobustMutex::lock(Repair&& repair) {
  LockResult result = lock();
  if (result == LockResult::previous_owner_died) {
    try {
      std::forward<Repair>(repair)();
    } catch (...) {
      unlock();
      throw;
    }
    mark_consistent();
  }
  return result;
}

}  // namespace conduit::ipc
