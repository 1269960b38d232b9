// Specification of the robust process-shared mutex and condition variable
// (conduit/ipc/robust_mutex.hpp).

#include "conduit/ipc/robust_mutex.hpp"

#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

#include "conduit/error.hpp"
#include "shared_state.hpp"
#include "test_support.hpp"

namespace conduit::ipc {
namespace {

using namespace std::chrono_literals;
using conduit::testing::contains;
using conduit::testing::eventually;
using conduit::testing::exited_cleanly;
using conduit::testing::fork_child;
using conduit::testing::InSharedMemory;
using conduit::testing::Interrupter;
using conduit::testing::InterruptingSignal;
using conduit::testing::Signal;
using conduit::testing::system_error_of;
using conduit::testing::time_of;
using conduit::testing::wait_child;

constexpr auto generous = 5s;

// State shared by the processes of a test, guarded by `mutex`.
struct Guarded {
  RobustMutex mutex;
  SharedCondition condition;
  long counter = 0;
  int state = 0;  // 1 while an update is half done
  bool ready = false;
};

bool killed_by(int status, int signal) {
  return status >= 0 && WIFSIGNALED(status) && WTERMSIG(status) == signal;
}

// Forks a child that locks the mutex, leaves the state half updated and dies
// by SIGKILL while holding it; returns once the child is reaped.
void die_holding(InSharedMemory<Guarded>& shared) {
  pid_t child = fork_child([&] {
    shared->mutex.lock();
    shared->state = 1;
    ::raise(SIGKILL);
  });
  ASSERT_TRUE(killed_by(wait_child(child), SIGKILL));
}

// ============================ RobustMutex ========================================

TEST(RobustMutex, LocksAndUnlocks) {
  InSharedMemory<Guarded> shared;
  EXPECT_EQ(shared->mutex.lock(), LockResult::acquired);
  shared->mutex.unlock();
  EXPECT_EQ(shared->mutex.try_lock(), LockResult::acquired);
  shared->mutex.unlock();
  EXPECT_EQ(shared->mutex.lock_for(1ms), LockResult::acquired);
  shared->mutex.unlock();
}

TEST(RobustMutex, TryLockAndLockForFailWhileAnotherProcessHoldsIt) {
  InSharedMemory<Guarded> shared;
  Signal locked, release;
  pid_t child = fork_child([&] {
    ASSERT_EQ(shared->mutex.lock(), LockResult::acquired);
    locked.fire();
    EXPECT_TRUE(release.wait_for(generous));
    shared->mutex.unlock();
  });
  ASSERT_TRUE(locked.wait_for());
  EXPECT_EQ(shared->mutex.try_lock(), std::nullopt);
  std::optional<LockResult> result = LockResult::acquired;
  auto elapsed = time_of([&] { result = shared->mutex.lock_for(200ms); });
  EXPECT_EQ(result, std::nullopt);
  EXPECT_GE(elapsed, 200ms);
  EXPECT_LT(elapsed, generous);
  release.fire();
  EXPECT_EQ(shared->mutex.lock_for(generous), LockResult::acquired);
  shared->mutex.unlock();
  EXPECT_TRUE(exited_cleanly(wait_child(child)));
}

TEST(RobustMutex, ExcludesOtherProcessesAndThreads) {
  InSharedMemory<Guarded> shared;
  constexpr int processes = 3, threads = 2, rounds = 5000;
  auto work = [&] {
    for (int i = 0; i < rounds; ++i) {
      RobustLock lock(shared->mutex);
      long seen = shared->counter;
      if (i % 512 == 0) std::this_thread::yield();
      shared->counter = seen + 1;
    }
  };
  std::vector<pid_t> children;
  for (int p = 0; p < processes; ++p) {
    children.push_back(fork_child([&] {
      std::vector<std::thread> pool;
      for (int t = 0; t < threads; ++t) pool.emplace_back(work);
      for (auto& thread : pool) thread.join();
    }));
  }
  work();
  for (pid_t child : children) EXPECT_TRUE(exited_cleanly(wait_child(child)));
  EXPECT_EQ(shared->counter, long{processes * threads + 1} * rounds);
}

TEST(RobustMutex, NextLockerIsToldTheOwnerDiedAndRepairs) {
  InSharedMemory<Guarded> shared;
  die_holding(shared);
  ASSERT_EQ(shared->mutex.lock(), LockResult::previous_owner_died);
  EXPECT_EQ(shared->state, 1) << "the dead owner's half update is visible";
  shared->state = 0;  // repair
  shared->mutex.mark_consistent();
  shared->mutex.unlock();
  EXPECT_EQ(shared->mutex.lock(), LockResult::acquired);
  shared->mutex.unlock();
}

TEST(RobustMutex, TryLockReportsTheDeadOwner) {
  InSharedMemory<Guarded> shared;
  die_holding(shared);
  EXPECT_EQ(shared->mutex.try_lock(), LockResult::previous_owner_died);
  shared->mutex.mark_consistent();
  shared->mutex.unlock();
}

TEST(RobustMutex, LockForReportsTheDeadOwner) {
  InSharedMemory<Guarded> shared;
  die_holding(shared);
  EXPECT_EQ(shared->mutex.lock_for(generous), LockResult::previous_owner_died);
  shared->mutex.mark_consistent();
  shared->mutex.unlock();
}

TEST(RobustMutex, ALockerWaitingWhenTheOwnerDiesIsToldAtOnce) {
  InSharedMemory<Guarded> shared;
  Signal locked, die;
  pid_t child = fork_child([&] {
    shared->mutex.lock();
    shared->state = 1;
    locked.fire();
    die.wait_for(generous);
    ::raise(SIGKILL);
  });
  ASSERT_TRUE(locked.wait_for());
  std::optional<LockResult> result;
  {
    std::thread killer([&] {
      std::this_thread::sleep_for(100ms);
      die.fire();
    });
    result = shared->mutex.lock_for(generous);
    killer.join();
  }
  EXPECT_EQ(result, LockResult::previous_owner_died);
  EXPECT_TRUE(killed_by(wait_child(child), SIGKILL));
  shared->mutex.mark_consistent();
  shared->mutex.unlock();
}

TEST(RobustMutex, RepairCallbackRunsOnlyAfterADeathAndKeepsTheMutexUsable) {
  InSharedMemory<Guarded> shared;
  int repairs = 0;
  auto repair = [&] {
    ++repairs;
    shared->state = 0;
  };
  EXPECT_EQ(shared->mutex.lock(repair), LockResult::acquired);
  shared->mutex.unlock();
  EXPECT_EQ(repairs, 0);
  die_holding(shared);
  EXPECT_EQ(shared->mutex.lock(repair), LockResult::previous_owner_died);
  EXPECT_EQ(repairs, 1);
  EXPECT_EQ(shared->state, 0);
  shared->mutex.unlock();
  EXPECT_EQ(shared->mutex.lock(repair), LockResult::acquired);
  EXPECT_EQ(repairs, 1);
  shared->mutex.unlock();
}

TEST(RobustMutex, UnlockingWithoutRepairMakesItNotRecoverableForEveryone) {
  InSharedMemory<Guarded> shared;
  die_holding(shared);
  ASSERT_EQ(shared->mutex.lock(), LockResult::previous_owner_died);
  shared->mutex.unlock();  // without mark_consistent()
  auto [code, message] = system_error_of([&] { shared->mutex.lock(); });
  EXPECT_EQ(code, ENOTRECOVERABLE);
  EXPECT_TRUE(contains(message, "pthread_mutex_lock(robust mutex)")) << message;
  EXPECT_TRUE(contains(message, "re-create")) << message;
  EXPECT_EQ(system_error_of([&] { shared->mutex.try_lock(); }).first, ENOTRECOVERABLE);
  EXPECT_EQ(system_error_of([&] { shared->mutex.lock_for(10ms); }).first, ENOTRECOVERABLE);
  EXPECT_EQ(system_error_of([&] { shared->mutex.try_lock(); }).first, ENOTRECOVERABLE)
      << "a failed try_lock left the mutex held";
  pid_t child = fork_child([&] {
    EXPECT_EQ(system_error_of([&] { shared->mutex.lock_for(generous); }).first, ENOTRECOVERABLE);
  });
  EXPECT_TRUE(exited_cleanly(wait_child(child)));
}

TEST(RobustMutex, RepairThatThrowsLeavesTheMutexNotRecoverable) {
  InSharedMemory<Guarded> shared;
  die_holding(shared);
  EXPECT_THROW(shared->mutex.lock([] { throw std::runtime_error("cannot repair"); }),
               std::runtime_error);
  EXPECT_EQ(system_error_of([&] { shared->mutex.lock(); }).first, ENOTRECOVERABLE);
}

TEST(RobustMutex, AThreadThatExitsHoldingItCountsAsADeadOwner) {
  InSharedMemory<Guarded> shared;
  std::thread([&] { shared->mutex.lock(); }).join();
  EXPECT_EQ(shared->mutex.try_lock(), LockResult::previous_owner_died);
  shared->mutex.mark_consistent();
  shared->mutex.unlock();
}

TEST(RobustMutex, RelockingFromTheHoldingThreadThrowsEDEADLK) {
  InSharedMemory<Guarded> shared;
  shared->mutex.lock();
  auto [code, message] = system_error_of([&] { shared->mutex.lock(); });
  EXPECT_EQ(code, EDEADLK);
  EXPECT_TRUE(contains(message, "already holds")) << message;
  EXPECT_EQ(system_error_of([&] { shared->mutex.try_lock(); }).first, EDEADLK);
  EXPECT_EQ(system_error_of([&] { shared->mutex.lock_for(10ms); }).first, EDEADLK);
  shared->mutex.unlock();
}

TEST(RobustMutex, UnlockingWithoutHoldingThrowsEPERM) {
  InSharedMemory<Guarded> shared;
  auto [code, message] = system_error_of([&] { shared->mutex.unlock(); });
  EXPECT_EQ(code, EPERM);
  EXPECT_TRUE(contains(message, "does not hold")) << message;
  shared->mutex.lock();
  std::thread([&] {
    EXPECT_EQ(system_error_of([&] { shared->mutex.unlock(); }).first, EPERM);
  }).join();
  shared->mutex.unlock();
}

TEST(RobustMutex, MarkConsistentWithoutADeadOwnerThrowsEINVAL) {
  InSharedMemory<Guarded> shared;
  shared->mutex.lock();
  auto [code, message] = system_error_of([&] { shared->mutex.mark_consistent(); });
  EXPECT_EQ(code, EINVAL);
  EXPECT_TRUE(contains(message, "previous owner died")) << message;
  shared->mutex.unlock();
}

TEST(RobustMutex, LockForTimesOutOnTimeEvenWhenSignalsKeepArriving) {
  InSharedMemory<Guarded> shared;
  Signal locked, release;
  pid_t child = fork_child([&] {
    shared->mutex.lock();
    locked.fire();
    release.wait_for(generous);
    shared->mutex.unlock();
  });
  ASSERT_TRUE(locked.wait_for());
  InterruptingSignal signal;
  std::optional<LockResult> result = LockResult::acquired;
  std::chrono::milliseconds elapsed;
  {
    Interrupter interrupter(::pthread_self(), 5, 30ms);
    elapsed = time_of([&] { result = shared->mutex.lock_for(300ms); });
  }
  EXPECT_EQ(result, std::nullopt);
  EXPECT_GE(elapsed, 300ms);
  EXPECT_LT(elapsed, generous);
  EXPECT_GE(InterruptingSignal::count(), 5);
  release.fire();
  EXPECT_TRUE(exited_cleanly(wait_child(child)));
}

// ============================ RobustLock ========================================

TEST(RobustMutexLock, UnlocksAtTheEndOfTheScope) {
  InSharedMemory<Guarded> shared;
  {
    RobustLock lock(shared->mutex);
    EXPECT_FALSE(lock.previous_owner_died());
    EXPECT_EQ(&lock.mutex(), &shared->mutex);
  }
  EXPECT_EQ(shared->mutex.try_lock(), LockResult::acquired);
  shared->mutex.unlock();
}

TEST(RobustMutexLock, ReportsADeadOwnerAndKeepsTheMutexUsableOnceMarkedConsistent) {
  InSharedMemory<Guarded> shared;
  die_holding(shared);
  {
    RobustLock lock(shared->mutex);
    ASSERT_TRUE(lock.previous_owner_died());
    shared->state = 0;
    lock.mark_consistent();
    EXPECT_FALSE(lock.previous_owner_died());
  }
  EXPECT_EQ(shared->mutex.lock(), LockResult::acquired);
  shared->mutex.unlock();
}

TEST(RobustMutexLock, RunsTheRepairCallback) {
  InSharedMemory<Guarded> shared;
  die_holding(shared);
  {
    RobustLock lock(shared->mutex, [&] { shared->state = 0; });
    EXPECT_TRUE(lock.previous_owner_died());
    EXPECT_EQ(shared->state, 0);
  }
  EXPECT_EQ(shared->mutex.lock(), LockResult::acquired);
  shared->mutex.unlock();
}

// ============================ SharedCondition ========================================

TEST(SharedCondition, ChildWaitsUntilTheParentNotifies) {
  InSharedMemory<Guarded> shared;
  pid_t child = fork_child([&] {
    RobustLock lock(shared->mutex);
    while (!shared->ready) ASSERT_NE(shared->condition.wait_for(lock, generous), std::nullopt);
  });
  std::this_thread::sleep_for(50ms);
  {
    RobustLock lock(shared->mutex);
    shared->ready = true;
    shared->condition.notify_all();
  }
  EXPECT_TRUE(exited_cleanly(wait_child(child)));
}

TEST(SharedCondition, ParentWaitsUntilTheChildNotifies) {
  InSharedMemory<Guarded> shared;
  pid_t child = fork_child([&] {
    std::this_thread::sleep_for(50ms);
    RobustLock lock(shared->mutex);
    shared->counter = 42;
    shared->ready = true;
    shared->condition.notify_one();
  });
  {
    RobustLock lock(shared->mutex);
    while (!shared->ready) ASSERT_NE(shared->condition.wait_for(lock, generous), std::nullopt);
    EXPECT_EQ(shared->counter, 42);
  }
  EXPECT_TRUE(exited_cleanly(wait_child(child)));
}

TEST(SharedCondition, WaitForTimesOutWithTheMutexHeldAgain) {
  InSharedMemory<Guarded> shared;
  shared->mutex.lock();
  std::optional<LockResult> result = LockResult::acquired;
  auto elapsed = time_of([&] { result = shared->condition.wait_for(shared->mutex, 200ms); });
  EXPECT_EQ(result, std::nullopt);
  EXPECT_GE(elapsed, 200ms);
  EXPECT_LT(elapsed, generous);
  pid_t child = fork_child([&] { EXPECT_EQ(shared->mutex.try_lock(), std::nullopt); });
  EXPECT_TRUE(exited_cleanly(wait_child(child)));
  shared->mutex.unlock();
}

TEST(SharedCondition, WaiterIsToldWhenTheNotifierDiedHoldingTheMutex) {
  InSharedMemory<Guarded> shared;
  RobustLock lock(shared->mutex);
  pid_t child = fork_child([&] {
    shared->mutex.lock();  // gets it once the parent waits
    shared->state = 1;
    shared->ready = true;
    shared->condition.notify_all();
    ::raise(SIGKILL);
  });
  std::optional<LockResult> result;
  while (!shared->ready) {
    result = shared->condition.wait_for(lock, generous);
    ASSERT_NE(result, std::nullopt) << "no notification";
  }
  EXPECT_EQ(result, LockResult::previous_owner_died);
  EXPECT_TRUE(lock.previous_owner_died());
  EXPECT_EQ(shared->state, 1);
  shared->state = 0;
  lock.mark_consistent();
  EXPECT_TRUE(killed_by(wait_child(child), SIGKILL));
}

TEST(SharedCondition, WaitingWithoutHoldingTheMutexThrowsEPERM) {
  InSharedMemory<Guarded> shared;
  EXPECT_EQ(system_error_of([&] { shared->condition.wait_for(shared->mutex, 10ms); }).first,
            EPERM);
}

TEST(SharedCondition, AWaiterThatDiesLeavesTheConditionUsableAndDestructible) {
  InSharedMemory<Guarded> shared;
  pid_t doomed = fork_child([&] {
    RobustLock lock(shared->mutex);
    shared->counter = 1;
    while (true) shared->condition.wait(lock);
  });
  ASSERT_TRUE(eventually([&] {
    RobustLock lock(shared->mutex);
    return shared->counter == 1;
  }));
  // The waiter released the mutex to wait; kill it in the middle of the wait.
  std::this_thread::sleep_for(20ms);
  ::kill(doomed, SIGKILL);
  EXPECT_TRUE(killed_by(wait_child(doomed), SIGKILL));

  pid_t waiter = fork_child([&] {
    RobustLock lock(shared->mutex);
    EXPECT_FALSE(lock.previous_owner_died()) << "the dead waiter did not hold the mutex";
    while (!shared->ready) ASSERT_NE(shared->condition.wait_for(lock, generous), std::nullopt);
  });
  std::this_thread::sleep_for(50ms);
  {
    RobustLock lock(shared->mutex);
    shared->ready = true;
    shared->condition.notify_all();
  }
  EXPECT_TRUE(exited_cleanly(wait_child(waiter)));

  // Destroying it must not wait for the dead waiter (glibc's
  // pthread_cond_destroy would); do it in a child so a hang cannot stall the
  // test run.
  pid_t destroyer = fork_child([&] { std::destroy_at(&shared->condition); });
  EXPECT_TRUE(exited_cleanly(wait_child(destroyer, 5s)));
}

}  // namespace
}  // namespace conduit::ipc
