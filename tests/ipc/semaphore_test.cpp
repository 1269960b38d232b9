// Specification of semaphores (conduit/ipc/semaphore.hpp).

#include "conduit/ipc/semaphore.hpp"

#include <gtest/gtest.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <sys/sem.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <fstream>
#include <string>

#include "conduit/error.hpp"
#include "shared_state.hpp"
#include "test_support.hpp"

namespace conduit::ipc {
namespace {

using namespace std::chrono_literals;
using conduit::testing::contains;
using conduit::testing::drop_privileges;
using conduit::testing::exited_cleanly;
using conduit::testing::fork_child;
using conduit::testing::in_dev_shm;
using conduit::testing::InSharedMemory;
using conduit::testing::Interrupter;
using conduit::testing::InterruptingSignal;
using conduit::testing::run_command;
using conduit::testing::Signal;
using conduit::testing::system_error_of;
using conduit::testing::TempDir;
using conduit::testing::time_of;
using conduit::testing::unique_ipc_name;
using conduit::testing::wait_child;

// Bounds for timed waits: never shorter than asked, and well within this.
constexpr auto generous = 5s;

std::string sem_file(const std::string& name) {
  return "sem." + name.substr(1);
}

mode_t sem_file_mode(const std::string& name) {
  struct stat st {};
  EXPECT_EQ(::stat(("/dev/shm/" + sem_file(name)).c_str(), &st), 0);
  return st.st_mode & 07777;
}

bool killed_by(int status, int signal) {
  return status >= 0 && WIFSIGNALED(status) && WTERMSIG(status) == signal;
}

// A System V key made from a fresh file, unique to the test.
class SysVKey {
 public:
  SysVKey() {
    std::ofstream(dir_ / "key") << "key";
    key_ = key_from_path(dir_ / "key");
  }
  key_t get() const { return key_; }

