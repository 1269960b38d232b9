// Specification of shared memory segments (conduit/ipc/shared_memory.hpp).

#include "conduit/ipc/shared_memory.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "conduit/error.hpp"
#include "conduit/ipc/pipe.hpp"
#include "conduit/ipc/unix_socket.hpp"
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
using conduit::testing::run_command;
using conduit::testing::Signal;
using conduit::testing::system_error_of;
using conduit::testing::TempDir;
using conduit::testing::unique_ipc_name;
using conduit::testing::wait_child;

// Exit code of a child that found the environment unable to run the test.
constexpr int child_skipped = 77;

std::string file_of(const std::string& name) {
  return name.substr(1);
}

mode_t mode_of_fd(int fd) {
  struct stat st {};
  EXPECT_EQ(::fstat(fd, &st), 0);
  return st.st_mode & 07777;
}

// A byte pattern that differs from position to position and from seed to seed.
std::byte pattern(std::size_t at, unsigned seed) {
  return static_cast<std::byte>((at * 131 + seed * 7 + (at >> 12)) & 0xff);
}

void fill(const Mapping& mapping, unsigned seed) {
  for (std::size_t i = 0; i < mapping.size(); ++i) mapping.bytes()[i] = pattern(i, seed);
}

// True when every byte holds the pattern for `seed` (reports the first miss).
bool holds(const Mapping& mapping, unsigned seed) {
  for (std::size_t i = 0; i < mapping.size(); ++i) {
    if (mapping.bytes()[i] != pattern(i, seed)) {
      ADD_FAILURE() << "byte " << i << " of " << mapping.size() << " differs";
      return false;
    }
  }
  return true;
}

bool all_zero(const Mapping& mapping) {
  for (std::size_t i = 0; i < mapping.size(); ++i)
    if (mapping.bytes()[i] != std::byte{0}) return false;
  return true;
}

bool mapped(void* address) {
  return ::msync(address, static_cast<std::size_t>(::sysconf(_SC_PAGESIZE)), MS_ASYNC) == 0;
}

shmid_ds sysv_info(int id) {
  shmid_ds info{};
  EXPECT_EQ(::shmctl(id, IPC_STAT, &info), 0) << std::strerror(errno);
  return info;
}

bool sysv_exists(int id) {
  shmid_ds info{};
  return ::shmctl(id, IPC_STAT, &info) == 0;
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
  conduit::testing::TempDir dir_;
  key_t key_;
};

// Runs body in a child in a new IPC namespace whose kernel.shm* settings it
// may change without touching the machine's; everything it creates there
// vanishes with it. Skips the test when namespaces are not allowed here.
void in_own_ipc_namespace(const std::function<void()>& body) {
  pid_t child = fork_child([&] {
    if (::unshare(CLONE_NEWIPC) != 0) ::_exit(child_skipped);
    body();
  });
  int status = wait_child(child);
  if (WIFEXITED(status) && WEXITSTATUS(status) == child_skipped)
    GTEST_SKIP() << "unshare(CLONE_NEWIPC) is not allowed here";
  EXPECT_TRUE(exited_cleanly(status)) << "status " << status;
}

void set_kernel_setting(const std::string& file, const std::string& value) {
  std::ofstream(file) << value;
}

// --- Names -------------------------------------------------------------------------

TEST(SharedMemoryName, WithoutALeadingSlashIsRefusedWithTheRule) {
  auto [code, message] = system_error_of([] { SharedMemory::create("conduit-test-x", 16); });
  EXPECT_EQ(code, EINVAL);
  EXPECT_TRUE(contains(message, "shm_open(conduit-test-x)")) << message;
  EXPECT_TRUE(contains(message, "does not start with '/'")) << message;
  EXPECT_TRUE(contains(message, "one leading '/'")) << message;
}

TEST(SharedMemoryName, WithASecondSlashIsRefused) {
  auto [code, message] = system_error_of([] { SharedMemory::create("/conduit/test", 16); });
  EXPECT_EQ(code, EINVAL);
  EXPECT_TRUE(contains(message, "'/' after the first character")) << message;
}

