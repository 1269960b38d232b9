// Specification of UNIX domain sockets (conduit/ipc/unix_socket.hpp):
// the three socket types across real processes, filesystem and abstract
// addresses, socket-file ownership, descriptor passing and peer credentials.

#include "conduit/ipc/unix_socket.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "conduit/error.hpp"
#include "conduit/ipc/pipe.hpp"
#include "descriptors.hpp"
#include "test_support.hpp"

namespace conduit::ipc {
namespace {

using namespace std::chrono_literals;
using conduit::testing::accept_within;
using conduit::testing::contains;
using conduit::testing::exists;
using conduit::testing::exited_cleanly;
using conduit::testing::fork_child;
using conduit::testing::readable;
using conduit::testing::send_text;
using conduit::testing::system_error_of;
using conduit::testing::TempDir;
using conduit::testing::wait_child;

bool is_socket(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

// Receives one message (or what one recv returns on a stream), with a timeout.
std::string receive_text(int fd, std::chrono::milliseconds timeout = 10s) {
  if (!readable(fd, timeout)) {
    ADD_FAILURE() << "nothing to receive within " << timeout.count() << " ms";
    return "";
  }
  char buffer[4096];
  ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
  if (n < 0) {
    ADD_FAILURE() << "recv: " << std::strerror(errno);
    return "";
  }
  return std::string(buffer, static_cast<std::size_t>(n));
}

// Reads a stream until it has `size` bytes or the peer closes.
std::string receive_exactly(int fd, std::size_t size) {
  std::string text;
  while (text.size() < size) {
    std::string part = receive_text(fd);
    if (part.empty()) break;
    text += part;
  }
  return text;
}

std::string unique_abstract_name(const std::string& what) {
  return "conduit-test-" + std::to_string(::getpid()) + "-" + what;
}

std::span<const std::byte> bytes_of(const std::string& text) {
  return std::as_bytes(std::span(text.data(), text.size()));
}

// --- The three socket types across processes ------------------------------------

TEST(UnixSocketStream, ClientInAnotherProcessExchangesBytesWithTheServer) {
  TempDir dir;
  UnixAddress address = UnixAddress::parse(dir / "s.sock");
  BoundUnixSocket server = BoundUnixSocket::bind(address, UnixSocketType::stream);
  pid_t client = fork_child([&] {
    UnixSocket socket = UnixSocket::connect(address, UnixSocketType::stream);
    EXPECT_EQ(socket.type(), UnixSocketType::stream);
    send_text(socket.fd(), "ping");
    EXPECT_EQ(receive_exactly(socket.fd(), 4), "pong");
  });
  UnixSocket connection = accept_within(server);
  EXPECT_EQ(receive_exactly(connection.fd(), 4), "ping");
  send_text(connection.fd(), "pong");
  EXPECT_TRUE(exited_cleanly(wait_child(client)));
}

TEST(UnixSocketStream, ServerSeesEndOfStreamWhenTheClientCloses) {
  TempDir dir;
  UnixAddress address = UnixAddress::parse(dir / "s.sock");
  BoundUnixSocket server = BoundUnixSocket::bind(address, UnixSocketType::stream);
  pid_t client = fork_child([&] {
    UnixSocket socket = UnixSocket::connect(address, UnixSocketType::stream);
    send_text(socket.fd(), "bye");
  });
  UnixSocket connection = accept_within(server);
  EXPECT_EQ(receive_exactly(connection.fd(), 3), "bye");
  ASSERT_TRUE(readable(connection.fd()));
  char byte;
  EXPECT_EQ(::recv(connection.fd(), &byte, 1, 0), 0);
  EXPECT_TRUE(exited_cleanly(wait_child(client)));
}

TEST(UnixSocketSeqpacket, ClientInAnotherProcessSendsMessagesWithBoundariesKept) {
  TempDir dir;
  UnixAddress address = UnixAddress::parse(dir / "q.sock");
  BoundUnixSocket server = BoundUnixSocket::bind(address, UnixSocketType::seqpacket);
  pid_t client = fork_child([&] {
    UnixSocket socket = UnixSocket::connect(address, UnixSocketType::seqpacket);
    EXPECT_EQ(socket.type(), UnixSocketType::seqpacket);
    send_text(socket.fd(), "one");
    send_text(socket.fd(), "three");
    EXPECT_EQ(receive_text(socket.fd()), "done");
  });
  UnixSocket connection = accept_within(server);
  EXPECT_EQ(connection.type(), UnixSocketType::seqpacket);
  // Both messages are queued by now, yet each recv returns exactly one.
  EXPECT_EQ(receive_text(connection.fd()), "one");
  EXPECT_EQ(receive_text(connection.fd()), "three");
  send_text(connection.fd(), "done");
  EXPECT_TRUE(exited_cleanly(wait_child(client)));
}

TEST(UnixSocketDatagram, ClientInAnotherProcessSendsAndGetsAReply) {
  TempDir dir;
  UnixAddress address = UnixAddress::parse(dir / "d.sock");
  BoundUnixSocket server = BoundUnixSocket::bind(address, UnixSocketType::datagram);
  pid_t client = fork_child([&] {
    UnixSocket socket = UnixSocket::connect(address, UnixSocketType::datagram);
    send_text(socket.fd(), "first");
    send_text(socket.fd(), "second");
    EXPECT_EQ(receive_text(socket.fd()), "reply");
  });
  ASSERT_TRUE(readable(server.fd()));
  sockaddr_un from{};
  socklen_t from_length = sizeof from;
  char buffer[64];
  ssize_t n = ::recvfrom(server.fd(), buffer, sizeof buffer, 0, reinterpret_cast<sockaddr*>(&from),
                         &from_length);
  ASSERT_EQ(n, 5);
  EXPECT_EQ(std::string(buffer, 5), "first");
  EXPECT_EQ(receive_text(server.fd()), "second");
  // The client was autobound, so it has an address to reply to.
  ASSERT_GT(from_length, offsetof(sockaddr_un, sun_path)) << "the client has no address";
  EXPECT_EQ(::sendto(server.fd(), "reply", 5, 0, reinterpret_cast<sockaddr*>(&from), from_length),
            5)
      << std::strerror(errno);
  EXPECT_TRUE(exited_cleanly(wait_child(client)));
}

TEST(UnixSocketPair, IsAConnectedCloseOnExecPair) {
  auto [left, right] = UnixSocket::pair(UnixSocketType::seqpacket);
  EXPECT_TRUE(::fcntl(left.fd(), F_GETFD) & FD_CLOEXEC);
  EXPECT_TRUE(::fcntl(right.fd(), F_GETFD) & FD_CLOEXEC);
  send_text(left.fd(), "across");
  EXPECT_EQ(receive_text(right.fd()), "across");
}

TEST(UnixSocketStream, ConnectedAndAcceptedSocketsAreCloseOnExec) {
  TempDir dir;
  UnixAddress address = UnixAddress::parse(dir / "s.sock");
  BoundUnixSocket server = BoundUnixSocket::bind(address, UnixSocketType::stream);
  UnixSocket client = UnixSocket::connect(address, UnixSocketType::stream);
  UnixSocket accepted = accept_within(server);
  EXPECT_TRUE(::fcntl(server.fd(), F_GETFD) & FD_CLOEXEC);
  EXPECT_TRUE(::fcntl(client.fd(), F_GETFD) & FD_CLOEXEC);
  EXPECT_TRUE(::fcntl(accepted.fd(), F_GETFD) & FD_CLOEXEC);
}

// --- Abstract addresses -------------------------------------------------------------

TEST(UnixSocketAbstract, StreamServerServesAnotherProcessAndLeavesNoFile) {
  TempDir dir;
  std::string name = unique_abstract_name("stream");
  UnixAddress address = UnixAddress::parse("@" + name);
  char* previous = ::getcwd(nullptr, 0);
  ASSERT_EQ(::chdir(dir.path().c_str()), 0);
  BoundUnixSocket server = BoundUnixSocket::bind(address, UnixSocketType::stream);
  EXPECT_EQ(::chdir(previous), 0);
  std::free(previous);
  pid_t client = fork_child([&] {
    UnixSocket socket = UnixSocket::connect(address, UnixSocketType::stream);
    send_text(socket.fd(), "abstract");
  });
  UnixSocket connection = accept_within(server);
  EXPECT_EQ(receive_exactly(connection.fd(), 8), "abstract");
  EXPECT_TRUE(exited_cleanly(wait_child(client)));
  // Nothing appeared in the working directory at bind time.
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

TEST(UnixSocketAbstract, NameIsListedByTheKernelWithAnAtSign) {
  std::string name = unique_abstract_name("listed");
  BoundUnixSocket server =
      BoundUnixSocket::bind(UnixAddress::parse("@" + name), UnixSocketType::seqpacket);
  std::ifstream table("/proc/net/unix");
  std::stringstream text;
  text << table.rdbuf();
  EXPECT_TRUE(contains(text.str(), " @" + name + "\n")) << "not in /proc/net/unix";
}

TEST(UnixSocketAbstract, NameVanishesWithTheLastSocket) {
  UnixAddress address = UnixAddress::parse("@" + unique_abstract_name("vanish"));
  { BoundUnixSocket server = BoundUnixSocket::bind(address, UnixSocketType::stream); }
  auto [code, message] =
      system_error_of([&] { UnixSocket::connect(address, UnixSocketType::stream); });
  EXPECT_EQ(code, ECONNREFUSED) << message;
  // And the name can be bound again at once.
  EXPECT_NO_THROW(BoundUnixSocket::bind(address, UnixSocketType::stream));
}

TEST(UnixSocketAbstract, NameTakenByAnotherSocketIsRefused) {
  UnixAddress address = UnixAddress::parse("@" + unique_abstract_name("taken"));
  BoundUnixSocket first = BoundUnixSocket::bind(address, UnixSocketType::stream);
  auto [code, message] =
      system_error_of([&] { BoundUnixSocket::bind(address, UnixSocketType::stream); });
  EXPECT_EQ(code, EADDRINUSE);
  EXPECT_TRUE(contains(message, "unix:@")) << message;
  EXPECT_TRUE(contains(message, "taken by another process")) << message;
}

TEST(UnixSocketAbstract, DatagramServerGetsMessagesFromAnotherProcess) {
  UnixAddress address = UnixAddress::parse("@" + unique_abstract_name("dgram"));
  BoundUnixSocket server = BoundUnixSocket::bind(address, UnixSocketType::datagram);
  pid_t client = fork_child([&] {
    UnixSocket socket = UnixSocket::connect(address, UnixSocketType::datagram);
    send_text(socket.fd(), "datagram");
  });
  EXPECT_EQ(receive_text(server.fd()), "datagram");
  EXPECT_TRUE(exited_cleanly(wait_child(client)));
}

// --- Owning the socket file --------------------------------------------------------------

TEST(UnixSocketBind, RefusesToClobberASocketAnotherProcessIsServing) {
  TempDir dir;
  UnixAddress address = UnixAddress::parse(dir / "live.sock");
  PipePair ready = PipePair::create();
  PipePair stop = PipePair::create();
  pid_t owner = fork_child([&] {
    ready.read_end.reset();
    stop.write_end.reset();
    BoundUnixSocket server = BoundUnixSocket::bind(address, UnixSocketType::stream);
    ASSERT_EQ(::write(ready.write_end.get(), "r", 1), 1);
    readable(stop.read_end.get());  // until the parent closes `stop`
  });
  ready.write_end.reset();
  stop.read_end.reset();
  ASSERT_TRUE(readable(ready.read_end.get())) << "the owner never bound";
  struct stat before {};
  ASSERT_EQ(::stat((dir / "live.sock").c_str(), &before), 0);

  auto [code, message] =
      system_error_of([&] { BoundUnixSocket::bind(address, UnixSocketType::stream); });
  EXPECT_EQ(code, EADDRINUSE);
  EXPECT_TRUE(contains(message, "unix:" + (dir / "live.sock"))) << message;
  EXPECT_TRUE(contains(message, "another process is serving")) << message;
  // The owner's socket file is untouched and still answers.
  struct stat after {};
  ASSERT_EQ(::stat((dir / "live.sock").c_str(), &after), 0);
  EXPECT_EQ(after.st_ino, before.st_ino);
  EXPECT_NO_THROW(UnixSocket::connect(address, UnixSocketType::stream));

  stop.write_end.reset();
  EXPECT_TRUE(exited_cleanly(wait_child(owner)));
}

TEST(UnixSocketBind, RefusesToClobberALiveDatagramSocket) {
  TempDir dir;
  UnixAddress address = UnixAddress::parse(dir / "live.sock");
  BoundUnixSocket first = BoundUnixSocket::bind(address, UnixSocketType::datagram);
  auto [code, message] =
      system_error_of([&] { BoundUnixSocket::bind(address, UnixSocketType::datagram); });
  EXPECT_EQ(code, EADDRINUSE) << message;
}

TEST(UnixSocketBind, ReplacesAStaleSocketFileLeftByAProcessThatExited) {
  TempDir dir;
  std::string path = dir / "stale.sock";
  // A process binds a socket and exits without unlinking it.
  pid_t leaver = fork_child([&] {
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strcpy(sa.sun_path, path.c_str());
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    ASSERT_EQ(::listen(fd, 1), 0);
  });
  ASSERT_TRUE(exited_cleanly(wait_child(leaver)));
  ASSERT_TRUE(is_socket(path)) << "no stale socket file to test with";

  BoundUnixSocket server = BoundUnixSocket::bind(UnixAddress::parse(path), UnixSocketType::stream);
  UnixSocket client = UnixSocket::connect(UnixAddress::parse(path), UnixSocketType::stream);
  UnixSocket accepted = accept_within(server);
  send_text(client.fd(), "fresh");
  EXPECT_EQ(receive_exactly(accepted.fd(), 5), "fresh");
}

TEST(UnixSocketBind, PathThatIsNotASocketIsRefusedAndLeftAlone) {
  TempDir dir;
  std::string path = dir / "notes.txt";
  std::ofstream(path) << "precious";
  auto [code, message] = system_error_of(
      [&] { BoundUnixSocket::bind(UnixAddress::parse(path), UnixSocketType::stream); });
  EXPECT_TRUE(contains(message, "unix:" + path)) << message;
  EXPECT_TRUE(contains(message, "the path exists and is not a socket")) << message;
  std::ifstream file(path);
  std::string content;
  file >> content;
  EXPECT_EQ(content, "precious");
}

TEST(UnixSocketBind, PathThatIsNotASocketIsRefusedWithEEXIST) {
  // unix_socket.hpp: "Throws SystemError ... with EEXIST when the path
  // exists and is not a socket."
  TempDir dir;
  std::string path = dir / "notes.txt";
  std::ofstream(path) << "precious";
  auto [code, message] = system_error_of(
      [&] { BoundUnixSocket::bind(UnixAddress::parse(path), UnixSocketType::stream); });
  EXPECT_EQ(code, EEXIST) << message;
  EXPECT_TRUE(contains(message, "is not a socket")) << message;
}

TEST(UnixSocketBind, DestructorUnlinksTheSocketFile) {
  TempDir dir;
  {
    BoundUnixSocket server =
        BoundUnixSocket::bind(UnixAddress::parse(dir / "s.sock"), UnixSocketType::stream);
    ASSERT_TRUE(is_socket(dir / "s.sock"));
  }
  EXPECT_FALSE(exists(dir / "s.sock"));
}

TEST(UnixSocketBind, DestructorLeavesAFileThatReplacedTheSocket) {
  TempDir dir;
  {
    BoundUnixSocket server =
        BoundUnixSocket::bind(UnixAddress::parse(dir / "s.sock"), UnixSocketType::stream);
    std::ofstream(dir / "replacement") << "someone else's";
    ASSERT_EQ(std::rename((dir / "replacement").c_str(), (dir / "s.sock").c_str()), 0);
  }
  EXPECT_TRUE(exists(dir / "s.sock")) << "the destructor removed a file it did not create";
}

TEST(UnixSocketBind, MovedFromSocketDoesNotUnlinkThePath) {
  TempDir dir;
  BoundUnixSocket owner;
  {
    BoundUnixSocket server =
        BoundUnixSocket::bind(UnixAddress::parse(dir / "s.sock"), UnixSocketType::stream);
    owner = std::move(server);
  }
  EXPECT_TRUE(is_socket(dir / "s.sock"));
  EXPECT_EQ(owner.address().str(), dir / "s.sock");
  EXPECT_NO_THROW(UnixSocket::connect(owner.address(), UnixSocketType::stream));
}

TEST(UnixSocketBind, ModeSetsTheSocketFilePermissions) {
  TempDir dir;
  BoundUnixSocket server =
      BoundUnixSocket::bind(UnixAddress::parse(dir / "s.sock"), UnixSocketType::stream, 128, 0660);
  struct stat st {};
  ASSERT_EQ(::stat((dir / "s.sock").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0660u);
}

// --- Connect failures -------------------------------------------------------------------

TEST(UnixSocketConnect, MissingPathThrowsENOENTAskingWhetherTheServerRuns) {
  TempDir dir;
  auto [code, message] = system_error_of([&] {
    UnixSocket::connect(UnixAddress::parse(dir / "absent.sock"), UnixSocketType::stream);
  });
  EXPECT_EQ(code, ENOENT);
  EXPECT_TRUE(contains(message, "connect(unix:" + (dir / "absent.sock") + ")")) << message;
  EXPECT_TRUE(contains(message, "is the server running?")) << message;
}

TEST(UnixSocketConnect, RegularFileIsReportedAsNotASocket) {
  TempDir dir;
  std::ofstream(dir / "plain") << "x";
  auto [code, message] = system_error_of(
      [&] { UnixSocket::connect(UnixAddress::parse(dir / "plain"), UnixSocketType::stream); });
  EXPECT_NE(code, 0);
  EXPECT_TRUE(contains(message, "not a socket")) << message;
}

TEST(UnixSocketConnect, StaleSocketFileIsRefusedWithNobodyListening) {
  TempDir dir;
  std::string path = dir / "stale.sock";
  {
    FileDescriptor fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strcpy(sa.sun_path, path.c_str());
    ASSERT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  }
  auto [code, message] = system_error_of(
      [&] { UnixSocket::connect(UnixAddress::parse(path), UnixSocketType::stream); });
  EXPECT_EQ(code, ECONNREFUSED);
  EXPECT_TRUE(contains(message, "nothing is listening there")) << message;
}

TEST(UnixSocketConnect, WrongSocketTypeIsExplained) {
  TempDir dir;
  UnixAddress address = UnixAddress::parse(dir / "d.sock");
  BoundUnixSocket server = BoundUnixSocket::bind(address, UnixSocketType::datagram);
  auto [code, message] =
      system_error_of([&] { UnixSocket::connect(address, UnixSocketType::stream); });
  EXPECT_EQ(code, EPROTOTYPE);
  EXPECT_TRUE(contains(message, "of another type")) << message;
}

// --- Descriptor passing (SCM_RIGHTS) ----------------------------------------------------------

TEST(UnixSocketFdPassing, DescriptorSentToAnotherProcessIsUsableThere) {
  auto [here, there] = UnixSocket::pair(UnixSocketType::stream);
  pid_t receiver = fork_child([&] {
    here = UnixSocket(FileDescriptor(), UnixSocketType::stream);
    std::array<std::byte, 16> buffer{};
    std::vector<FileDescriptor> fds;
    ASSERT_TRUE(readable(there.fd()));
    ASSERT_EQ(there.receive_with_fds(buffer, fds), 1u);
    ASSERT_EQ(fds.size(), 1u);
    const char text[] = "written by the receiver";
    ASSERT_EQ(::write(fds[0].get(), text, sizeof text - 1), static_cast<ssize_t>(sizeof text - 1));
  });
  // The pipe exists only after the fork: the receiver can reach it only
  // through the descriptor it is sent.
  PipePair pipe = PipePair::create();
  int write_end = pipe.write_end.get();
  EXPECT_EQ(here.send_with_fds(bytes_of("!"), std::span(&write_end, 1)), 1u);
  pipe.write_end.reset();
  std::string received;
  while (readable(pipe.read_end.get())) {
    char buffer[64];
    ssize_t n = ::read(pipe.read_end.get(), buffer, sizeof buffer);
    if (n <= 0) break;
    received.append(buffer, static_cast<std::size_t>(n));
  }
  EXPECT_EQ(received, "written by the receiver");
  EXPECT_TRUE(exited_cleanly(wait_child(receiver)));
}

TEST(UnixSocketFdPassing, OpenFileSentAcrossABoundSocketSharesItsOffset) {
  TempDir dir;
  UnixAddress address = UnixAddress::parse(dir / "fds.sock");
  BoundUnixSocket server = BoundUnixSocket::bind(address, UnixSocketType::seqpacket);
  pid_t sender = fork_child([&] {
    FileDescriptor file(
        ::open((dir / "shared.txt").c_str(), O_CREAT | O_RDWR | O_TRUNC | O_CLOEXEC, 0600));
    ASSERT_TRUE(file);
    UnixSocket socket = UnixSocket::connect(address, UnixSocketType::seqpacket);
    int fd = file.get();
    socket.send_with_fds(bytes_of("file"), std::span(&fd, 1));
    // Wait for the receiver to write through it, then append after its bytes.
    EXPECT_EQ(receive_text(socket.fd()), "done");
    ASSERT_EQ(::write(file.get(), "+sender", 7), 7);
  });
  UnixSocket connection = accept_within(server);
  ASSERT_TRUE(readable(connection.fd()));
  std::array<std::byte, 16> buffer{};
  std::vector<FileDescriptor> fds;
  EXPECT_EQ(connection.receive_with_fds(buffer, fds), 4u);
  ASSERT_EQ(fds.size(), 1u);
  ASSERT_EQ(::write(fds[0].get(), "receiver", 8), 8);
  send_text(connection.fd(), "done");
  ASSERT_TRUE(exited_cleanly(wait_child(sender)));
  std::ifstream file(dir / "shared.txt");
  std::string content;
  std::getline(file, content);
  EXPECT_EQ(content, "receiver+sender");
}

TEST(UnixSocketFdPassing, ReceivedDescriptorsAreCloseOnExec) {
  auto [left, right] = UnixSocket::pair(UnixSocketType::stream);
  PipePair pipe = PipePair::create();
  set_close_on_exec(pipe.write_end.get(), false);  // the flag is not copied
  int fd = pipe.write_end.get();
  left.send_with_fds(bytes_of("x"), std::span(&fd, 1));
  std::array<std::byte, 4> buffer{};
  std::vector<FileDescriptor> fds;
  ASSERT_TRUE(readable(right.fd()));
  right.receive_with_fds(buffer, fds);
  ASSERT_EQ(fds.size(), 1u);
  EXPECT_TRUE(::fcntl(fds[0].get(), F_GETFD) & FD_CLOEXEC);
}

TEST(UnixSocketFdPassing, SenderKeepsItsDescriptors) {
  auto [left, right] = UnixSocket::pair(UnixSocketType::stream);
  PipePair pipe = PipePair::create();
  int fd = pipe.write_end.get();
  left.send_with_fds(bytes_of("x"), std::span(&fd, 1));
  EXPECT_GE(::fcntl(fd, F_GETFD), 0) << "the sent descriptor was closed";
  ASSERT_EQ(::write(fd, "k", 1), 1);
}

TEST(UnixSocketFdPassing, SeveralDescriptorsArriveInOrderWithTheirBytes) {
  auto [left, right] = UnixSocket::pair(UnixSocketType::seqpacket);
  std::vector<PipePair> pipes;
  for (int i = 0; i < 3; ++i) pipes.push_back(PipePair::create());
  std::vector<int> fds = {pipes[0].write_end.get(), pipes[1].write_end.get(),
                          pipes[2].write_end.get()};
  EXPECT_EQ(left.send_with_fds(bytes_of("three"), fds), 5u);
  std::array<std::byte, 16> buffer{};
  std::vector<FileDescriptor> received;
  ASSERT_TRUE(readable(right.fd()));
  ASSERT_EQ(right.receive_with_fds(buffer, received), 5u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(buffer.data()), 5), "three");
  ASSERT_EQ(received.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    char mark = static_cast<char>('a' + i);
    ASSERT_EQ(::write(received[i].get(), &mark, 1), 1);
    char got = 0;
    ASSERT_EQ(::read(pipes[i].read_end.get(), &got, 1), 1);
    EXPECT_EQ(got, mark) << "descriptor " << i << " arrived out of order";
  }
}

TEST(UnixSocketFdPassing, MoreThan253DescriptorsAreRefusedBeforeSending) {
  auto [left, right] = UnixSocket::pair(UnixSocketType::stream);
  std::vector<int> fds(254, left.fd());
  try {
    left.send_with_fds(bytes_of("x"), fds);
    FAIL() << "254 descriptors were accepted";
  } catch (const Error& error) {
    EXPECT_TRUE(contains(error.what(), "253")) << error.what();
  }
  set_nonblocking(right.fd(), true);
  char byte;
  EXPECT_EQ(::recv(right.fd(), &byte, 1, 0), -1) << "something was sent";
}

TEST(UnixSocketFdPassing, ReceiveReturnsZeroAtEndOfStream) {
  auto [left, right] = UnixSocket::pair(UnixSocketType::stream);
  left = UnixSocket(FileDescriptor(), UnixSocketType::stream);
  std::array<std::byte, 4> buffer{};
  std::vector<FileDescriptor> fds;
  EXPECT_EQ(right.receive_with_fds(buffer, fds), 0u);
  EXPECT_TRUE(fds.empty());
}

// --- Peer credentials (SO_PEERCRED) -----------------------------------------------------

TEST(UnixSocketPeerCredentials, ServerSeesTheClientProcessPidUidAndGid) {
  TempDir dir;
  UnixAddress address = UnixAddress::parse(dir / "cred.sock");
  BoundUnixSocket server = BoundUnixSocket::bind(address, UnixSocketType::stream);
  pid_t client = fork_child([&] {
    UnixSocket socket = UnixSocket::connect(address, UnixSocketType::stream);
    // Stay connected until the server has looked.
    EXPECT_EQ(receive_text(socket.fd()), "seen");
  });
  UnixSocket connection = accept_within(server);
  PeerCredentials peer = connection.peer_credentials();
  send_text(connection.fd(), "seen");
  EXPECT_EQ(peer.pid, client);
  EXPECT_EQ(peer.uid, ::getuid());
  EXPECT_EQ(peer.gid, ::getgid());
  EXPECT_TRUE(exited_cleanly(wait_child(client)));
}

TEST(UnixSocketPeerCredentials, ClientSeesTheServerProcess) {
  TempDir dir;
  UnixAddress address = UnixAddress::parse(dir / "cred.sock");
  BoundUnixSocket server = BoundUnixSocket::bind(address, UnixSocketType::seqpacket);
  pid_t server_pid = ::getpid();
  pid_t client = fork_child([&] {
    UnixSocket socket = UnixSocket::connect(address, UnixSocketType::seqpacket);
    PeerCredentials peer = socket.peer_credentials();
    EXPECT_EQ(peer.pid, server_pid);
    EXPECT_EQ(peer.uid, ::getuid());
  });
  UnixSocket connection = accept_within(server);
  EXPECT_TRUE(exited_cleanly(wait_child(client)));
}

}  // namespace
}  // namespace conduit::ipc
