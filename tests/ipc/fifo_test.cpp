// Specification of named pipes (conduit/ipc/fifo.hpp).

#include "conduit/ipc/fifo.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>

#include "conduit/error.hpp"
#include "conduit/ipc/pipe.hpp"
#include "conduit/ipc/process.hpp"
#include "descriptors.hpp"
#include "test_support.hpp"

namespace conduit::ipc {
namespace {

using namespace std::chrono_literals;
using conduit::testing::contains;
using conduit::testing::exists;
using conduit::testing::exited_cleanly;
using conduit::testing::fork_child;
using conduit::testing::system_error_of;
using conduit::testing::TempDir;
using conduit::testing::wait_child;

bool is_fifo(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 && S_ISFIFO(st.st_mode);
}

// Reads from a (possibly nonblocking) descriptor until end of file, giving up
// after timeout.
std::string read_to_end(int fd, std::chrono::milliseconds timeout = 10s) {
  std::string text;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  char buffer[4096];
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd ready{fd, POLLIN, 0};
    if (::poll(&ready, 1, 50) <= 0) continue;
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n == 0) return text;
    if (n > 0) text.append(buffer, static_cast<std::size_t>(n));
  }
  ADD_FAILURE() << "no end of file within " << timeout.count() << " ms; got '" << text << "'";
  return text;
}

// --- Creating and removing the node -----------------------------------------------

TEST(FifoCreate, MakesAFifoNodeAtThePath) {
  TempDir dir;
  Fifo fifo = Fifo::create(dir / "f");
  EXPECT_EQ(fifo.path(), dir / "f");
  EXPECT_TRUE(is_fifo(dir / "f"));
}

