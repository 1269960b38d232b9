// Specification of anonymous pipes (conduit/ipc/pipe.hpp).

#include "conduit/ipc/pipe.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "conduit/error.hpp"
#include "test_support.hpp"

namespace conduit::ipc {
namespace {

using conduit::testing::fork_child;
using conduit::testing::wait_child;

bool close_on_exec(int fd) {
  int flags = ::fcntl(fd, F_GETFD);
  return flags >= 0 && (flags & FD_CLOEXEC) != 0;
}

TEST(PipePair, BothEndsAreCloseOnExec) {
  PipePair pipe = PipePair::create();
  EXPECT_TRUE(close_on_exec(pipe.read_end.get()));
  EXPECT_TRUE(close_on_exec(pipe.write_end.get()));
}

TEST(PipePair, EndsAreDistinctOpenDescriptors) {
  PipePair pipe = PipePair::create();
  ASSERT_TRUE(pipe.read_end);
  ASSERT_TRUE(pipe.write_end);
  EXPECT_NE(pipe.read_end.get(), pipe.write_end.get());
  EXPECT_EQ(::fcntl(pipe.read_end.get(), F_GETFL) & O_ACCMODE, O_RDONLY);
  EXPECT_EQ(::fcntl(pipe.write_end.get(), F_GETFL) & O_ACCMODE, O_WRONLY);
}

TEST(PipePair, BytesWrittenToTheWriteEndAreReadFromTheReadEnd) {
  PipePair pipe = PipePair::create();
  const std::string message = "hello through the pipe";
  ASSERT_EQ(::write(pipe.write_end.get(), message.data(), message.size()),
            static_cast<ssize_t>(message.size()));
  char buffer[64] = {};
  ASSERT_EQ(::read(pipe.read_end.get(), buffer, sizeof buffer),
            static_cast<ssize_t>(message.size()));
  EXPECT_EQ(std::string(buffer, message.size()), message);
}

TEST(PipePair, ReaderSeesEndOfFileOnceTheWriteEndCloses) {
  PipePair pipe = PipePair::create();
  ASSERT_EQ(::write(pipe.write_end.get(), "x", 1), 1);
  pipe.write_end.reset();
  char buffer[8];
  EXPECT_EQ(::read(pipe.read_end.get(), buffer, sizeof buffer), 1);
  pollfd ready{pipe.read_end.get(), POLLIN, 0};
  ASSERT_EQ(::poll(&ready, 1, 5000), 1) << "end of file must be readable at once";
  EXPECT_EQ(::read(pipe.read_end.get(), buffer, sizeof buffer), 0);
}

TEST(PipePair, DataCrossesAFork) {
  PipePair pipe = PipePair::create();
  pid_t child = fork_child([&] {
    pipe.read_end.reset();
    ASSERT_EQ(::write(pipe.write_end.get(), "from child", 10), 10);
  });
  pipe.write_end.reset();
  std::string received;
  char buffer[64];
  for (;;) {
    pollfd ready{pipe.read_end.get(), POLLIN, 0};
    ASSERT_EQ(::poll(&ready, 1, 5000), 1);
    ssize_t n = ::read(pipe.read_end.get(), buffer, sizeof buffer);
    ASSERT_GE(n, 0);
    if (n == 0) break;
    received.append(buffer, static_cast<std::size_t>(n));
  }
  EXPECT_EQ(received, "from child");
  EXPECT_TRUE(conduit::testing::exited_cleanly(wait_child(child)));
}

// Without ignore_sigpipe a write to a pipe nobody reads kills the writer;
// this shows the setup can tell the two outcomes apart.
TEST(PipeSigpipe, WriteToAClosedReaderKillsAProcessWithDefaultDisposition) {
  pid_t child = fork_child([] {
    ::signal(SIGPIPE, SIG_DFL);
    PipePair pipe = PipePair::create();
    pipe.read_end.reset();
    (void)!::write(pipe.write_end.get(), "x", 1);
  });
  int status = wait_child(child);
  ASSERT_NE(status, -1) << "the child hung";
  bool killed = WIFSIGNALED(status);
  ASSERT_TRUE(killed) << "the child exited with code " << WEXITSTATUS(status);
  EXPECT_EQ(WTERMSIG(status), SIGPIPE);
}

TEST(PipeSigpipe, AfterIgnoreSigpipeAWriteToAClosedReaderFailsWithEPIPE) {
  pid_t child = fork_child([] {
    ::signal(SIGPIPE, SIG_DFL);
    ignore_sigpipe();
    PipePair pipe = PipePair::create();
    pipe.read_end.reset();
    errno = 0;
    EXPECT_EQ(::write(pipe.write_end.get(), "x", 1), -1);
    EXPECT_EQ(errno, EPIPE);
  });
  int status = wait_child(child);
  ASSERT_NE(status, -1) << "the child hung";
  bool killed = WIFSIGNALED(status);
  EXPECT_FALSE(killed) << "killed by signal " << WTERMSIG(status);
  EXPECT_TRUE(conduit::testing::exited_cleanly(status));
}

TEST(PipeSigpipe, IgnoreSigpipeIsIdempotent) {
  pid_t child = fork_child([] {
    ::signal(SIGPIPE, SIG_DFL);
    ignore_sigpipe();
    ignore_sigpipe();
    struct sigaction current {};
    ASSERT_EQ(::sigaction(SIGPIPE, nullptr, &current), 0);
    EXPECT_EQ(current.sa_handler, SIG_IGN);
  });
  EXPECT_TRUE(conduit::testing::exited_cleanly(wait_child(child)));
}

void count_sigpipe(int) {}

TEST(PipeSigpipe, IgnoreSigpipeLeavesAnInstalledHandlerAlone) {
  pid_t child = fork_child([] {
    ::signal(SIGPIPE, count_sigpipe);
    ignore_sigpipe();
    struct sigaction current {};
    ASSERT_EQ(::sigaction(SIGPIPE, nullptr, &current), 0);
    EXPECT_EQ(current.sa_handler, &count_sigpipe);
  });
  EXPECT_TRUE(conduit::testing::exited_cleanly(wait_child(child)));
}

TEST(PipeCapacity, ReportsTheKernelBufferSize) {
  PipePair pipe = PipePair::create();
  int kernel = ::fcntl(pipe.read_end.get(), F_GETPIPE_SZ);
  ASSERT_GT(kernel, 0);
  EXPECT_EQ(pipe_capacity(pipe.read_end.get()), static_cast<std::size_t>(kernel));
  EXPECT_EQ(pipe_capacity(pipe.write_end.get()), static_cast<std::size_t>(kernel));
}

TEST(PipeCapacity, SetCapacityGrantsAtLeastTheRequestAndTheBufferHoldsIt) {
  PipePair pipe = PipePair::create();
  std::size_t granted = set_pipe_capacity(pipe.write_end.get(), 256 * 1024);
  EXPECT_GE(granted, 256u * 1024u);
  EXPECT_EQ(pipe_capacity(pipe.read_end.get()), granted);
  // The whole granted size can be written without a reader draining it.
  set_nonblocking(pipe.write_end.get(), true);
  std::string block(granted, 'z');
  EXPECT_EQ(::write(pipe.write_end.get(), block.data(), block.size()),
            static_cast<ssize_t>(granted));
}

TEST(PipeCapacity, SetCapacityRoundsUpToWholePages) {
  PipePair pipe = PipePair::create();
  long page = ::sysconf(_SC_PAGESIZE);
  std::size_t granted = set_pipe_capacity(pipe.read_end.get(), 5000);
  EXPECT_GE(granted, 5000u);
  EXPECT_EQ(granted % static_cast<std::size_t>(page), 0u);
  EXPECT_EQ(pipe_capacity(pipe.read_end.get()), granted);
}

TEST(PipeCapacity, SetCapacityBelowTheDataInsideIsRefused) {
  PipePair pipe = PipePair::create();
  std::string data(3 * 4096, 'd');
  ASSERT_EQ(::write(pipe.write_end.get(), data.data(), data.size()),
            static_cast<ssize_t>(data.size()));
  try {
    set_pipe_capacity(pipe.write_end.get(), 4096);
    FAIL() << "shrinking below the buffered data must fail";
  } catch (const SystemError& error) {
    EXPECT_EQ(error.code(), EBUSY);
    EXPECT_NE(std::string(error.what()).find("F_SETPIPE_SZ"), std::string::npos) << error.what();
  }
}

TEST(PipeCapacity, OfANonPipeThrowsSystemErrorNamingTheDescriptor) {
  conduit::testing::TempDir dir;
  FileDescriptor file(::open((dir / "plain").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0600));
  ASSERT_TRUE(file);
  try {
    pipe_capacity(file.get());
    FAIL() << "a regular file has no pipe buffer";
  } catch (const SystemError& error) {
    EXPECT_EQ(error.code(), EBADF);
    EXPECT_NE(std::string(error.what()).find("fd " + std::to_string(file.get())), std::string::npos)
        << error.what();
  }
}

}  // namespace
}  // namespace conduit::ipc