TEST(SharedMemoryName, EmptyNamesAreRefused) {
  EXPECT_EQ(system_error_of([] { SharedMemory::create("", 16); }).first, EINVAL);
  auto [code, message] = system_error_of([] { SharedMemory::create("/", 16); });
  EXPECT_EQ(code, EINVAL);
  EXPECT_TRUE(contains(message, "empty")) << message;
}

TEST(SharedMemoryName, DotAndDotDotAreRefused) {
  for (const char* name : {"/.", "/.."}) {
    auto [code, message] = system_error_of([&] { SharedMemory::create(name, 16); });
    EXPECT_EQ(code, EINVAL) << name;
    EXPECT_TRUE(contains(message, "name directories")) << message;
  }
}

TEST(SharedMemoryName, UpToNameMaxCharactersAreAcceptedAndOneMoreIsRefused) {
  std::string longest = unique_ipc_name();
  longest += std::string(NAME_MAX + 1 - longest.size(), 'x');
  ASSERT_EQ(longest.size(), std::size_t{NAME_MAX} + 1);
  SharedMemory segment = SharedMemory::create(longest, 16);
  EXPECT_TRUE(in_dev_shm(file_of(longest)));

  auto [code, message] = system_error_of([&] { SharedMemory::create(longest + "y", 16); });
  EXPECT_EQ(code, EINVAL);
  EXPECT_TRUE(contains(message, "256 characters long")) << message;
}

TEST(SharedMemoryName, OpenChecksTheNameToo) {
  EXPECT_EQ(system_error_of([] { SharedMemory::open("/a/b"); }).first, EINVAL);
}

// --- Creating -------------------------------------------------------------------------

class SharedMemorySize : public ::testing::TestWithParam<std::size_t> {};

TEST_P(SharedMemorySize, CreateGivesAZeroFilledSegmentOfThatSize) {
  std::string name = unique_ipc_name();
  SharedMemory segment = SharedMemory::create(name, GetParam());
  EXPECT_EQ(segment.size(), GetParam());
  EXPECT_EQ(segment.name(), name);
  EXPECT_TRUE(segment.owns_name());
  struct stat st {};
  ASSERT_EQ(::fstat(segment.fd(), &st), 0);
  EXPECT_EQ(static_cast<std::size_t>(st.st_size), GetParam());
  EXPECT_TRUE(in_dev_shm(file_of(name)));

  Mapping mapping = segment.map();
  EXPECT_EQ(mapping.size(), GetParam());
  EXPECT_EQ(static_cast<bool>(mapping), GetParam() != 0);
  EXPECT_TRUE(all_zero(mapping));
}

INSTANTIATE_TEST_SUITE_P(Sizes, SharedMemorySize,
                         ::testing::Values(0, 1, 4095, 4096, (1u << 20) + 3, 64u << 20));