TEST(FifoCreate, GivesExactlyTheRequestedModeDespiteTheUmask) {
  TempDir dir;
  mode_t previous = ::umask(077);
  Fifo fifo = Fifo::create(dir / "f", 0640);
  ::umask(previous);
  struct stat st {};
  ASSERT_EQ(::stat((dir / "f").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
}

TEST(FifoCreate, DefaultModeIsOwnerReadWrite) {
  TempDir dir;
  mode_t previous = ::umask(0);
  Fifo fifo = Fifo::create(dir / "f");
  ::umask(previous);
  struct stat st {};
  ASSERT_EQ(::stat((dir / "f").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST(FifoCreate, ExistingPathThrowsEEXISTNamingIt) {
  TempDir dir;
  Fifo first = Fifo::create(dir / "f");
  auto [code, message] = system_error_of([&] { Fifo::create(dir / "f"); });
  EXPECT_EQ(code, EEXIST);
  EXPECT_TRUE(contains(message, "mkfifo(" + (dir / "f") + ")")) << message;
  EXPECT_TRUE(is_fifo(dir / "f")) << "the failed create removed the first FIFO";
}

TEST(FifoCreate, MissingDirectoryThrowsENOENT) {
  TempDir dir;
  auto [code, message] = system_error_of([&] { Fifo::create(dir / "no-such-dir/f"); });
  EXPECT_EQ(code, ENOENT);
  EXPECT_TRUE(contains(message, dir / "no-such-dir/f")) << message;
}

TEST(FifoLifetime, DestructorRemovesTheNode) {
  TempDir dir;
  { Fifo fifo = Fifo::create(dir / "f"); }
  EXPECT_FALSE(exists(dir / "f"));
}

TEST(FifoLifetime, RemoveDeletesTheNodeNowAndIsIdempotent) {
  TempDir dir;
  Fifo fifo = Fifo::create(dir / "f");
  fifo.remove();
  EXPECT_FALSE(exists(dir / "f"));
  fifo.remove();
  // A new node at the path is no longer this Fifo's business.
  Fifo other = Fifo::create(dir / "f");
  fifo.remove();
  EXPECT_TRUE(is_fifo(dir / "f"));
}

TEST(FifoLifetime, DestructorLeavesAFileThatReplacedTheNode) {
  TempDir dir;
  {
    Fifo fifo = Fifo::create(dir / "f");
    // Someone else puts a regular file at the path (atomically, so it cannot
    // reuse the FIFO's inode number).
    std::ofstream(dir / "replacement") << "not yours";
    ASSERT_EQ(std::rename((dir / "replacement").c_str(), (dir / "f").c_str()), 0);
  }
  ASSERT_TRUE(exists(dir / "f")) << "the destructor removed a file it did not create";
  EXPECT_FALSE(is_fifo(dir / "f"));
}

TEST(FifoLifetime, MovedFromFifoDoesNotRemoveTheNode) {
  TempDir dir;
  Fifo owner;
  {
    Fifo fifo = Fifo::create(dir / "f");
    owner = std::move(fifo);
  }
  EXPECT_TRUE(is_fifo(dir / "f"));
  EXPECT_EQ(owner.path(), dir / "f");
  owner.remove();
  EXPECT_FALSE(exists(dir / "f"));
}

TEST(FifoLifetime, MoveAssigningOverAFifoRemovesTheOldNode) {
  TempDir dir;
  Fifo fifo = Fifo::create(dir / "old");
  fifo = Fifo::create(dir / "new");
  EXPECT_FALSE(exists(dir / "old"));
  EXPECT_TRUE(is_fifo(dir / "new"));
}

// --- Opening ------------------------------------------------------------------------

TEST(FifoOpen, NonblockingWriteWithoutAReaderThrowsENXIOExplainingWhy) {
  TempDir dir;
  Fifo fifo = Fifo::create(dir / "f");
  auto [code, message] =
      system_error_of([&] { open_fifo_for_writing(fifo.path(), FifoOpen::nonblocking); });
  EXPECT_EQ(code, ENXIO);
  EXPECT_TRUE(contains(message, fifo.path())) << message;
  EXPECT_TRUE(contains(message, "no process has the FIFO open for reading")) << message;
}

TEST(FifoOpen, NonblockingReadSucceedsWithoutAWriter) {
  TempDir dir;
  Fifo fifo = Fifo::create(dir / "f");
  FileDescriptor reader = open_fifo_for_reading(fifo.path(), FifoOpen::nonblocking);
  ASSERT_TRUE(reader);
  EXPECT_TRUE(::fcntl(reader.get(), F_GETFL) & O_NONBLOCK) << "the descriptor keeps O_NONBLOCK";
}

TEST(FifoOpen, NonblockingWriteSucceedsOnceThereIsAReader) {
  TempDir dir;
  Fifo fifo = Fifo::create(dir / "f");
  FileDescriptor reader = open_fifo_for_reading(fifo.path(), FifoOpen::nonblocking);
  FileDescriptor writer = open_fifo_for_writing(fifo.path(), FifoOpen::nonblocking);
  ASSERT_EQ(::write(writer.get(), "abc", 3), 3);
  char buffer[8];
  EXPECT_EQ(::read(reader.get(), buffer, sizeof buffer), 3);
}

TEST(FifoOpen, DescriptorsAreCloseOnExec) {
  TempDir dir;
  Fifo fifo = Fifo::create(dir / "f");
  FileDescriptor reader = open_fifo_for_reading(fifo.path(), FifoOpen::nonblocking);
  FileDescriptor writer = open_fifo_for_writing(fifo.path(), FifoOpen::nonblocking);
  EXPECT_TRUE(::fcntl(reader.get(), F_GETFD) & FD_CLOEXEC);
  EXPECT_TRUE(::fcntl(writer.get(), F_GETFD) & FD_CLOEXEC);
}

TEST(FifoOpen, BlockingOpensWaitForAndPairUpWithAnotherProcess) {
  TempDir dir;
  Fifo fifo = Fifo::create(dir / "f");
  pid_t reader = fork_child([&] {
    FileDescriptor in = open_fifo_for_reading(fifo.path(), FifoOpen::blocking);
    EXPECT_EQ(read_to_end(in.get()), "ping");
  });
  // With no writer, the reader's open does not return.
  std::this_thread::sleep_for(50ms);
  int status = 0;
  EXPECT_EQ(::waitpid(reader, &status, WNOHANG), 0) << "the blocking open returned early";
  pid_t writer = fork_child([&] {
    FileDescriptor out = open_fifo_for_writing(fifo.path(), FifoOpen::blocking);
    ASSERT_EQ(::write(out.get(), "ping", 4), 4);
  });
  EXPECT_TRUE(exited_cleanly(wait_child(writer, 10s)));
  EXPECT_TRUE(exited_cleanly(wait_child(reader, 10s)));
}

TEST(FifoOpen, ReaderSeesEndOfFileOnlyWhenTheLastWriterCloses) {
  TempDir dir;
  Fifo fifo = Fifo::create(dir / "f");
  FileDescriptor reader = open_fifo_for_reading(fifo.path(), FifoOpen::nonblocking);
  FileDescriptor first = open_fifo_for_writing(fifo.path(), FifoOpen::nonblocking);
  FileDescriptor second = open_fifo_for_writing(fifo.path(), FifoOpen::nonblocking);
  ASSERT_EQ(::write(first.get(), "1", 1), 1);
  ASSERT_EQ(::write(second.get(), "2", 1), 1);
  first.reset();
  char buffer[8];
  EXPECT_EQ(::read(reader.get(), buffer, sizeof buffer), 2);
  errno = 0;
  EXPECT_EQ(::read(reader.get(), buffer, sizeof buffer), -1) << "end of file too early";
  EXPECT_EQ(errno, EAGAIN);
  second.reset();
  EXPECT_EQ(::read(reader.get(), buffer, sizeof buffer), 0);
}

TEST(FifoOpen, ReadsWhatTheShellWritesIntoIt) {
  TempDir dir;
  Fifo fifo = Fifo::create(dir / "f");
  FileDescriptor reader = open_fifo_for_reading(fifo.path(), FifoOpen::nonblocking);
  auto result =
      conduit::testing::run_command({"sh", "-c", "printf hello > \"$0\"", fifo.path()}, 10s);
  EXPECT_TRUE(result.status.success()) << result.status.describe() << ": " << result.err;
  EXPECT_EQ(read_to_end(reader.get()), "hello");
}

TEST(FifoOpen, ShellReadsWhatConduitWrites) {
  TempDir dir;
  Fifo fifo = Fifo::create(dir / "f");
  PipePair out = PipePair::create();
  SpawnOptions options;
  options.argv = {"cat", fifo.path()};
  options.stdout_fd = out.write_end.get();
  Process cat = Process::spawn(options);
  out.write_end.reset();
  FileDescriptor writer;
  ASSERT_TRUE(conduit::testing::eventually([&] {
    try {
      writer = open_fifo_for_writing(fifo.path(), FifoOpen::nonblocking);
      return true;
    } catch (const SystemError& error) {
      return error.code() == ENXIO ? false : throw;
    }
  })) << "cat never opened the FIFO";
  ASSERT_EQ(::write(writer.get(), "from conduit", 12), 12);
  writer.reset();
  EXPECT_EQ(read_to_end(out.read_end.get()), "from conduit");
  auto status = cat.wait_for(10s);
  ASSERT_TRUE(status);
  EXPECT_TRUE(status->success());
}

TEST(FifoOpen, RegularFileIsRefusedAsNotAFifo) {
  TempDir dir;
  std::ofstream(dir / "plain") << "data";
  for (auto open : {open_fifo_for_reading, open_fifo_for_writing}) {
    try {
      open(dir / "plain", FifoOpen::nonblocking);
      ADD_FAILURE() << "a regular file was opened as a FIFO";
    } catch (const Error& error) {
      std::string message = error.what();
      EXPECT_TRUE(contains(message, "not a FIFO")) << message;
      EXPECT_TRUE(contains(message, dir / "plain")) << message;
    }
  }
}

TEST(FifoOpen, MissingPathThrowsENOENTNamingIt) {
  TempDir dir;
  auto [code, message] =
      system_error_of([&] { open_fifo_for_reading(dir / "missing", FifoOpen::nonblocking); });
  EXPECT_EQ(code, ENOENT);
  EXPECT_TRUE(contains(message, dir / "missing")) << message;
}

}  // namespace
}  // namespace conduit::ipc