 private:
  TempDir dir_;
  key_t key_;
};

// semctl's fourth argument, which callers must define (semctl(2)).
union SemctlArgument {
  int value;
  semid_ds* info;
  unsigned short* values;
};

bool sysv_set_info(int id, semid_ds& info) {
  SemctlArgument argument{};
  argument.info = &info;
  return ::semctl(id, 0, IPC_STAT, argument) == 0;
}

bool sysv_set_exists(int id) {
  semid_ds info{};
  return sysv_set_info(id, info);
}

// ============================ POSIX named semaphores ===================================

TEST(SemaphoreNamed, CreateStartsAtTheValueWithMode0600) {
  mode_t previous = ::umask(0);
  NamedSemaphore semaphore = NamedSemaphore::create(unique_ipc_name(), 3);
  ::umask(previous);
  EXPECT_EQ(semaphore.value(), 3);
  EXPECT_TRUE(semaphore.owns_name());
  EXPECT_EQ(sem_file_mode(semaphore.name()), 0600u);
}

TEST(SemaphoreNamed, CreateGivesExactlyTheRequestedModeDespiteTheUmask) {
  mode_t previous = ::umask(077);
  NamedSemaphore semaphore = NamedSemaphore::create(unique_ipc_name(), 0, 0644);
  ::umask(previous);
  EXPECT_EQ(sem_file_mode(semaphore.name()), 0644u);
}

TEST(SemaphoreNamed, NamesWithASlashOrWithoutTheLeadingOneAreRefused) {
  auto [code, message] = system_error_of([] { NamedSemaphore::create("/conduit/x", 0); });
  EXPECT_EQ(code, EINVAL);
  EXPECT_TRUE(contains(message, "sem_open(/conduit/x)")) << message;
  EXPECT_TRUE(contains(message, "'/' after the first character")) << message;
  EXPECT_EQ(system_error_of([] { NamedSemaphore::create("conduit-x", 0); }).first, EINVAL);
  EXPECT_EQ(system_error_of([] { NamedSemaphore::open("/"); }).first, EINVAL);
}

TEST(SemaphoreNamed, NamesUpTo251CharactersAreAcceptedAndLongerRefused) {
  std::string longest = unique_ipc_name();
  longest += std::string(252 - longest.size(), 'x');
  NamedSemaphore semaphore = NamedSemaphore::create(longest, 0);
  EXPECT_TRUE(in_dev_shm(sem_file(longest)));
  auto [code, message] = system_error_of([&] { NamedSemaphore::create(longest + "y", 0); });
  EXPECT_EQ(code, EINVAL);
  EXPECT_TRUE(contains(message, "252 characters long")) << message;
}

TEST(SemaphoreNamed, ValueOverSemValueMaxIsRefused) {
  auto [code, message] = system_error_of(
      [] { NamedSemaphore::create(unique_ipc_name(), unsigned{SEM_VALUE_MAX} + 1); });
  EXPECT_EQ(code, EINVAL);
  EXPECT_TRUE(contains(message, "SEM_VALUE_MAX")) << message;
}

TEST(SemaphoreNamed, TakenNameThrowsEEXIST) {
  std::string name = unique_ipc_name();
  NamedSemaphore first = NamedSemaphore::create(name, 0);
  auto [code, message] = system_error_of([&] { NamedSemaphore::create(name, 0); });
  EXPECT_EQ(code, EEXIST);
  EXPECT_TRUE(contains(message, "taken")) << message;
}

TEST(SemaphoreNamed, MissingNameThrowsENOENT) {
  auto [code, message] = system_error_of([] { NamedSemaphore::open(unique_ipc_name()); });
  EXPECT_EQ(code, ENOENT);
  EXPECT_TRUE(contains(message, "no semaphore has that name")) << message;
}

TEST(SemaphoreNamed, OwnerRemovesTheNameAndOpenersDoNot) {
  std::string name = unique_ipc_name();
  {
    NamedSemaphore owner = NamedSemaphore::create(name, 0);
    { NamedSemaphore opened = NamedSemaphore::open(name); }
    EXPECT_TRUE(in_dev_shm(sem_file(name))) << "a non-owner removed the name";
  }
  EXPECT_FALSE(in_dev_shm(sem_file(name)));
}

TEST(SemaphoreNamed, UnlinkRemovesTheNameWhileTheSemaphoreStillWorks) {
  std::string name = unique_ipc_name();
  NamedSemaphore semaphore = NamedSemaphore::create(name, 0);
  semaphore.unlink();
  EXPECT_FALSE(in_dev_shm(sem_file(name)));
  semaphore.post();
  EXPECT_TRUE(semaphore.try_wait());
  semaphore.unlink();  // already gone: nothing to do
}

TEST(SemaphoreNamed, DestructorLeavesASemaphoreThatTookTheNameSince) {
  std::string name = unique_ipc_name();
  NamedSemaphore replacement;
  {
    NamedSemaphore semaphore = NamedSemaphore::create(name, 0);
    NamedSemaphore::open(name).unlink();
    replacement = NamedSemaphore::create(name, 5);
  }
  EXPECT_TRUE(in_dev_shm(sem_file(name)));
  EXPECT_EQ(NamedSemaphore::open(name).value(), 5);
}

TEST(SemaphoreNamed, MovedFromSemaphoreNeitherClosesNorRemoves) {
  std::string name = unique_ipc_name();
  NamedSemaphore owner;
  {
    NamedSemaphore semaphore = NamedSemaphore::create(name, 1);
    owner = std::move(semaphore);
  }
  EXPECT_TRUE(in_dev_shm(sem_file(name)));
  EXPECT_TRUE(owner.try_wait());
}

TEST(SemaphoreNamed, OtherUserIsDeniedAPrivateSemaphore) {
  std::string name = unique_ipc_name();
  NamedSemaphore owner = NamedSemaphore::create(name, 0);
  pid_t child = fork_child([&] {
    drop_privileges();
    auto [code, message] = system_error_of([&] { NamedSemaphore::open(name); });
    EXPECT_EQ(code, EACCES);
    EXPECT_TRUE(contains(message, "mode does not let this user")) << message;
  });
  EXPECT_TRUE(exited_cleanly(wait_child(child)));
}

TEST(SemaphoreNamed, OtherUserMayUseAnOpenSemaphoreButNotRemoveIt) {
  std::string name = unique_ipc_name();
  NamedSemaphore owner = NamedSemaphore::create(name, 0, 0666);
  pid_t child = fork_child([&] {
    drop_privileges();
    NamedSemaphore opened = NamedSemaphore::open(name);
    opened.post();
    EXPECT_EQ(system_error_of([&] { opened.unlink(); }).first, EACCES);
  });
  EXPECT_TRUE(exited_cleanly(wait_child(child)));
  EXPECT_TRUE(owner.wait_for(generous));
  EXPECT_TRUE(in_dev_shm(sem_file(name)));
}

TEST(SemaphoreNamed, ChildPostsAndTheParentWakes) {
  std::string name = unique_ipc_name();
  NamedSemaphore semaphore = NamedSemaphore::create(name, 0);
  pid_t child = fork_child([&] {
    std::this_thread::sleep_for(50ms);
    NamedSemaphore::open(name).post();
  });
  EXPECT_TRUE(semaphore.wait_for(generous));
  EXPECT_TRUE(exited_cleanly(wait_child(child)));
  EXPECT_EQ(semaphore.value(), 0);
}

TEST(SemaphoreNamed, ParentPostsAndTheChildWakes) {
  std::string name = unique_ipc_name();
  NamedSemaphore semaphore = NamedSemaphore::create(name, 0);
  Signal opened;
  pid_t child = fork_child([&] {
    NamedSemaphore mine = NamedSemaphore::open(name);
    opened.fire();
    EXPECT_TRUE(mine.wait_for(generous));
  });
  ASSERT_TRUE(opened.wait_for());
  semaphore.post();
  EXPECT_TRUE(exited_cleanly(wait_child(child)));
}

TEST(SemaphoreNamed, TryWaitOnZeroIsFalseAndOnOneTakesIt) {
  NamedSemaphore semaphore = NamedSemaphore::create(unique_ipc_name(), 0);
  EXPECT_FALSE(semaphore.try_wait());
  semaphore.post();
  EXPECT_TRUE(semaphore.try_wait());
  EXPECT_EQ(semaphore.value(), 0);
}

TEST(SemaphoreNamed, WaitForTimesOut) {
  NamedSemaphore semaphore = NamedSemaphore::create(unique_ipc_name(), 0);
  bool taken = true;
  auto elapsed = time_of([&] { taken = semaphore.wait_for(200ms); });
  EXPECT_FALSE(taken);
  EXPECT_GE(elapsed, 200ms);
  EXPECT_LT(elapsed, generous);
}

TEST(SemaphoreNamed, SignalsDuringAWaitAreRetried) {
  NamedSemaphore semaphore = NamedSemaphore::create(unique_ipc_name(), 0);
  InterruptingSignal signal;
  bool taken = false;
  {
    Interrupter interrupter(::pthread_self(), 5, 20ms, [&] { semaphore.post(); });
    taken = semaphore.wait_for(generous);
  }
  EXPECT_TRUE(taken);
  EXPECT_GE(InterruptingSignal::count(), 5);
}

// ============================ POSIX unnamed semaphores ===================================

struct TwoSemaphores {
  UnnamedSemaphore ping{0};
  UnnamedSemaphore pong{0};
};

TEST(SemaphoreUnnamed, StartsAtTheValue) {
  InSharedMemory<UnnamedSemaphore> semaphore(2);
  EXPECT_EQ(semaphore->value(), 2);
  EXPECT_TRUE(semaphore->try_wait());
  EXPECT_TRUE(semaphore->try_wait());
  EXPECT_FALSE(semaphore->try_wait());
}

TEST(SemaphoreUnnamed, ValueOverSemValueMaxIsRefused) {
  EXPECT_EQ(system_error_of([] { UnnamedSemaphore s(unsigned{SEM_VALUE_MAX} + 1); }).first,
            EINVAL);
}

TEST(SemaphoreUnnamed, ChildPostsAndTheParentWakes) {
  InSharedMemory<UnnamedSemaphore> semaphore(0);
  pid_t child = fork_child([&] {
    std::this_thread::sleep_for(50ms);
    semaphore->post();
  });
  EXPECT_TRUE(semaphore->wait_for(generous));
  EXPECT_TRUE(exited_cleanly(wait_child(child)));
}

TEST(SemaphoreUnnamed, ParentPostsAndTheChildWakes) {
  InSharedMemory<UnnamedSemaphore> semaphore(0);
  pid_t child = fork_child([&] { EXPECT_TRUE(semaphore->wait_for(generous)); });
  std::this_thread::sleep_for(50ms);
  semaphore->post();
  EXPECT_TRUE(exited_cleanly(wait_child(child)));
  EXPECT_EQ(semaphore->value(), 0);
}

TEST(SemaphoreUnnamed, PingPongsBetweenProcesses) {
  InSharedMemory<TwoSemaphores> pair;
  constexpr int rounds = 2000;
  pid_t child = fork_child([&] {
    for (int i = 0; i < rounds; ++i) {
      ASSERT_TRUE(pair->ping.wait_for(generous)) << "round " << i;
      pair->pong.post();
    }
  });
  for (int i = 0; i < rounds; ++i) {
    pair->ping.post();
    ASSERT_TRUE(pair->pong.wait_for(generous)) << "round " << i;
  }
  EXPECT_TRUE(exited_cleanly(wait_child(child)));
}

TEST(SemaphoreUnnamed, WaiterGivesUpWhenThePosterDiedWithoutPosting) {
  InSharedMemory<UnnamedSemaphore> semaphore(0);
  pid_t child = fork_child([&] { ::raise(SIGKILL); });
  bool taken = true;
  auto elapsed = time_of([&] { taken = semaphore->wait_for(300ms); });
  EXPECT_FALSE(taken);
  EXPECT_GE(elapsed, 300ms);
  EXPECT_LT(elapsed, generous);
  EXPECT_TRUE(killed_by(wait_child(child), SIGKILL));
}

TEST(SemaphoreUnnamed, WaitForTimesOutEvenWhenSignalsKeepArriving) {
  InSharedMemory<UnnamedSemaphore> semaphore(0);
  InterruptingSignal signal;
  bool taken = true;
  std::chrono::milliseconds elapsed;
  {
    Interrupter interrupter(::pthread_self(), 5, 30ms);
    elapsed = time_of([&] { taken = semaphore->wait_for(300ms); });
  }
  EXPECT_FALSE(taken);
  EXPECT_GE(elapsed, 300ms);
  EXPECT_LT(elapsed, generous);
  EXPECT_GE(InterruptingSignal::count(), 5);
}

TEST(SemaphoreUnnamed, BlockingWaitIsNotEndedBySignals) {
  InSharedMemory<UnnamedSemaphore> semaphore(0);
  InterruptingSignal signal;
  {
    Interrupter interrupter(::pthread_self(), 5, 20ms, [&] { semaphore->post(); });
    semaphore->wait();
  }
  EXPECT_GE(InterruptingSignal::count(), 5);
  EXPECT_EQ(semaphore->value(), 0);
}

TEST(SemaphoreUnnamed, PostAtTheMaximumThrowsEOVERFLOW) {
  InSharedMemory<UnnamedSemaphore> semaphore(SEM_VALUE_MAX);
  auto [code, message] = system_error_of([&] { semaphore->post(); });
  EXPECT_EQ(code, EOVERFLOW);
  EXPECT_TRUE(contains(message, "SEM_VALUE_MAX")) << message;
}

// ============================ System V semaphore sets ===================================

TEST(SemaphoreSysV, CreateGivesTheCountTheValuesAndMode0600) {
  SysVSemaphoreSet set = SysVSemaphoreSet::create(IPC_PRIVATE, 3, 2);
  EXPECT_EQ(set.size(), 3);
  EXPECT_TRUE(set.owner());
  for (int i = 0; i < 3; ++i) EXPECT_EQ(set.value(i), 2);
  semid_ds info{};
  ASSERT_TRUE(sysv_set_info(set.id(), info));
  EXPECT_EQ(info.sem_perm.mode & 0777, 0600u);
  EXPECT_EQ(info.sem_nsems, 3u);
}

TEST(SemaphoreSysV, CreateGivesTheRequestedMode) {
  SysVSemaphoreSet set = SysVSemaphoreSet::create(IPC_PRIVATE, 1, 0, 0640);
  semid_ds info{};
  ASSERT_TRUE(sysv_set_info(set.id(), info));
  EXPECT_EQ(info.sem_perm.mode & 0777, 0640u);
}

TEST(SemaphoreSysV, ZeroOrTooManySemaphoresAreRefusedNamingKernelSem) {
  auto [code, message] = system_error_of([] { SysVSemaphoreSet::create(IPC_PRIVATE, 0); });
  EXPECT_EQ(code, EINVAL);
  EXPECT_TRUE(contains(message, "SEMMSL")) << message;
  EXPECT_TRUE(contains(message, "kernel.sem = ")) << message;
  std::ifstream limits("/proc/sys/kernel/sem");
  int semmsl = 0;
  limits >> semmsl;
  EXPECT_EQ(system_error_of([&] { SysVSemaphoreSet::create(IPC_PRIVATE, semmsl + 1); }).first,
            EINVAL);
}

TEST(SemaphoreSysV, ValueOverSemvmxIsRefused) {
  auto [code, message] = system_error_of([] { SysVSemaphoreSet::create(IPC_PRIVATE, 1, 40000); });
  EXPECT_EQ(code, ERANGE);
  EXPECT_TRUE(contains(message, "32767")) << message;
}

TEST(SemaphoreSysV, TakenKeyThrowsEEXISTAndMissingKeyENOENT) {
  SysVKey key;
  EXPECT_EQ(system_error_of([&] { SysVSemaphoreSet::open(key.get()); }).first, ENOENT);
  SysVSemaphoreSet set = SysVSemaphoreSet::create(key.get(), 1);
  auto [code, message] = system_error_of([&] { SysVSemaphoreSet::create(key.get(), 1); });
  EXPECT_EQ(code, EEXIST);
  EXPECT_TRUE(contains(message, "ipcrm -S")) << message;
}

TEST(SemaphoreSysV, OwnerRemovesTheSetAndOpenersDoNot) {
  SysVKey key;
  int id;
  {
    SysVSemaphoreSet set = SysVSemaphoreSet::create(key.get(), 2);
    id = set.id();
    {
      SysVSemaphoreSet opened = SysVSemaphoreSet::open(key.get());
      EXPECT_FALSE(opened.owner());
      EXPECT_EQ(opened.id(), id);
      EXPECT_EQ(opened.size(), 2);
    }
    EXPECT_TRUE(sysv_set_exists(id));
    EXPECT_TRUE(contains(run_command({"ipcs", "-s"}).out, " " + std::to_string(id) + " "));
  }
  EXPECT_FALSE(sysv_set_exists(id));
  EXPECT_FALSE(contains(run_command({"ipcs", "-s"}).out, " " + std::to_string(id) + " "));
}

TEST(SemaphoreSysV, MoveAssigningOverASetRemovesIt) {
  SysVSemaphoreSet set = SysVSemaphoreSet::create(IPC_PRIVATE, 1);
  int old_id = set.id();
  set = SysVSemaphoreSet::create(IPC_PRIVATE, 1);
  EXPECT_FALSE(sysv_set_exists(old_id));
  EXPECT_TRUE(sysv_set_exists(set.id()));
}

TEST(SemaphoreSysV, ChildPostsByKeyAndTheParentWakes) {
  SysVKey key;
  SysVSemaphoreSet set = SysVSemaphoreSet::create(key.get(), 1);
  pid_t child = fork_child([&] {
    std::this_thread::sleep_for(50ms);
    SysVSemaphoreSet::open(key.get()).post(0, Undo::no);
  });
  EXPECT_TRUE(set.wait_for(generous, 0, Undo::no));
  EXPECT_TRUE(exited_cleanly(wait_child(child)));
}

TEST(SemaphoreSysV, ParentPostsAndTheChildWakes) {
  SysVKey key;
  SysVSemaphoreSet set = SysVSemaphoreSet::create(key.get(), 2);
  pid_t child = fork_child([&] {
    SysVSemaphoreSet opened = SysVSemaphoreSet::open(key.get());
    EXPECT_TRUE(opened.wait_for(generous, 1, Undo::no));
  });
  ASSERT_TRUE(conduit::testing::eventually([&] { return set.waiting(1) == 1; }));
  set.post(1, Undo::no);
  EXPECT_TRUE(exited_cleanly(wait_child(child)));
  EXPECT_EQ(set.value(1), 0);
}

TEST(SemaphoreSysV, UnitTakenByAProcessThatDiesIsGivenBack) {
  SysVSemaphoreSet set = SysVSemaphoreSet::create(IPC_PRIVATE, 1, 1);
  Signal taken;
  pid_t child = fork_child([&] {
    set.wait();  // SEM_UNDO by default
    taken.fire();
    ::pause();
  });
  ASSERT_TRUE(taken.wait_for());
  EXPECT_EQ(set.value(), 0);
  ::kill(child, SIGKILL);
  EXPECT_TRUE(killed_by(wait_child(child), SIGKILL));
  EXPECT_EQ(set.value(), 1);
  EXPECT_TRUE(set.try_wait());
  set.post();
}

TEST(SemaphoreSysV, UnitTakenByAProcessThatRaisesSigkillIsGivenBack) {
  SysVSemaphoreSet set = SysVSemaphoreSet::create(IPC_PRIVATE, 1, 1);
  pid_t child = fork_child([&] {
    set.wait();
    ::raise(SIGKILL);
  });
  EXPECT_TRUE(killed_by(wait_child(child), SIGKILL));
  EXPECT_EQ(set.value(), 1);
}

TEST(SemaphoreSysV, WithoutUndoAUnitTakenByADeadProcessStaysTaken) {
  SysVSemaphoreSet set = SysVSemaphoreSet::create(IPC_PRIVATE, 1, 1);
  pid_t child = fork_child([&] {
    set.wait(0, Undo::no);
    ::raise(SIGKILL);
  });
  EXPECT_TRUE(killed_by(wait_child(child), SIGKILL));
  EXPECT_EQ(set.value(), 0);
}

TEST(SemaphoreSysV, WaitThenPostWithUndoLeavesNothingToUndo) {
  SysVSemaphoreSet set = SysVSemaphoreSet::create(IPC_PRIVATE, 1, 1);
  pid_t child = fork_child([&] {
    set.wait();
    set.post();
  });
  EXPECT_TRUE(exited_cleanly(wait_child(child)));
  EXPECT_EQ(set.value(), 1);
}

TEST(SemaphoreSysV, TryWaitOnZeroIsFalse) {
  SysVSemaphoreSet set = SysVSemaphoreSet::create(IPC_PRIVATE, 1);
  EXPECT_FALSE(set.try_wait());
  set.post(0, Undo::no);
  EXPECT_TRUE(set.try_wait(0, Undo::no));
}

TEST(SemaphoreSysV, WaitForTimesOut) {
  SysVSemaphoreSet set = SysVSemaphoreSet::create(IPC_PRIVATE, 1);
  bool taken = true;
  auto elapsed = time_of([&] { taken = set.wait_for(200ms); });
  EXPECT_FALSE(taken);
  EXPECT_GE(elapsed, 200ms);
  EXPECT_LT(elapsed, generous);
}

TEST(SemaphoreSysV, WaitForTimesOutOnTimeEvenWhenSignalsKeepArriving) {
  SysVSemaphoreSet set = SysVSemaphoreSet::create(IPC_PRIVATE, 1);
  InterruptingSignal signal;
  bool taken = true;
  std::chrono::milliseconds elapsed;
  {
    Interrupter interrupter(::pthread_self(), 5, 30ms);
    elapsed = time_of([&] { taken = set.wait_for(300ms); });
  }
  EXPECT_FALSE(taken);
  EXPECT_GE(elapsed, 300ms);
  EXPECT_LT(elapsed, generous);
  EXPECT_GE(InterruptingSignal::count(), 5);
}

TEST(SemaphoreSysV, SignalsDuringAWaitAreRetried) {
  SysVSemaphoreSet set = SysVSemaphoreSet::create(IPC_PRIVATE, 1);
  InterruptingSignal signal;
  {
    Interrupter interrupter(::pthread_self(), 5, 20ms, [&] { set.post(0, Undo::no); });
    set.wait(0, Undo::no);
  }
  EXPECT_GE(InterruptingSignal::count(), 5);
  EXPECT_EQ(set.value(), 0);
}

TEST(SemaphoreSysV, ApplyChangesSeveralSemaphoresAtomicallyOrNotAtAll) {
  SysVSemaphoreSet set = SysVSemaphoreSet::create(IPC_PRIVATE, 2);
  set.set_value(0, 1);
  const SemaphoreOperation both[] = {{0, -1}, {1, -1}};
  EXPECT_FALSE(set.apply(both, 0ms, Undo::no));
  EXPECT_EQ(set.value(0), 1) << "a failed apply took effect in part";
  set.set_value(1, 1);
  EXPECT_TRUE(set.apply(both, 0ms, Undo::no));
  EXPECT_EQ(set.value(0), 0);
  EXPECT_EQ(set.value(1), 0);
}

TEST(SemaphoreSysV, ApplyWithDeltaZeroWaitsUntilTheValueIsZero) {
  SysVSemaphoreSet set = SysVSemaphoreSet::create(IPC_PRIVATE, 1, 1);
  const SemaphoreOperation until_zero[] = {{0, 0}};
  EXPECT_FALSE(set.apply(until_zero, 100ms));
  pid_t child = fork_child([&] {
    std::this_thread::sleep_for(50ms);
    set.wait(0, Undo::no);
  });
  EXPECT_TRUE(set.apply(until_zero, generous));
  EXPECT_TRUE(exited_cleanly(wait_child(child)));
}

TEST(SemaphoreSysV, IndexOutOfRangeIsReportedWithTheSetSize) {
  SysVSemaphoreSet set = SysVSemaphoreSet::create(IPC_PRIVATE, 2);
  auto [code, message] = system_error_of([&] { set.post(5); });
  EXPECT_EQ(code, EFBIG);
  EXPECT_TRUE(contains(message, "the set has 2")) << message;
  auto [value_code, value_message] = system_error_of([&] { set.value(2); });
  EXPECT_EQ(value_code, EINVAL);
  EXPECT_TRUE(contains(value_message, "index 2 is out of range")) << value_message;
}

TEST(SemaphoreSysV, RemovingTheSetWakesAWaiterWithEIDRM) {
  SysVSemaphoreSet set = SysVSemaphoreSet::create(IPC_PRIVATE, 1);
  pid_t child = fork_child([&] {
    auto [code, message] = system_error_of([&] { set.wait_for(generous); });
    EXPECT_EQ(code, EIDRM);
    EXPECT_TRUE(contains(message, "removed")) << message;
  });
  ASSERT_TRUE(conduit::testing::eventually([&] { return set.waiting() == 1; }));
  set.remove();
  EXPECT_TRUE(exited_cleanly(wait_child(child)));
  EXPECT_FALSE(sysv_set_exists(set.id()));
}

TEST(SemaphoreSysV, OtherUserIsDeniedAPrivateSet) {
  SysVKey key;
  SysVSemaphoreSet set = SysVSemaphoreSet::create(key.get(), 1);
  pid_t child = fork_child([&] {
    drop_privileges();
    auto [code, message] = system_error_of([&] { SysVSemaphoreSet::open(key.get()); });
    EXPECT_EQ(code, EACCES);
    EXPECT_TRUE(contains(message, "does not let this user")) << message;
    EXPECT_EQ(system_error_of([&] { set.post(); }).first, EACCES);
  });
  EXPECT_TRUE(exited_cleanly(wait_child(child)));
}

TEST(SemaphoreSysV, OtherUserMayUseAnOpenSetButNotRemoveIt) {
  SysVKey key;
  SysVSemaphoreSet set = SysVSemaphoreSet::create(key.get(), 1, 0, 0666);
  pid_t child = fork_child([&] {
    drop_privileges();
    SysVSemaphoreSet opened = SysVSemaphoreSet::open(key.get());
    opened.post(0, Undo::no);
    EXPECT_EQ(system_error_of([&] { opened.remove(); }).first, EPERM);
  });
  EXPECT_TRUE(exited_cleanly(wait_child(child)));
  EXPECT_TRUE(sysv_set_exists(set.id()));
  EXPECT_EQ(set.value(), 1);
}

}  // namespace
}  // namespace conduit::ipc
