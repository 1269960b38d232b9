#include "conduit/ipc/robust_mutex.hpp"

#include <time.h>

#include <cerrno>

#include "conduit/error.hpp"
#include "deadline.hpp"

namespace conduit::ipc {
namespace {

constexpr const char* mutex_target = "robust mutex";

// The outcome of a call that leaves the mutex locked on success.
LockResult lock_result(const char* call, int code) {
  switch (code) {
    case 0:
      return LockResult::acquired;
    case EOWNERDEAD:
      return LockResult::previous_owner_died;
    case ENOTRECOVERABLE:
      throw SystemError(call, mutex_target, code,
                        "an earlier holder was told that the owner before it died and unlocked "
                        "without mark_consistent(), so the state the mutex guards cannot be "
                        "trusted; destroy the mutex and re-create it with fresh state");
    case EDEADLK:
      throw SystemError(call, mutex_target, code, "this thread already holds the mutex");
    case EPERM:
      throw SystemError(call, mutex_target, code, "this thread does not hold the mutex");
    default:
      throw SystemError(call, mutex_target, code);
  }
}

void check_setup(const char* call, int code) {
  if (code != 0) throw SystemError(call, mutex_target, code);
}

// Owns a pthread_mutexattr_t for the duration of an initialisation.
class MutexAttributes {
 public:
  MutexAttributes() { check_setup("pthread_mutexattr_init", ::pthread_mutexattr_init(&value_)); }
  ~MutexAttributes() { ::pthread_mutexattr_destroy(&value_); }
  MutexAttributes(const MutexAttributes&) = delete;
  MutexAttributes& operator=(const MutexAttributes&) = delete;
  pthread_mutexattr_t* get() { return &value_; }

 private:
  pthread_mutexattr_t value_;
};

class ConditionAttributes {
 public:
  ConditionAttributes() { check_setup("pthread_condattr_init", ::pthread_condattr_init(&value_)); }
  ~ConditionAttributes() { ::pthread_condattr_destroy(&value_); }
  ConditionAttributes(const ConditionAttributes&) = delete;
  ConditionAttributes& operator=(const ConditionAttributes&) = delete;
  pthread_condattr_t* get() { return &value_; }

 private:
  pthread_condattr_t value_;
};

}  // namespace

// ---- RobustMutex --------------------------------------------------------------------

RobustMutex::RobustMutex() {
  MutexAttributes attributes;
  check_setup("pthread_mutexattr_setpshared",
              ::pthread_mutexattr_setpshared(attributes.get(), PTHREAD_PROCESS_SHARED));
  check_setup("pthread_mutexattr_setrobust",
              ::pthread_mutexattr_setrobust(attributes.get(), PTHREAD_MUTEX_ROBUST));
  check_setup("pthread_mutexattr_settype",
              ::pthread_mutexattr_settype(attributes.get(), PTHREAD_MUTEX_ERRORCHECK));
  check_setup("pthread_mutex_init", ::pthread_mutex_init(&mutex_, attributes.get()));
}

RobustMutex::~RobustMutex() {
  ::pthread_mutex_destroy(&mutex_);
}

LockResult RobustMutex::lock() {
  return lock_result("pthread_mutex_lock", ::pthread_mutex_lock(&mutex_));
}

std::optional<LockResult> RobustMutex::try_lock() {
  // Not pthread_mutex_trylock: on a not recoverable mutex, glibc (2.36) returns
  // ENOTRECOVERABLE from it but leaves the mutex locked by the caller, so every
  // later call fails with EDEADLK and other threads block for ever. A clocklock
  // whose deadline has passed tries once, as trylock would, without that flaw.
  const timespec past{};
  int code = ::pthread_mutex_clocklock(&mutex_, CLOCK_MONOTONIC, &past);
  if (code == ETIMEDOUT) return std::nullopt;
  return lock_result("pthread_mutex_trylock", code);
}

std::optional<LockResult> RobustMutex::lock_for(std::chrono::nanoseconds timeout) {
  const timespec deadline = detail::monotonic_timespec(detail::deadline_after(timeout));
  int code = ::pthread_mutex_clocklock(&mutex_, CLOCK_MONOTONIC, &deadline);
  if (code == ETIMEDOUT) return std::nullopt;
  return lock_result("pthread_mutex_clocklock", code);
}

void RobustMutex::unlock() {
  int code = ::pthread_mutex_unlock(&mutex_);
  if (code == EPERM)
    throw SystemError("pthread_mutex_unlock", mutex_target, code,
                      "this thread does not hold the mutex");
  if (code != 0) throw SystemError("pthread_mutex_unlock", mutex_target, code);
}

void RobustMutex::mark_consistent() {
  int code = ::pthread_mutex_consistent(&mutex_);
  if (code == EINVAL)
    throw SystemError("pthread_mutex_consistent", mutex_target, code,
                      "only the holder of a mutex whose previous owner died can mark it "
                      "consistent");
  if (code != 0) throw SystemError("pthread_mutex_consistent", mutex_target, code);
}

// ---- SharedCondition -----------------------------------------------------------------

SharedCondition::SharedCondition() {
  ConditionAttributes attributes;
  check_setup("pthread_condattr_setpshared",
              ::pthread_condattr_setpshared(attributes.get(), PTHREAD_PROCESS_SHARED));
  check_setup("pthread_condattr_setclock",
              ::pthread_condattr_setclock(attributes.get(), CLOCK_MONOTONIC));
  check_setup("pthread_cond_init", ::pthread_cond_init(&condition_, attributes.get()));
}

LockResult SharedCondition::wait(RobustMutex& mutex) {
  return lock_result("pthread_cond_wait", ::pthread_cond_wait(&condition_, mutex.native_handle()));
}

std::optional<LockResult> SharedCondition::wait_for(RobustMutex& mutex,
                                                    std::chrono::nanoseconds timeout) {
  const timespec deadline = detail::monotonic_timespec(detail::deadline_after(timeout));
  int code =
      ::pthread_cond_clockwait(&condition_, mutex.native_handle(), CLOCK_MONOTONIC, &deadline);
  if (code == ETIMEDOUT) return std::nullopt;
  return lock_result("pthread_cond_clockwait", code);
}

LockResult SharedCondition::wait(RobustLock& lock) {
  LockResult result = wait(*lock.mutex_);
  if (result == LockResult::previous_owner_died) lock.result_ = result;
  return result;
}

std::optional<LockResult> SharedCondition::wait_for(RobustLock& lock,
                                                    std::chrono::nanoseconds timeout) {
  std::optional<LockResult> result = wait_for(*lock.mutex_, timeout);
  if (result == LockResult::previous_owner_died) lock.result_ = *result;
  return result;
}

void SharedCondition::notify_one() {
  ::pthread_cond_signal(&condition_);
}

void SharedCondition::notify_all() {
  ::pthread_cond_broadcast(&condition_);
}

}  // namespace conduit::ipc