TEST(SharedMemoryCreate, DefaultModeIsOwnerReadWriteDespiteTheUmask) {
  mode_t previous = ::umask(0);
  SharedMemory segment = SharedMemory::create(unique_ipc_name(), 16);
  ::umask(previous);
  EXPECT_EQ(mode_of_fd(segment.fd()), 0600u);
  struct stat st {};
  ASSERT_EQ(::stat(("/dev/shm/" + file_of(segment.name())).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST(SharedMemoryCreate, GivesExactlyTheRequestedModeDespiteTheUmask) {
  mode_t previous = ::umask(077);
  SharedMemory segment = SharedMemory::create(unique_ipc_name(), 16, 0644);
  ::umask(previous);
  EXPECT_EQ(mode_of_fd(segment.fd()), 0644u);
}

TEST(SharedMemoryCreate, TakenNameThrowsEEXISTAndLeavesTheFirstSegment) {
  std::string name = unique_ipc_name();
  SharedMemory first = SharedMemory::create(name, 16);
  auto [code, message] = system_error_of([&] { SharedMemory::create(name, 16); });
  EXPECT_EQ(code, EEXIST);
  EXPECT_TRUE(contains(message, name)) << message;
  EXPECT_TRUE(contains(message, "taken")) << message;
  EXPECT_TRUE(in_dev_shm(file_of(name)));
}

// --- Lifetime of the name -----------------------------------------------------------------

TEST(SharedMemoryLifetime, DestructorRemovesTheName) {
  std::string name = unique_ipc_name();
  { SharedMemory segment = SharedMemory::create(name, 16); }
  EXPECT_FALSE(in_dev_shm(file_of(name)));
}

TEST(SharedMemoryLifetime, OpenedSegmentLeavesTheName) {
  std::string name = unique_ipc_name();
  SharedMemory owner = SharedMemory::create(name, 16);
  {
    SharedMemory opened = SharedMemory::open(name);
    EXPECT_FALSE(opened.owns_name());
  }
  EXPECT_TRUE(in_dev_shm(file_of(name)));
}

TEST(SharedMemoryLifetime, UnlinkRemovesTheNameWhileTheMemoryLivesOn) {
  std::string name = unique_ipc_name();
  SharedMemory segment = SharedMemory::create(name, 4096);
  Mapping mapping = segment.map();
  mapping.bytes()[10] = std::byte{42};
  segment.unlink();
  EXPECT_FALSE(in_dev_shm(file_of(name)));
  EXPECT_FALSE(segment.owns_name());
  Mapping again = segment.map();
  EXPECT_EQ(again.bytes()[10], std::byte{42});
  segment.unlink();  // already gone: nothing to do
}

TEST(SharedMemoryLifetime, DestructorLeavesASegmentThatTookTheNameSince) {
  std::string name = unique_ipc_name();
  SharedMemory replacement;
  {
    SharedMemory segment = SharedMemory::create(name, 16);
    SharedMemory::open(name).unlink();
    replacement = SharedMemory::create(name, 32);
  }
  EXPECT_TRUE(in_dev_shm(file_of(name))) << "the destructor removed a segment it did not create";
  EXPECT_EQ(SharedMemory::open(name).size(), 32u);
}

TEST(SharedMemoryLifetime, MovedFromSegmentDoesNotRemoveTheName) {
  std::string name = unique_ipc_name();
  SharedMemory owner;
  {
    SharedMemory segment = SharedMemory::create(name, 16);
    owner = std::move(segment);
  }
  EXPECT_TRUE(in_dev_shm(file_of(name)));
  EXPECT_TRUE(owner.owns_name());
  EXPECT_EQ(owner.name(), name);
}

TEST(SharedMemoryLifetime, MoveAssigningOverASegmentRemovesItsName) {
  std::string old_name = unique_ipc_name();
  std::string new_name = unique_ipc_name();
  SharedMemory segment = SharedMemory::create(old_name, 16);
  segment = SharedMemory::create(new_name, 16);
  EXPECT_FALSE(in_dev_shm(file_of(old_name)));
  EXPECT_TRUE(in_dev_shm(file_of(new_name)));
}

// --- Opening -------------------------------------------------------------------------

TEST(SharedMemoryOpen, MissingNameThrowsENOENTExplaining) {
  std::string name = unique_ipc_name();
  auto [code, message] = system_error_of([&] { SharedMemory::open(name); });
  EXPECT_EQ(code, ENOENT);
  EXPECT_TRUE(contains(message, name)) << message;
  EXPECT_TRUE(contains(message, "no segment has that name")) << message;
}

TEST(SharedMemoryOpen, SizeIsTheSegmentsSize) {
  std::string name = unique_ipc_name();
  SharedMemory owner = SharedMemory::create(name, 12345);
  EXPECT_EQ(SharedMemory::open(name).size(), 12345u);
}

TEST(SharedMemoryOpen, ReadOnlySegmentCannotBeMappedForWriting) {
  std::string name = unique_ipc_name();
  SharedMemory owner = SharedMemory::create(name, 4096);
  SharedMemory reader = SharedMemory::open(name, Access::read_only);
  auto [code, message] = system_error_of([&] { reader.map(Access::read_write); });
  EXPECT_EQ(code, EACCES);
  EXPECT_TRUE(contains(message, "Access::read_only")) << message;
  EXPECT_TRUE(reader.map(Access::read_only));
}

TEST(SharedMemoryOpen, ReadOnlyMappingFaultsOnWrite) {
  std::string name = unique_ipc_name();
  SharedMemory owner = SharedMemory::create(name, 4096);
  Mapping mapping = SharedMemory::open(name, Access::read_only).map(Access::read_only);
  pid_t child = fork_child([&] {
    ::signal(SIGSEGV, SIG_DFL);
    static_cast<volatile std::byte*>(mapping.data())[0] = std::byte{1};
  });
  int status = wait_child(child);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV) << "status " << status;
}

TEST(SharedMemoryOpen, OtherUserIsDeniedAPrivateSegment) {
  std::string name = unique_ipc_name();
  SharedMemory owner = SharedMemory::create(name, 16);  // 0600
  pid_t child = fork_child([&] {
    drop_privileges();
    auto [code, message] = system_error_of([&] { SharedMemory::open(name, Access::read_only); });
    EXPECT_EQ(code, EACCES);
    EXPECT_TRUE(contains(message, "does not let this user read")) << message;
  });
  EXPECT_TRUE(exited_cleanly(wait_child(child)));
}

TEST(SharedMemoryOpen, OtherUserMayReadButNotWriteAWorldReadableSegment) {
  std::string name = unique_ipc_name();
  SharedMemory owner = SharedMemory::create(name, 16, 0644);
  owner.map().bytes()[0] = std::byte{7};
  pid_t child = fork_child([&] {
    drop_privileges();
    auto [code, message] = system_error_of([&] { SharedMemory::open(name); });
    EXPECT_EQ(code, EACCES);
    EXPECT_TRUE(contains(message, "Access::read_only")) << message;
    Mapping mapping = SharedMemory::open(name, Access::read_only).map(Access::read_only);
    EXPECT_EQ(mapping.bytes()[0], std::byte{7});
  });
  EXPECT_TRUE(exited_cleanly(wait_child(child)));
}

TEST(SharedMemoryOpen, OtherUserCannotRemoveTheName) {
  std::string name = unique_ipc_name();
  SharedMemory owner = SharedMemory::create(name, 16, 0666);
  pid_t child = fork_child([&] {
    drop_privileges();
    SharedMemory opened = SharedMemory::open(name);
    EXPECT_EQ(system_error_of([&] { opened.unlink(); }).first, EACCES);
  });
  EXPECT_TRUE(exited_cleanly(wait_child(child)));
  EXPECT_TRUE(in_dev_shm(file_of(name)));
}

// --- Across processes -------------------------------------------------------------------

class SharedMemoryAcrossProcesses : public ::testing::TestWithParam<std::size_t> {};

TEST_P(SharedMemoryAcrossProcesses, ChildOpensTheParentsSegmentAndBothSeeEachOthersWrites) {
  std::string name = unique_ipc_name();
  SharedMemory segment = SharedMemory::create(name, GetParam());
  Mapping mapping = segment.map();
  fill(mapping, 1);
  pid_t child = fork_child([&] {
    Mapping view = SharedMemory::open(name).map();
    ASSERT_EQ(view.size(), GetParam());
    EXPECT_TRUE(holds(view, 1));
    fill(view, 2);
  });
  ASSERT_TRUE(exited_cleanly(wait_child(child)));
  EXPECT_TRUE(holds(mapping, 2));
}

TEST_P(SharedMemoryAcrossProcesses, ParentOpensTheChildsSegmentAndBothSeeEachOthersWrites) {
  std::string name = unique_ipc_name();
  Signal created, answered;
  pid_t child = fork_child([&] {
    SharedMemory segment = SharedMemory::create(name, GetParam());
    Mapping mapping = segment.map();
    fill(mapping, 3);
    created.fire();
    ASSERT_TRUE(answered.wait_for(10s));
    EXPECT_TRUE(holds(mapping, 4));
  });  // the child's segment removes the name as the child leaves
  ASSERT_TRUE(created.wait_for(10s));
  {
    Mapping view = SharedMemory::open(name).map();
    EXPECT_TRUE(holds(view, 3));
    fill(view, 4);
  }
  answered.fire();
  EXPECT_TRUE(exited_cleanly(wait_child(child)));
  EXPECT_FALSE(in_dev_shm(file_of(name)));
}

INSTANTIATE_TEST_SUITE_P(Sizes, SharedMemoryAcrossProcesses,
                         ::testing::Values(1, 4096, 1u << 20, 16u << 20));

// --- Anonymous segments (memfd) -------------------------------------------------------------

TEST(SharedMemoryAnonymous, HasNoNameAndIsCloseOnExec) {
  SharedMemory segment = SharedMemory::anonymous("conduit-debug-name", 4096);
  EXPECT_TRUE(segment.name().empty());
  EXPECT_FALSE(segment.owns_name());
  EXPECT_EQ(segment.size(), 4096u);
  EXPECT_TRUE(::fcntl(segment.fd(), F_GETFD) & FD_CLOEXEC);
  char target[256] = {};
  std::string link = "/proc/self/fd/" + std::to_string(segment.fd());
  ASSERT_GT(::readlink(link.c_str(), target, sizeof target - 1), 0);
  EXPECT_TRUE(contains(target, "memfd:conduit-debug-name")) << target;
}

TEST(SharedMemoryAnonymous, SizeIsSealed) {
  SharedMemory segment = SharedMemory::anonymous("sealed", 8192);
  EXPECT_TRUE(segment.size_sealed());
  EXPECT_NE(::ftruncate(segment.fd(), 4096), 0);
  EXPECT_EQ(errno, EPERM);
  EXPECT_NE(::ftruncate(segment.fd(), 16384), 0);
  EXPECT_FALSE(SharedMemory::create(unique_ipc_name(), 16).size_sealed());
}

TEST(SharedMemoryAnonymous, ZeroSizeMapsToAnEmptyMapping) {
  SharedMemory segment = SharedMemory::anonymous("empty", 0);
  Mapping mapping = segment.map();
  EXPECT_FALSE(mapping);
  EXPECT_EQ(mapping.size(), 0u);
}

TEST(SharedMemoryAnonymous, OverlongDebugNameThrowsEINVAL) {
  auto [code, message] =
      system_error_of([] { SharedMemory::anonymous(std::string(250, 'n'), 16); });
  EXPECT_EQ(code, EINVAL);
  EXPECT_TRUE(contains(message, "at most 249")) << message;
}

TEST(SharedMemoryAnonymous, ForkedChildMapsTheInheritedDescriptor) {
  SharedMemory segment = SharedMemory::anonymous("inherited", 1u << 20);
  pid_t child = fork_child([&] { fill(segment.map(), 5); });
  ASSERT_TRUE(exited_cleanly(wait_child(child)));
  EXPECT_TRUE(holds(segment.map(), 5));
}

TEST(SharedMemoryAnonymous, ReachesAnotherProcessOverAUnixSocketBothWays) {
  auto [parent_end, child_end] = UnixSocket::pair(UnixSocketType::stream);
  pid_t child = fork_child([&] {
    std::vector<FileDescriptor> fds;
    std::byte byte{};
    ASSERT_EQ(child_end.receive_with_fds({&byte, 1}, fds), 1u);
    ASSERT_EQ(fds.size(), 1u);
    SharedMemory adopted = SharedMemory::adopt(std::move(fds[0]));
    EXPECT_EQ(adopted.size(), 65536u);
    EXPECT_TRUE(adopted.size_sealed());
    Mapping view = adopted.map();
    EXPECT_TRUE(holds(view, 6));
    fill(view, 7);
  });
  SharedMemory segment = SharedMemory::anonymous("passed", 65536);
  Mapping mapping = segment.map();
  fill(mapping, 6);
  std::byte byte{1};
  int fd = segment.fd();
  parent_end.send_with_fds({&byte, 1}, {&fd, 1});
  ASSERT_TRUE(exited_cleanly(wait_child(child)));
  EXPECT_TRUE(holds(mapping, 7));
}

TEST(SharedMemoryAdopt, RefusesADescriptorThatIsNotASegment) {
  PipePair pipe = PipePair::create();
  try {
    SharedMemory::adopt(std::move(pipe.read_end));
    ADD_FAILURE() << "adopted a pipe";
  } catch (const Error& error) {
    EXPECT_TRUE(contains(error.what(), "not a shared memory segment")) << error.what();
  }
}

TEST(SharedMemoryAdopt, TakesTheSizeFromTheDescriptorAndOwnsNoName) {
  std::string name = unique_ipc_name();
  SharedMemory owner = SharedMemory::create(name, 777);
  SharedMemory adopted = SharedMemory::adopt(FileDescriptor(::dup(owner.fd())));
  EXPECT_EQ(adopted.size(), 777u);
  EXPECT_FALSE(adopted.owns_name());
}

// --- Mappings -------------------------------------------------------------------------

TEST(SharedMemoryMapping, MovingKeepsOneMappingAndResetUnmapsIt) {
  SharedMemory segment = SharedMemory::anonymous("mapping", 4096);
  Mapping first = segment.map();
  void* address = first.data();
  Mapping second = std::move(first);
  EXPECT_FALSE(first);
  EXPECT_EQ(second.data(), address);
  EXPECT_TRUE(mapped(address));
  second.reset();
  EXPECT_FALSE(second);
  EXPECT_FALSE(mapped(address));
}

TEST(SharedMemoryMapping, OutlivesTheSegmentObject) {
  std::string name = unique_ipc_name();
  Mapping mapping;
  {
    SharedMemory segment = SharedMemory::create(name, 4096);
    mapping = segment.map();
  }
  EXPECT_FALSE(in_dev_shm(file_of(name)));
  mapping.bytes()[4095] = std::byte{9};
  EXPECT_EQ(mapping.bytes()[4095], std::byte{9});
}

// --- System V segments ---------------------------------------------------------------------

TEST(SharedMemorySysV, CreateGivesAZeroFilledSegmentWithMode0600) {
  SysVSharedMemory segment = SysVSharedMemory::create(IPC_PRIVATE, 10000);
  EXPECT_TRUE(segment.owner());
  EXPECT_EQ(segment.size(), 10000u);
  shmid_ds info = sysv_info(segment.id());
  EXPECT_EQ(info.shm_segsz, 10000u);
  EXPECT_EQ(info.shm_perm.mode & 0777, 0600u);
  Mapping mapping = segment.attach();
  EXPECT_EQ(mapping.kind(), Mapping::Kind::sysv);
  EXPECT_TRUE(all_zero(mapping));
}

TEST(SharedMemorySysV, CreateGivesTheRequestedMode) {
  SysVSharedMemory segment = SysVSharedMemory::create(IPC_PRIVATE, 16, 0640);
  EXPECT_EQ(sysv_info(segment.id()).shm_perm.mode & 0777, 0640u);
}

TEST(SharedMemorySysV, ChildOpensByKeyAndBothSeeEachOthersWrites) {
  SysVKey key;
  SysVSharedMemory segment = SysVSharedMemory::create(key.get(), 1u << 20);
  Mapping mapping = segment.attach();
  fill(mapping, 8);
  pid_t child = fork_child([&] {
    SysVSharedMemory opened = SysVSharedMemory::open(key.get());
    EXPECT_FALSE(opened.owner());
    EXPECT_EQ(opened.id(), segment.id());
    EXPECT_EQ(opened.size(), 1u << 20);
    Mapping view = opened.attach();
    EXPECT_TRUE(holds(view, 8));
    fill(view, 9);
  });
  ASSERT_TRUE(exited_cleanly(wait_child(child)));
  EXPECT_TRUE(holds(mapping, 9));
  EXPECT_TRUE(sysv_exists(segment.id())) << "the child's non-owner handle removed the segment";
}

TEST(SharedMemorySysV, ParentOpensTheChildsSegmentAndTheChildRemovesIt) {
  SysVKey key;
  Signal created, answered;
  pid_t child = fork_child([&] {
    SysVSharedMemory segment = SysVSharedMemory::create(key.get(), 4096);
    Mapping mapping = segment.attach();
    fill(mapping, 10);
    created.fire();
    ASSERT_TRUE(answered.wait_for(10s));
    EXPECT_TRUE(holds(mapping, 11));
  });
  ASSERT_TRUE(created.wait_for(10s));
  SysVSharedMemory opened = SysVSharedMemory::open(key.get());
  {
    Mapping view = opened.attach();
    EXPECT_TRUE(holds(view, 10));
    fill(view, 11);
  }
  answered.fire();
  EXPECT_TRUE(exited_cleanly(wait_child(child)));
  EXPECT_FALSE(sysv_exists(opened.id()));
  EXPECT_EQ(system_error_of([&] { SysVSharedMemory::open(key.get()); }).first, ENOENT);
}

TEST(SharedMemorySysV, TakenKeyThrowsEEXIST) {
  SysVKey key;
  SysVSharedMemory first = SysVSharedMemory::create(key.get(), 16);
  auto [code, message] = system_error_of([&] { SysVSharedMemory::create(key.get(), 16); });
  EXPECT_EQ(code, EEXIST);
  EXPECT_TRUE(contains(message, "ipcrm")) << message;
}

TEST(SharedMemorySysV, MissingKeyThrowsENOENT) {
  SysVKey key;
  auto [code, message] = system_error_of([&] { SysVSharedMemory::open(key.get()); });
  EXPECT_EQ(code, ENOENT);
  EXPECT_TRUE(contains(message, "key 0x")) << message;
}

TEST(SharedMemorySysV, DestructorRemovesTheSegmentSoIpcsNoLongerListsIt) {
  int id;
  {
    SysVSharedMemory segment = SysVSharedMemory::create(IPC_PRIVATE, 16);
    id = segment.id();
    EXPECT_TRUE(contains(run_command({"ipcs", "-m"}).out, " " + std::to_string(id) + " "));
  }
  EXPECT_FALSE(sysv_exists(id));
  EXPECT_FALSE(contains(run_command({"ipcs", "-m"}).out, " " + std::to_string(id) + " "));
}

TEST(SharedMemorySysV, RemovedSegmentStaysAttachedUntilDetached) {
  SysVSharedMemory segment = SysVSharedMemory::create(IPC_PRIVATE, 4096);
  Mapping mapping = segment.attach();
  segment.remove();
  EXPECT_FALSE(segment.owner());
  mapping.bytes()[0] = std::byte{1};
  EXPECT_EQ(mapping.bytes()[0], std::byte{1});
  mapping.reset();
  EXPECT_FALSE(sysv_exists(segment.id()));
  segment.remove();  // already gone: nothing to do
}

TEST(SharedMemorySysV, MoveAssigningOverASegmentRemovesIt) {
  SysVSharedMemory segment = SysVSharedMemory::create(IPC_PRIVATE, 16);
  int old_id = segment.id();
  segment = SysVSharedMemory::create(IPC_PRIVATE, 16);
  EXPECT_FALSE(sysv_exists(old_id));
  EXPECT_TRUE(sysv_exists(segment.id()));
}

TEST(SharedMemorySysV, OtherUserIsDeniedAPrivateSegment) {
  SysVKey key;
  SysVSharedMemory segment = SysVSharedMemory::create(key.get(), 16);  // 0600
  pid_t child = fork_child([&] {
    drop_privileges();
    auto [code, message] = system_error_of([&] { SysVSharedMemory::open(key.get()); });
    EXPECT_EQ(code, EACCES);
    EXPECT_TRUE(contains(message, "does not let this user write")) << message;
    EXPECT_EQ(system_error_of([&] { segment.attach(Access::read_only); }).first, EACCES);
  });
  EXPECT_TRUE(exited_cleanly(wait_child(child)));
}

TEST(SharedMemorySysV, OtherUserMayReadAReadableSegmentButNotRemoveIt) {
  SysVKey key;
  SysVSharedMemory segment = SysVSharedMemory::create(key.get(), 16, 0644);
  segment.attach().bytes()[0] = std::byte{3};
  pid_t child = fork_child([&] {
    drop_privileges();
    SysVSharedMemory opened = SysVSharedMemory::open(key.get(), Access::read_only);
    EXPECT_EQ(opened.attach(Access::read_only).bytes()[0], std::byte{3});
    EXPECT_EQ(system_error_of([&] { opened.attach(Access::read_write); }).first, EACCES);
    EXPECT_EQ(system_error_of([&] { opened.remove(); }).first, EPERM);
  });
  EXPECT_TRUE(exited_cleanly(wait_child(child)));
  EXPECT_TRUE(sysv_exists(segment.id()));
}

TEST(SharedMemorySysV, SizeZeroIsRefusedNamingShmmaxAndItsValue) {
  auto [code, message] = system_error_of([] { SysVSharedMemory::create(IPC_PRIVATE, 0); });
  EXPECT_EQ(code, EINVAL);
  std::string shmmax;
  std::ifstream("/proc/sys/kernel/shmmax") >> shmmax;
  EXPECT_TRUE(contains(message, "kernel.shmmax = " + shmmax)) << message;
}

TEST(SharedMemorySysV, SizeOverShmmaxIsRefusedNamingTheLimit) {
  in_own_ipc_namespace([] {
    set_kernel_setting("/proc/sys/kernel/shmmax", "8192");
    auto [code, message] = system_error_of([] { SysVSharedMemory::create(IPC_PRIVATE, 8193); });
    EXPECT_EQ(code, EINVAL);
    EXPECT_TRUE(contains(message, "asked for 8193 bytes")) << message;
    EXPECT_TRUE(contains(message, "kernel.shmmax = 8192")) << message;
    EXPECT_TRUE(SysVSharedMemory::create(IPC_PRIVATE, 8192).attach());
  });
}

TEST(SharedMemorySysV, TooManySegmentsIsRefusedNamingShmmni) {
  in_own_ipc_namespace([] {
    set_kernel_setting("/proc/sys/kernel/shmmni", "1");
    SysVSharedMemory first = SysVSharedMemory::create(IPC_PRIVATE, 16);
    auto [code, message] = system_error_of([] { SysVSharedMemory::create(IPC_PRIVATE, 16); });
    EXPECT_EQ(code, ENOSPC);
    EXPECT_TRUE(contains(message, "kernel.shmmni = 1")) << message;
  });
}

TEST(SharedMemorySysV, TooManyPagesIsRefusedNamingShmall) {
  in_own_ipc_namespace([] {
    set_kernel_setting("/proc/sys/kernel/shmall", "2");
    auto [code, message] =
        system_error_of([] { SysVSharedMemory::create(IPC_PRIVATE, 3 * 4096); });
    EXPECT_EQ(code, ENOSPC);
    EXPECT_TRUE(contains(message, "kernel.shmall = 2")) << message;
  });
}

TEST(SharedMemorySysV, KeyFromAMissingPathThrowsENOENT) {
  TempDir dir;
  auto [code, message] = system_error_of([&] { key_from_path(dir / "missing"); });
  EXPECT_EQ(code, ENOENT);
  EXPECT_TRUE(contains(message, "ftok(" + (dir / "missing") + ")")) << message;
}

TEST(SharedMemorySysV, KeysDifferByProject) {
  TempDir dir;
  std::ofstream(dir / "f") << "x";
  EXPECT_EQ(key_from_path(dir / "f"), key_from_path(dir / "f"));
  EXPECT_NE(key_from_path(dir / "f", 'a'), key_from_path(dir / "f", 'b'));
}

}  // namespace
}  // namespace conduit::ipc
