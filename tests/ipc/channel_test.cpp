// Tests for conduit::ipc::Channel and ChannelListener (channel.hpp): whole
// messages over every mechanism with the peer in another process, receive
// modes, limits and misbehaving peers, raw mode, datagram and seqpacket
// specifics, FIFO rendezvous, cancellation, cleanup, and system-call hygiene
// through the sys:: seam (src/ipc/sys.hpp).
#include "conduit/ipc/channel.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "conduit/error.hpp"
#include "conduit/ipc/fifo.hpp"
#include "conduit/ipc/pipe.hpp"
#include "conduit/ipc/tcp_socket.hpp"
#include "conduit/ipc/unix_socket.hpp"
#include "conduit/ipc/uri.hpp"
#include "ipc/sys.hpp"
#include "messages.hpp"
#include "test_support.hpp"

namespace conduit::ipc {
namespace {

using namespace std::chrono_literals;
using conduit::testing::Bytes;
using conduit::testing::bytes_of;
using conduit::testing::conduit_binary;
using conduit::testing::eventually;
using conduit::testing::exited_cleanly;
using conduit::testing::make_message;
using conduit::testing::receive_message;
using conduit::testing::TempDir;
using conduit::testing::text_of;
using Clock = std::chrono::steady_clock;

// The longest any single step of a test waits.
constexpr std::chrono::milliseconds kWait{10000};
// "Thousands of messages in a row".
constexpr std::size_t kManyMessages = 3000;

// ---- Messages ----------------------------------------------------------------------

::testing::AssertionResult IsMessage(std::span<const std::byte> got, std::uint64_t index,
                                     std::size_t size) {
  if (got.size() != size)
    return ::testing::AssertionFailure()
           << "message " << index << " has " << got.size() << " bytes, expected " << size;
  Bytes expected = make_message(index, size);
  auto [at, unused] = std::mismatch(got.begin(), got.end(), expected.begin());
  if (at != got.end())
    return ::testing::AssertionFailure() << "message " << index << " (" << size
                                         << " bytes) differs at byte " << (at - got.begin());
  return ::testing::AssertionSuccess();
}

// Sizes for long runs of messages: 0 to 599 bytes, in no simple order.
std::size_t size_for(std::size_t i) {
  return (i * 97) % 600;
}

// The 4-byte big-endian length prefix of stream mechanisms.
Bytes frame_header(std::uint32_t length) {
  return {static_cast<std::byte>(length >> 24), static_cast<std::byte>(length >> 16),
          static_cast<std::byte>(length >> 8), static_cast<std::byte>(length)};
}

// ---- Raw descriptors ------------------------------------------------------------------

void write_all(int fd, std::span<const std::byte> data) {
  std::size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n > 0) {
      done += static_cast<std::size_t>(n);
    } else if (n < 0 && errno == EAGAIN) {
      pollfd ready{fd, POLLOUT, 0};
      ::poll(&ready, 1, static_cast<int>(kWait.count()));
    } else if (!(n < 0 && errno == EINTR)) {
      throw SystemError("write", "test peer", errno);
    }
  }
}

// Reads exactly n bytes from fd (blocking or not) within kWait.
Bytes read_exactly(int fd, std::size_t n) {
  Bytes data(n);
  std::size_t done = 0;
  auto deadline = Clock::now() + kWait;
  while (done < n) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    pollfd ready{fd, POLLIN, 0};
    if (left <= 0ms || ::poll(&ready, 1, static_cast<int>(left.count())) == 0)
      throw std::runtime_error("read_exactly: only " + std::to_string(done) + " of " +
                               std::to_string(n) + " bytes arrived in time");
    ssize_t got = ::read(fd, data.data() + done, n - done);
    if (got == 0)
      throw std::runtime_error("read_exactly: end of file after " + std::to_string(done) + " of " +
                               std::to_string(n) + " bytes");
    if (got < 0 && errno != EINTR && errno != EAGAIN) throw SystemError("read", "test peer", errno);
    if (got > 0) done += static_cast<std::size_t>(got);
  }
  return data;
}

// True when the other end of socket fd went away (end of file or a reset)
// within kWait; whatever it still had to say is discarded.
bool closed_by_peer(int fd) {
  auto deadline = Clock::now() + kWait;
  char sink[4096];
  while (Clock::now() < deadline) {
    pollfd ready{fd, POLLIN, 0};
    if (::poll(&ready, 1, 50) == 0) continue;
    ssize_t n = ::read(fd, sink, sizeof sink);
    if (n == 0 || (n < 0 && errno == ECONNRESET)) return true;
    if (n < 0 && errno != EINTR && errno != EAGAIN) return false;
  }
  return false;
}

// A plain, unframed connection to a unix: or tcp:// URI.
FileDescriptor raw_connect(const std::string& text) {
  Uri uri = Uri::parse(text);
  if (uri.scheme == "tcp") return TcpSocket::connect(uri.host, uri.port).release();
  return UnixSocket::connect(UnixAddress::parse(uri.path), UnixSocketType::stream).release();
}

// "pipe:R,W" handing over both descriptors to the channel made from it.
std::string pipe_uri(FileDescriptor& read, FileDescriptor& write, std::string_view options = "") {
  return "pipe:" + std::to_string(read.release()) + "," + std::to_string(write.release()) +
         std::string(options);
}

bool ipv6_loopback_available() {
  static const bool available = [] {
    FileDescriptor fd(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) return false;
    sockaddr_in6 address{};
    address.sin6_family = AF_INET6;
    address.sin6_addr = in6addr_loopback;
    return ::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  }();
  return available;
}

// ---- Child processes -------------------------------------------------------------------

std::string describe_status(int status) {
  if (status == -1) return "did not finish in time and was killed";
  if (WIFEXITED(status)) {
    switch (WEXITSTATUS(status)) {
      case 0:
        return "exited normally";
      case 1:
        return "exited 1: an assertion failed in it (see its output above)";
      case 2:
        return "exited 2: it threw (see 'child threw' above)";
      default:
        return "exited with code " + std::to_string(WEXITSTATUS(status));
    }
  }
  if (WIFSIGNALED(status))
    return std::string("was killed by signal ") + ::strsignal(WTERMSIG(status));
  return "ended with wait status " + std::to_string(status);
}

// A forked child running a test body (see fork_child). Killed and reaped on
// destruction if still running, so no test leaves a process behind.
class ChildProcess {
 public:
  ChildProcess() = default;
  explicit ChildProcess(const std::function<void()>& body) { start(body); }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess() {
    if (pid_ > 0 && !status_) kill_and_wait();
  }

  void start(const std::function<void()>& body) {
    std::fflush(nullptr);  // or the child would write our buffered output again
    pid_ = conduit::testing::fork_child(body);
    if (pid_ < 0) throw SystemError("fork", "", errno);
  }
  pid_t pid() const { return pid_; }

  // True once the child has ended (and has been reaped).
  bool finished() {
    if (status_) return true;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) status_ = status;
    return status_.has_value();
  }
  // The wait status, or -1 if it did not end within timeout (then it is killed).
  int wait(std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    if (!status_) status_ = conduit::testing::wait_child(pid_, timeout);
    return *status_;
  }
  int kill_and_wait() {
    if (!status_) ::kill(pid_, SIGKILL);
    return wait();
  }

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
};

#define EXPECT_CHILD_SUCCEEDS(child)                                                        \
  do {                                                                                      \
    int child_status = (child).wait();                                                      \
    EXPECT_TRUE(exited_cleanly(child_status)) << "child " << describe_status(child_status); \
  } while (0)

// Receives a message from a channel whose peer is `child`, giving up early if
// the child ends without sending one.
Bytes receive_from(Channel& channel, ChildProcess& child) {
  auto deadline = Clock::now() + kWait;
  while (Clock::now() < deadline) {
    Received received = channel.receive(20ms);
    if (received) return Bytes(received.message.begin(), received.message.end());
    if (received.status == ReceiveStatus::closed)
      throw std::runtime_error("the child closed " + channel.uri() + " instead of sending");
    if (child.finished()) {
      if ((received = channel.try_receive()))
        return Bytes(received.message.begin(), received.message.end());
      throw std::runtime_error("the child " + describe_status(child.wait()) +
                               " without sending the expected message");
    }
  }
  throw std::runtime_error("no message from the child in time on " + channel.uri());
}

// Aborts the test process with a message when a step that a broken library
// could block forever (a blocking send into a full buffer nobody reads) has
// not finished in twice kWait. Not for tests that fork while it runs.
class Watchdog {
 public:
  explicit Watchdog(std::string what) : what_(std::move(what)), thread_([this] { watch(); }) {}
  ~Watchdog() {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    wake_.notify_one();
    thread_.join();
  }

 private:
  void watch() {
    std::unique_lock lock(mutex_);
    if (!wake_.wait_for(lock, 2 * kWait, [this] { return done_; })) {
      std::fprintf(stderr, "watchdog: %s did not finish in %lld s; aborting the test process\n",
                   what_.c_str(), static_cast<long long>(2 * kWait.count() / 1000));
      std::abort();
    }
  }

  std::string what_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool done_ = false;
  std::thread thread_;  // last: starts once everything above exists
};

// ---- Schemes ---------------------------------------------------------------------------

struct Scheme {
  std::string name;
  // The URI a listener uses, in dir; nullptr for pipe: (a pipe pair).
  std::string (*listen_uri)(const TempDir& dir) = nullptr;
  bool kernel_framed = false;  // seqpacket, dgram: the kernel keeps boundaries
  bool ipv6 = false;
};

std::string SchemeName(const ::testing::TestParamInfo<Scheme>& info) {
  return info.param.name;
}
void PrintTo(const Scheme& scheme, std::ostream* out) {
  *out << scheme.name;
}

std::string unique_abstract_name() {
  static std::atomic<int> counter{0};
  return "@conduit-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

// Stream mechanisms get ?max=1M so that maximum-size messages stay quick;
// seqpacket and dgram are bounded by the kernel's socket buffer instead.
const Scheme kPipe{"pipe"};
const Scheme kFifo{"fifo", [](const TempDir& dir) { return "fifo:" + dir / "chan" + "?max=1M"; }};
const Scheme kUnixPath{
    "unix_path", [](const TempDir& dir) { return "unix:" + dir / "stream.sock" + "?max=1M"; }};
const Scheme kUnixAbstract{
    "unix_abstract", [](const TempDir&) { return "unix:" + unique_abstract_name() + "?max=1M"; }};
const Scheme kSeqpacket{"unix_seqpacket",
                        [](const TempDir& dir) { return "unix+seqpacket:" + dir / "seq.sock"; },
                        true};
const Scheme kDgram{"unix_dgram",
                    [](const TempDir& dir) { return "unix+dgram:" + dir / "dg.sock"; }, true};
const Scheme kTcp4{"tcp_ipv4",
                   [](const TempDir&) { return std::string("tcp://127.0.0.1:0?max=1M"); }};
const Scheme kTcp6{"tcp_ipv6", [](const TempDir&) { return std::string("tcp://[::1]:0?max=1M"); },
                   false, true};

// Both ends of one channel in this process.
struct LocalPair {
  std::optional<ChannelListener> listener;
  std::optional<Channel> server;
  std::optional<Channel> client;
};

// Connects a client to `listener` (at `uri`) from another thread while this
// thread accepts it: a FIFO client needs the server's accept() running to
// connect. Returns {server's channel, client's channel}; throws what connect
// threw, or when nothing is accepted within kWait.
std::pair<Channel, Channel> connect_and_accept(ChannelListener& listener, const std::string& uri,
                                               const ChannelOptions& options = {}) {
  std::future<Channel> connecting =
      std::async(std::launch::async, [&] { return Channel::connect(uri, options); });
  std::optional<Channel> accepted;
  auto deadline = Clock::now() + kWait;
  while (!accepted && Clock::now() < deadline) {
    accepted = listener.accept(20ms);  // if it throws, ~future waits for connect to end
    if (!accepted && connecting.wait_for(0s) == std::future_status::ready) {
      Channel unexpected = connecting.get();  // rethrows the reason connect failed
      throw std::runtime_error("a client connected to " + uri + " but accept() missed it");
    }
  }
  if (!accepted) throw std::runtime_error("accept on " + uri + " timed out");
  return {std::move(*accepted), connecting.get()};
}

LocalPair make_local_pair(const Scheme& scheme, const TempDir& dir,
                          const ChannelOptions& options = {}) {
  LocalPair pair;
  if (scheme.listen_uri == nullptr) {
    PipePair a = PipePair::create();
    PipePair b = PipePair::create();
    pair.server.emplace(Channel::connect(pipe_uri(a.read_end, b.write_end, "?max=1M"), options));
    pair.client.emplace(Channel::connect(pipe_uri(b.read_end, a.write_end, "?max=1M"), options));
    return pair;
  }
  pair.listener.emplace(ChannelListener::listen(scheme.listen_uri(dir), options));
  auto [server, client] = connect_and_accept(*pair.listener, pair.listener->uri(), options);
  pair.server.emplace(std::move(server));
  pair.client.emplace(std::move(client));
  return pair;
}

// ---- A FIFO client by hand ---------------------------------------------------------

// What a shell client does (fifo_transport.hpp): create a pair "<path>.NAME.c2s"
// and "<path>.NAME.s2c", open the reply FIFO for reading, announce the pair
// with one line on the server's FIFO, and open the request FIFO for writing
// once the server reads it.
struct HandMadePair {
  std::string prefix;  // "<path>.NAME", the line announced
  Fifo c2s;
  Fifo s2c;
};

HandMadePair make_pair_fifos(const std::string& prefix, mode_t mode = 0600) {
  return {prefix, Fifo::create(prefix + ".c2s", mode), Fifo::create(prefix + ".s2c", mode)};
}

// Writes `line` (one write, as a client does) into the server's FIFO at path.
void write_request(const std::string& path, std::string_view line) {
  FileDescriptor requests = open_fifo_for_writing(path, FifoOpen::nonblocking);
  write_all(requests.get(), bytes_of(line));
}

// Opens `fifo` for writing (blocking descriptor) as soon as someone reads it,
// within kWait.
FileDescriptor open_for_writing_once_read(const std::string& fifo) {
  FileDescriptor fd;
  bool opened = eventually(
      [&] {
        try {
          fd = open_fifo_for_writing(fifo, FifoOpen::nonblocking);
          return true;
        } catch (const SystemError& error) {
          if (error.code() != ENXIO) throw;
          return false;
        }
      },
      kWait);
  if (!opened) throw std::runtime_error("nobody opened " + fifo + " for reading in time");
  set_nonblocking(fd.get(), false);
  return fd;
}

// True when some process opened the FIFO that `read_fd` reads and closed it
// again: Linux reports POLLHUP to a reader only once a writer has come and gone.
bool a_writer_came_and_went(int read_fd) {
  pollfd ready{read_fd, POLLIN, 0};
  return ::poll(&ready, 1, 0) == 1 && (ready.revents & POLLHUP) != 0;
}

// The names in dir, sorted.
std::vector<std::string> names_in(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir))
    names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// The permission bits of a FIFO at path, or -1 when it is missing or not a FIFO.
int fifo_mode(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 || !S_ISFIFO(st.st_mode)) return -1;
  return static_cast<int>(st.st_mode & 07777);
}

// A channel and a raw peer that reads and writes the bytes on the wire.
struct RawPeer {
  std::optional<HandMadePair> fifos;  // fifo: the peer's own pair, removed last
  std::optional<ChannelListener> listener;
  std::optional<Channel> channel;
  FileDescriptor in;   // what the channel sends arrives here (for sockets: the socket)
  FileDescriptor out;  // what is written here, the channel receives (empty for sockets)

  int write_fd() const { return out ? out.get() : in.get(); }
  void write(std::span<const std::byte> data) const { write_all(write_fd(), data); }
  void write(std::string_view text) const { write(bytes_of(text)); }
  // The channel then reads end of file.
  void close_write() {
    if (out)
      out.reset();
    else
      ::shutdown(in.get(), SHUT_WR);
  }
  Bytes read_exactly(std::size_t n) const { return ipc::read_exactly(in.get(), n); }
  bool nothing_more(std::chrono::milliseconds wait) const {
    pollfd ready{in.get(), POLLIN, 0};
    return ::poll(&ready, 1, static_cast<int>(wait.count())) == 0;
  }
};

// kind: "pipe", "fifo", "unix" or "tcp"; options are appended to the URI.
RawPeer make_raw_peer(const std::string& kind, const TempDir& dir,
                      const std::string& options = "") {
  RawPeer peer;
  if (kind == "pipe") {
    PipePair to_channel = PipePair::create();
    PipePair from_channel = PipePair::create();
    peer.channel.emplace(
        Channel::connect(pipe_uri(to_channel.read_end, from_channel.write_end, options)));
    peer.in = std::move(from_channel.read_end);
    peer.out = std::move(to_channel.write_end);
  } else if (kind == "fifo") {
    // A client by hand, as a shell would be: our own pair and our reading end
    // first, then the request line, then the server opens its ends (accept),
    // then our writing end.
    peer.listener.emplace(ChannelListener::listen("fifo:" + dir / "raw" + options));
    peer.fifos.emplace(make_pair_fifos(dir / "raw.by-hand"));
    peer.in = open_fifo_for_reading(peer.fifos->prefix + ".s2c", FifoOpen::nonblocking);
    write_request(dir / "raw", peer.fifos->prefix + "\n");
    peer.channel = peer.listener->accept(kWait);
    if (peer.channel) peer.out = open_for_writing_once_read(peer.fifos->prefix + ".c2s");
  } else {
    peer.listener.emplace(ChannelListener::listen(
        (kind == "unix" ? "unix:" + dir / "raw.sock" : std::string("tcp://127.0.0.1:0")) +
        options));
    peer.in = raw_connect(peer.listener->uri());
    peer.channel = peer.listener->accept(kWait);
  }
  if (!peer.channel) throw std::runtime_error("no channel for the raw " + kind + " peer");
  return peer;
}

// Echoes on every channel `listener` accepts until stop(): one peer at a time,
// or each peer in its own thread. Records the errors that ended a peer.
class EchoLoop {
 public:
  EchoLoop(ChannelListener& listener, bool thread_per_peer)
      : listener_(listener), thread_per_peer_(thread_per_peer), acceptor_([this] { run(); }) {}
  ~EchoLoop() { stop(); }

  void stop() {
    stopping_ = true;
    if (acceptor_.joinable()) acceptor_.join();
    std::vector<std::thread> peers;
    {
      std::lock_guard lock(mutex_);
      peers.swap(peers_);
    }
    for (auto& peer : peers) peer.join();
  }
  int errors() const { return errors_; }
  std::string error_text() const {
    std::lock_guard lock(mutex_);
    return error_text_;
  }

 private:
  void run() {
    while (!stopping_) {
      std::optional<Channel> channel;
      try {
        channel = listener_.accept(20ms);
      } catch (const std::exception& error) {
        record(error.what());
        std::this_thread::sleep_for(20ms);
        continue;
      }
      if (!channel) continue;
      if (!thread_per_peer_) {
        serve(*channel);
        continue;
      }
      std::lock_guard lock(mutex_);
      peers_.emplace_back([this, peer = std::move(*channel)]() mutable { serve(peer); });
    }
  }
  void serve(Channel& channel) {
    while (!stopping_) {
      try {
        Received received = channel.receive(20ms);
        if (received.status == ReceiveStatus::closed) return;
        if (received) channel.send(received.message);
      } catch (const std::exception& error) {
        record(error.what());
        return;
      }
    }
  }
  void record(const std::string& text) {
    std::lock_guard lock(mutex_);
    error_text_ += text + "\n";
    ++errors_;
  }

  ChannelListener& listener_;
  const bool thread_per_peer_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> errors_{0};
  mutable std::mutex mutex_;
  std::vector<std::thread> peers_;
  std::string error_text_;
  std::thread acceptor_;  // last: starts once everything above exists
};

// ---- Every scheme, with the client in another process -------------------------

class ChannelSchemeTest : public ::testing::TestWithParam<Scheme> {
 protected:
  void SetUp() override {
    if (GetParam().ipv6 && !ipv6_loopback_available()) GTEST_SKIP() << "no IPv6 loopback here";
  }
  TempDir dir_;
};

TEST_P(ChannelSchemeTest, MessagesOfEverySizeRoundTripWithAnotherProcess) {
  ChannelListener listener = ChannelListener::listen(GetParam().listen_uri(dir_));
  const std::string uri = listener.uri();
  const std::vector<std::size_t> sizes = {
      0, 1, 2, 3, 4, 5, 8, 9, 100, 4095, 4096, 4097, 65535, 65536, 65537, 200000, 1 << 19};
  ChildProcess client([&] {
    Channel channel = Channel::connect(uri);
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      channel.send(make_message(i, sizes[i]));
      EXPECT_TRUE(IsMessage(receive_message(channel), i, sizes[i]));
    }
  });
  std::optional<Channel> server = listener.accept(kWait);
  ASSERT_TRUE(server) << "no client connected to " << uri;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    Bytes got = receive_from(*server, client);
    EXPECT_TRUE(IsMessage(got, i, sizes[i]));
    server->send(got);
  }
  EXPECT_CHILD_SUCCEEDS(client);
}

TEST_P(ChannelSchemeTest, MessageOfExactlyMaxSizeRoundTrips) {
  ChannelListener listener = ChannelListener::listen(GetParam().listen_uri(dir_));
  const std::string uri = listener.uri();
  ChildProcess client([&] {
    Channel channel = Channel::connect(uri);
    const std::size_t max = channel.max_message_size();
    channel.send(make_message(1, max));
    EXPECT_TRUE(IsMessage(receive_message(channel), 2, max));
  });
  std::optional<Channel> server = listener.accept(kWait);
  ASSERT_TRUE(server);
  const std::size_t max = server->max_message_size();
  if (!GetParam().kernel_framed) {
    EXPECT_EQ(max, 1u << 20) << "?max=1M was not applied";
  }
  EXPECT_TRUE(IsMessage(receive_from(*server, client), 1, max));
  server->send(make_message(2, max));
  EXPECT_CHILD_SUCCEEDS(client);
}

TEST_P(ChannelSchemeTest, ThousandsOfClientMessagesArriveInOrder) {
  ChannelListener listener = ChannelListener::listen(GetParam().listen_uri(dir_));
  const std::string uri = listener.uri();
  ChildProcess client([&] {
    Channel channel = Channel::connect(uri);
    for (std::size_t i = 0; i < kManyMessages; ++i) channel.send(make_message(i, size_for(i)));
    // Stay connected until the server has read everything (a datagram
    // server could not tell us otherwise).
    EXPECT_EQ(text_of(receive_message(channel)), "all received");
  });
  std::optional<Channel> server = listener.accept(kWait);
  ASSERT_TRUE(server);
  for (std::size_t i = 0; i < kManyMessages; ++i) {
    Bytes got = receive_from(*server, client);
    ASSERT_TRUE(IsMessage(got, i, size_for(i)));
  }
  server->send("all received");
  EXPECT_CHILD_SUCCEEDS(client);
}

TEST_P(ChannelSchemeTest, ThousandsOfServerMessagesArriveInOrder) {
  ChannelListener listener = ChannelListener::listen(GetParam().listen_uri(dir_));
  const std::string uri = listener.uri();
  ChildProcess client([&] {
    Channel channel = Channel::connect(uri);
    channel.send("ready");  // a datagram server learns our address from this
    for (std::size_t i = 0; i < kManyMessages; ++i) {
      Bytes got = receive_message(channel);
      ASSERT_TRUE(IsMessage(got, i, size_for(i)));
    }
  });
  std::optional<Channel> server = listener.accept(kWait);
  ASSERT_TRUE(server);
  EXPECT_EQ(text_of(receive_from(*server, client)), "ready");
  for (std::size_t i = 0; i < kManyMessages; ++i) server->send(make_message(i, size_for(i)));
  EXPECT_CHILD_SUCCEEDS(client);
}

INSTANTIATE_TEST_SUITE_P(, ChannelSchemeTest,
                         ::testing::Values(kFifo, kUnixPath, kUnixAbstract, kSeqpacket, kDgram,
                                           kTcp4, kTcp6),
                         SchemeName);

// Every scheme but unix+dgram, whose server can only answer a sender.
class ChannelServerFirstTest : public ChannelSchemeTest {};

TEST_P(ChannelServerFirstTest, ServerCanSendBeforeTheClientDoes) {
  ChannelListener listener = ChannelListener::listen(GetParam().listen_uri(dir_));
  const std::string uri = listener.uri();
  ChildProcess client([&] {
    Channel channel = Channel::connect(uri);
    EXPECT_EQ(text_of(receive_message(channel)), "greetings from the server");
    channel.send("and hello from the client");
  });
  std::optional<Channel> server = listener.accept(kWait);
  ASSERT_TRUE(server);
  server->send("greetings from the server");
  EXPECT_EQ(text_of(receive_from(*server, client)), "and hello from the client");
  EXPECT_CHILD_SUCCEEDS(client);
}

INSTANTIATE_TEST_SUITE_P(, ChannelServerFirstTest,
                         ::testing::Values(kFifo, kUnixPath, kUnixAbstract, kSeqpacket, kTcp4,
                                           kTcp6),
                         SchemeName);

// ---- pipe: ---------------------------------------------------------------------

TEST(ChannelPipeTest, SpawnedConduitServerEchoesMessages) {
  auto [channel, child] = Channel::spawn({conduit_binary(), "ipc", "serve", "pipe:"});
  const std::vector<std::size_t> sizes = {0, 1, 4, 100, 65536, 1 << 20};
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    channel.send(make_message(i, sizes[i]));
    EXPECT_TRUE(IsMessage(receive_message(channel), i, sizes[i]));
  }
  { Channel closing = std::move(channel); }  // the child reads end of file and exits
  std::optional<ExitStatus> status = child.wait_for(kWait);
  ASSERT_TRUE(status) << "the spawned server did not exit after its stdin closed";
  EXPECT_TRUE(status->success()) << status->describe();
}

TEST(ChannelPipeTest, SpawnedConduitServerEchoesThousandsOfMessagesInOrder) {
  auto [channel, child] = Channel::spawn({conduit_binary(), "ipc", "serve", "pipe:"});
  for (std::size_t i = 0; i < kManyMessages; ++i) {
    channel.send(make_message(i, size_for(i)));
    ASSERT_TRUE(IsMessage(receive_message(channel), i, size_for(i)));
  }
}

TEST(ChannelPipeTest, ConnectAdoptsInheritedDescriptorsInAForkedChild) {
  PipePair to_child = PipePair::create();
  PipePair from_child = PipePair::create();
  const std::string child_uri = "pipe:" + std::to_string(to_child.read_end.get()) + "," +
                                std::to_string(from_child.write_end.get());
  ChildProcess child([&] {
    to_child.write_end.reset();
    from_child.read_end.reset();
    Channel channel = Channel::connect(child_uri);
    for (;;) {
      Received received = channel.receive(kWait);
      ASSERT_NE(received.status, ReceiveStatus::timed_out);
      if (received.status == ReceiveStatus::closed) return;
      channel.send(received.message);
    }
  });
  to_child.read_end.reset();
  from_child.write_end.reset();
  Channel parent = Channel::connect(pipe_uri(from_child.read_end, to_child.write_end));
  for (std::size_t i = 0; i < 500; ++i) {
    parent.send(make_message(i, size_for(i)));
    ASSERT_TRUE(IsMessage(receive_message(parent), i, size_for(i)));
  }
  { Channel closing = std::move(parent); }
  EXPECT_CHILD_SUCCEEDS(child);
}

TEST(ChannelPipeTest, PlainPipeUriKeepsStrayStdoutWritesOutOfTheStream) {
  PipePair to_child = PipePair::create();
  PipePair from_child = PipePair::create();
  ChildProcess child([&] {
    ::dup2(to_child.read_end.get(), 0);
    ::dup2(from_child.write_end.get(), 1);
    to_child = PipePair{};
    from_child = PipePair{};
    Channel channel = Channel::connect("pipe:");
    (void)!::write(1, "stray bytes on fd 1", 19);
    std::printf("stray printf output\n");
    std::fflush(stdout);
    channel.send("the first message");
  });
  to_child.read_end.reset();
  from_child.write_end.reset();
  Channel parent = Channel::connect(pipe_uri(from_child.read_end, to_child.write_end));
  EXPECT_EQ(text_of(receive_message(parent)), "the first message");
  EXPECT_EQ(parent.receive(kWait).status, ReceiveStatus::closed);
  EXPECT_CHILD_SUCCEEDS(child);
}

// ---- Receive modes, with both ends in this process ------------------------------

class ChannelReceiveTest : public ChannelSchemeTest {};

TEST_P(ChannelReceiveTest, TryReceiveWithNothingPendingTimesOut) {
  LocalPair pair = make_local_pair(GetParam(), dir_);
  EXPECT_EQ(pair.server->try_receive().status, ReceiveStatus::timed_out);
  EXPECT_EQ(pair.client->try_receive().status, ReceiveStatus::timed_out);
}

TEST_P(ChannelReceiveTest, TryReceiveReturnsAPendingMessage) {
  LocalPair pair = make_local_pair(GetParam(), dir_);
  pair.client->send("pending");
  std::string got;
  EXPECT_TRUE(eventually([&] {
    Received received = pair.server->try_receive();
    if (received) got = text_of(received.message);
    return bool(received);
  }));
  EXPECT_EQ(got, "pending");
}

TEST_P(ChannelReceiveTest, ReceiveWithTimeoutReturnsTimedOutAfterAboutThatLong) {
  LocalPair pair = make_local_pair(GetParam(), dir_);
  auto start = Clock::now();
  Received received = pair.server->receive(50ms);
  auto elapsed = Clock::now() - start;
  EXPECT_EQ(received.status, ReceiveStatus::timed_out);
  EXPECT_GE(elapsed, 40ms);
  EXPECT_LT(elapsed, 5s);
}

TEST_P(ChannelReceiveTest, MessageSentAfterTheWaitBeganIsReceived) {
  LocalPair pair = make_local_pair(GetParam(), dir_);
  std::thread sender([&] {
    std::this_thread::sleep_for(30ms);
    pair.client->send("late");
  });
  Received received = pair.server->receive(kWait);
  sender.join();
  ASSERT_EQ(received.status, ReceiveStatus::message);
  EXPECT_EQ(text_of(received.message), "late");
}

TEST_P(ChannelReceiveTest, SendAboveMaxThrowsMessageTooLargeAndSendsNothing) {
  LocalPair pair = make_local_pair(GetParam(), dir_);
  const std::size_t max = pair.client->max_message_size();
  try {
    pair.client->send(Bytes(max + 1, std::byte{'x'}));
    ADD_FAILURE() << "send of max + 1 bytes did not throw";
  } catch (const MessageTooLarge& error) {
    EXPECT_NE(std::string(error.what()).find(std::to_string(max + 1)), std::string::npos)
        << error.what();
    EXPECT_NE(std::string(error.what()).find(std::to_string(max)), std::string::npos)
        << error.what();
  }
  EXPECT_EQ(pair.server->receive(20ms).status, ReceiveStatus::timed_out);
  pair.client->send("next");
  EXPECT_EQ(text_of(receive_message(*pair.server)), "next");
}

INSTANTIATE_TEST_SUITE_P(, ChannelReceiveTest,
                         ::testing::Values(kPipe, kFifo, kUnixPath, kUnixAbstract, kSeqpacket,
                                           kDgram, kTcp4, kTcp6),
                         SchemeName);

// Schemes with connections, whose end the server can see.
class ChannelCloseTest : public ChannelSchemeTest {};

TEST_P(ChannelCloseTest, PeerClosingAtAMessageBoundaryReportsClosed) {
  LocalPair pair = make_local_pair(GetParam(), dir_);
  pair.client->send("last words");
  pair.client.reset();
  EXPECT_EQ(text_of(receive_message(*pair.server)), "last words");
  EXPECT_EQ(pair.server->receive(kWait).status, ReceiveStatus::closed);
  EXPECT_EQ(pair.server->receive(kWait).status, ReceiveStatus::closed) << "closed is not sticky";
}

TEST_P(ChannelCloseTest, ServerClosingReportsClosedToTheClient) {
  LocalPair pair = make_local_pair(GetParam(), dir_);
  pair.server.reset();
  EXPECT_EQ(pair.client->receive(kWait).status, ReceiveStatus::closed);
}

INSTANTIATE_TEST_SUITE_P(, ChannelCloseTest,
                         ::testing::Values(kPipe, kFifo, kUnixPath, kUnixAbstract, kSeqpacket,
                                           kTcp4, kTcp6),
                         SchemeName);

// ---- Framing on stream mechanisms, against a raw peer ------------------------------

class ChannelFramingTest : public ::testing::TestWithParam<std::string> {
 protected:
  TempDir dir_;
};

TEST_P(ChannelFramingTest, SentMessageIsAFourByteBigEndianLengthThenThePayload) {
  RawPeer peer = make_raw_peer(GetParam(), dir_);
  peer.channel->send(std::string(258, 'z'));
  Bytes expected = frame_header(258);
  Bytes payload(258, std::byte{'z'});
  expected.insert(expected.end(), payload.begin(), payload.end());
  EXPECT_EQ(peer.read_exactly(expected.size()), expected);
  EXPECT_TRUE(peer.nothing_more(20ms));
}

TEST_P(ChannelFramingTest, EmptyMessageIsAZeroLengthHeader) {
  RawPeer peer = make_raw_peer(GetParam(), dir_);
  peer.channel->send("");
  EXPECT_EQ(peer.read_exactly(4), frame_header(0));
  peer.write(frame_header(0));
  Received received = peer.channel->receive(kWait);
  ASSERT_EQ(received.status, ReceiveStatus::message);
  EXPECT_EQ(received.message.size(), 0u);
}

TEST_P(ChannelFramingTest, MessageHalfReceivedBeforeATimeoutIsDeliveredWholeLater) {
  RawPeer peer = make_raw_peer(GetParam(), dir_);
  Bytes message = make_message(7, 100);
  peer.write(frame_header(100));
  peer.write(std::span(message).first(50));
  EXPECT_EQ(peer.channel->receive(50ms).status, ReceiveStatus::timed_out);
  EXPECT_EQ(peer.channel->try_receive().status, ReceiveStatus::timed_out);
  peer.write(std::span(message).subspan(50));
  EXPECT_TRUE(IsMessage(receive_message(*peer.channel), 7, 100));
}

TEST_P(ChannelFramingTest, HeaderHalfReceivedBeforeATimeoutIsKept) {
  RawPeer peer = make_raw_peer(GetParam(), dir_);
  Bytes header = frame_header(5);
  peer.write(std::span(header).first(2));
  EXPECT_EQ(peer.channel->receive(30ms).status, ReceiveStatus::timed_out);
  peer.write(std::span(header).subspan(2));
  EXPECT_EQ(peer.channel->receive(30ms).status, ReceiveStatus::timed_out);
  peer.write("hello");
  EXPECT_EQ(text_of(receive_message(*peer.channel)), "hello");
}

TEST_P(ChannelFramingTest, TruncatedFrameFollowedByEndOfFileThrowsProtocolError) {
  RawPeer peer = make_raw_peer(GetParam(), dir_);
  peer.write(frame_header(100));
  peer.write(std::string(10, 'a'));
  peer.close_write();
  try {
    peer.channel->receive(kWait);
    ADD_FAILURE() << "receive did not throw";
  } catch (const ProtocolError& error) {
    EXPECT_NE(std::string(error.what()).find("in the middle of a message"), std::string::npos)
        << error.what();
  }
}

TEST_P(ChannelFramingTest, TruncatedHeaderFollowedByEndOfFileThrowsProtocolError) {
  RawPeer peer = make_raw_peer(GetParam(), dir_);
  Bytes header = frame_header(9);
  peer.write(std::span(header).first(3));
  peer.close_write();
  EXPECT_THROW(peer.channel->receive(kWait), ProtocolError);
}

TEST_P(ChannelFramingTest, HeaderAnnouncingMoreThanMaxThrowsThenReportsClosed) {
  RawPeer peer = make_raw_peer(GetParam(), dir_, "?max=1K");
  peer.write(frame_header(1025));
  peer.write(std::string(64, 'g'));
  try {
    peer.channel->receive(kWait);
    ADD_FAILURE() << "receive did not throw";
  } catch (const MessageTooLarge& error) {
    EXPECT_NE(std::string(error.what()).find("1025"), std::string::npos) << error.what();
    EXPECT_NE(std::string(error.what()).find("1024"), std::string::npos) << error.what();
  }
  peer.write(frame_header(1));
  peer.write("x");
  EXPECT_EQ(peer.channel->receive(50ms).status, ReceiveStatus::closed);
}

TEST_P(ChannelFramingTest, MessageOfExactlyMaxIsAccepted) {
  RawPeer peer = make_raw_peer(GetParam(), dir_, "?max=1K");
  Bytes message = make_message(3, 1024);
  peer.write(frame_header(1024));
  peer.write(message);
  EXPECT_TRUE(IsMessage(receive_message(*peer.channel), 3, 1024));
}

TEST_P(ChannelFramingTest, PeerKilledMidMessageGivesProtocolErrorNotAHang) {
  std::optional<HandMadePair> fifos;
  ChildProcess writer;
  std::optional<Channel> channel;
  std::optional<ChannelListener> listener;
  const std::string kind = GetParam();
  // The child writes a header and part of the payload, then dies.
  auto die_mid_message = [](int fd) {
    write_all(fd, frame_header(1000));
    write_all(fd, Bytes(100, std::byte{'p'}));
    ::raise(SIGKILL);
  };
  if (kind == "pipe") {
    PipePair into = PipePair::create();
    PipePair unused = PipePair::create();
    writer.start([&] { die_mid_message(into.write_end.get()); });
    into.write_end.reset();
    channel.emplace(Channel::connect(pipe_uri(into.read_end, unused.write_end)));
  } else if (kind == "fifo") {
    // The child is a client by hand. It writes only once accept() has
    // returned, so it cannot die before the server has opened both FIFOs.
    listener.emplace(ChannelListener::listen("fifo:" + dir_ / "chan"));
    fifos.emplace(make_pair_fifos(dir_ / "chan.by-hand"));
    PipePair accepted = PipePair::create();
    writer.start([&] {
      accepted.write_end.reset();
      FileDescriptor in = open_fifo_for_reading(fifos->prefix + ".s2c", FifoOpen::nonblocking);
      write_request(dir_ / "chan", fifos->prefix + "\n");
      read_exactly(accepted.read_end.get(), 1);
      die_mid_message(open_for_writing_once_read(fifos->prefix + ".c2s").get());
    });
    accepted.read_end.reset();
    channel = listener->accept(kWait);
    if (channel) write_all(accepted.write_end.get(), bytes_of("a"));
  } else {
    listener.emplace(
        ChannelListener::listen(kind == "unix" ? "unix:" + dir_ / "s.sock" : "tcp://127.0.0.1:0"));
    const std::string uri = listener->uri();
    writer.start([&] { die_mid_message(raw_connect(uri).get()); });
    channel = listener->accept(kWait);
  }
  ASSERT_TRUE(channel);
  int status = writer.wait();
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << describe_status(status);
  EXPECT_THROW(channel->receive(kWait), ProtocolError);
}

INSTANTIATE_TEST_SUITE_P(, ChannelFramingTest, ::testing::Values("pipe", "fifo", "unix", "tcp"),
                         [](const auto& info) { return info.param; });

// ---- Raw mode -----------------------------------------------------------------------

class ChannelRawTest : public ChannelFramingTest {};

TEST_P(ChannelRawTest, SentBytesPassUntouchedWithoutAPrefix) {
  RawPeer peer = make_raw_peer(GetParam(), dir_, "?raw");
  peer.channel->send("hello, raw world");
  EXPECT_EQ(text_of(peer.read_exactly(16)), "hello, raw world");
  EXPECT_TRUE(peer.nothing_more(20ms));
}

TEST_P(ChannelRawTest, ReceiveReturnsTheBytesThatArrived) {
  RawPeer peer = make_raw_peer(GetParam(), dir_, "?raw");
  peer.write("abc");
  EXPECT_EQ(text_of(receive_message(*peer.channel)), "abc");
  // A would-be frame header is just bytes here.
  Bytes header = frame_header(1 << 30);
  peer.write(header);
  EXPECT_EQ(receive_message(*peer.channel), header);
}

TEST_P(ChannelRawTest, ReceiveHandsOutAtMostMaxBytesAtATime) {
  RawPeer peer = make_raw_peer(GetParam(), dir_, "?raw&max=4");
  peer.write("abcdefghij");
  std::string got;
  for (int i = 0; i < 10 && got.size() < 10; ++i) {
    Bytes piece = receive_message(*peer.channel);
    EXPECT_LE(piece.size(), 4u);
    got += text_of(piece);
  }
  EXPECT_EQ(got, "abcdefghij");
}

TEST_P(ChannelRawTest, EmptySendWritesNothing) {
  RawPeer peer = make_raw_peer(GetParam(), dir_, "?raw");
  peer.channel->send("");
  EXPECT_TRUE(peer.nothing_more(20ms));
}

TEST_P(ChannelRawTest, PeerClosingReportsClosed) {
  RawPeer peer = make_raw_peer(GetParam(), dir_, "?raw");
  peer.write("tail");
  peer.close_write();
  EXPECT_EQ(text_of(receive_message(*peer.channel)), "tail");
  EXPECT_EQ(peer.channel->receive(kWait).status, ReceiveStatus::closed);
}

INSTANTIATE_TEST_SUITE_P(, ChannelRawTest, ::testing::Values("pipe", "fifo", "unix", "tcp"),
                         [](const auto& info) { return info.param; });

// ---- A threaded server and misbehaving clients ----------------------------------------

TEST(ChannelServerTest, KeepsServingAGoodClientWhileBadClientsMisbehave) {
  TempDir dir;
  ChannelListener listener = ChannelListener::listen("unix:" + dir / "server.sock?max=64K");
  const std::string uri = listener.uri();
  // Bad client 1 announces a message far above max, then sends garbage.
  FileDescriptor oversized = raw_connect(uri);
  write_all(oversized.get(), frame_header(0x7fffffff));
  write_all(oversized.get(), Bytes(512, std::byte{0xAB}));
  // Bad client 2 sends half a message and stalls.
  FileDescriptor stalled = raw_connect(uri);
  write_all(stalled.get(), frame_header(1000));
  write_all(stalled.get(), Bytes(10, std::byte{'s'}));
  ChildProcess good([&] {
    Channel channel = Channel::connect(uri);
    for (std::size_t i = 0; i < 300; ++i) {
      channel.send(make_message(i, size_for(i) * 50));
      ASSERT_TRUE(IsMessage(receive_message(channel), i, size_for(i) * 50));
    }
  });
  EchoLoop server(listener, /*thread_per_peer=*/true);
  EXPECT_CHILD_SUCCEEDS(good);
  EXPECT_TRUE(eventually([&] { return server.errors() >= 1; }));
  // The server dropped the oversized client: it sees end of file or a reset.
  EXPECT_TRUE(closed_by_peer(oversized.get())) << "the oversized client was not disconnected";
  stalled.reset();
  EXPECT_TRUE(eventually([&] { return server.errors() >= 2; }))
      << "the stalled client's truncated message was not reported";
  server.stop();
  std::string errors = server.error_text();
  EXPECT_NE(errors.find("2147483647"), std::string::npos) << errors;
  EXPECT_NE(errors.find("in the middle of a message"), std::string::npos) << errors;
}

// ---- Connection errors -----------------------------------------------------------------

class ChannelConnectErrorTest : public ::testing::TestWithParam<std::string> {
 protected:
  TempDir dir_;
};

TEST_P(ChannelConnectErrorTest, MissingSocketPathThrowsSystemErrorNamingCallUriAndCause) {
  const std::string uri = GetParam() + ":" + dir_ / "missing.sock";
  try {
    Channel::connect(uri);
    ADD_FAILURE() << "connect to a missing path succeeded";
  } catch (const SystemError& error) {
    std::string what = error.what();
    EXPECT_EQ(error.code(), ENOENT) << what;
    EXPECT_NE(what.find("connect("), std::string::npos) << what;
    EXPECT_NE(what.find(uri), std::string::npos) << what;
    EXPECT_NE(what.find(std::strerror(ENOENT)), std::string::npos) << what;
  }
}

INSTANTIATE_TEST_SUITE_P(, ChannelConnectErrorTest,
                         ::testing::Values("unix", "unix+seqpacket", "unix+dgram"),
                         [](const auto& info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), '+', '_');
                           return name;
                         });

TEST(ChannelConnectTest, TcpWithNobodyListeningThrowsConnectionRefused) {
  std::string uri;
  {
    ChannelListener probe = ChannelListener::listen("tcp://127.0.0.1:0");
    uri = probe.uri();
  }
  try {
    Channel::connect(uri);
    ADD_FAILURE() << "connect to a closed port succeeded";
  } catch (const SystemError& error) {
    std::string what = error.what();
    EXPECT_EQ(error.code(), ECONNREFUSED) << what;
    EXPECT_NE(what.find("connect(" + uri + ")"), std::string::npos) << what;
    EXPECT_NE(what.find(std::strerror(ECONNREFUSED)), std::string::npos) << what;
  }
}

TEST(ChannelConnectTest, UnknownSchemeThrowsInvalidUri) {
  EXPECT_THROW(Channel::connect("carrier-pigeon:/coop"), InvalidUri);
  EXPECT_THROW(ChannelListener::listen("carrier-pigeon:/coop"), InvalidUri);
}

// ---- unix+dgram and unix+seqpacket ------------------------------------------------------

class ChannelDatagramServerTest : public ::testing::Test {
 protected:
  std::string uri() const { return "unix+dgram:" + dir_ / "dgram.sock"; }
  TempDir dir_;
};

TEST_F(ChannelDatagramServerTest, RepliesGoToTheSenderOfTheLastMessage) {
  ChannelListener listener = ChannelListener::listen(uri());
  constexpr int kPerClient = 100;
  auto client_body = [&](char tag) {
    Channel channel = Channel::connect(listener.uri());
    for (int i = 0; i < kPerClient; ++i) {
      std::string message = std::string(1, tag) + ":" + std::to_string(i);
      channel.send(message);
      ASSERT_EQ(text_of(receive_message(channel)), message);
    }
  };
  ChildProcess a([&] { client_body('a'); });
  ChildProcess b([&] { client_body('b'); });
  std::optional<Channel> server = listener.accept(kWait);
  ASSERT_TRUE(server);
  for (int i = 0; i < 2 * kPerClient; ++i) server->send(receive_message(*server));
  EXPECT_CHILD_SUCCEEDS(a);
  EXPECT_CHILD_SUCCEEDS(b);
}

TEST_F(ChannelDatagramServerTest, PeerCredentialsNameTheLastSender) {
  ChannelListener listener = ChannelListener::listen(uri());
  const std::string target = listener.uri();
  auto client_body = [&] {
    Channel channel = Channel::connect(target);
    for (int i = 0; i < 20; ++i) {
      channel.send(std::to_string(::getpid()));
      receive_message(channel);
    }
  };
  ChildProcess a(client_body);
  ChildProcess b(client_body);
  std::optional<Channel> server = listener.accept(kWait);
  ASSERT_TRUE(server);
  std::set<pid_t> senders;
  for (int i = 0; i < 40; ++i) {
    Bytes message = receive_message(*server);
    std::optional<PeerCredentials> credentials = server->peer_credentials();
    ASSERT_TRUE(credentials);
    EXPECT_EQ(std::to_string(credentials->pid), text_of(message));
    EXPECT_EQ(credentials->uid, ::getuid());
    senders.insert(credentials->pid);
    server->send("ok");
  }
  EXPECT_EQ(senders, (std::set<pid_t>{a.pid(), b.pid()}));
  EXPECT_CHILD_SUCCEEDS(a);
  EXPECT_CHILD_SUCCEEDS(b);
}

TEST_F(ChannelDatagramServerTest, SendBeforeAnyMessageThrows) {
  ChannelListener listener = ChannelListener::listen(uri());
  std::optional<Channel> server = listener.accept(kWait);
  ASSERT_TRUE(server);
  EXPECT_THROW(server->send("to nobody"), Error);
}

TEST_F(ChannelDatagramServerTest, ListenerHasASingleSharedChannel) {
  ChannelListener listener = ChannelListener::listen(uri());
  EXPECT_EQ(listener.peer_model(), PeerModel::single);
  EXPECT_TRUE(listener.accept(kWait));
  EXPECT_THROW(listener.accept(kWait), Error);
}

class ChannelKernelFramedTest : public ChannelSchemeTest {};

TEST_P(ChannelKernelFramedTest, OversizedMessageIsDiscardedAndTheChannelContinues) {
  ChannelListener listener = ChannelListener::listen(GetParam().listen_uri(dir_) + "?max=1K");
  Uri client_uri = Uri::parse(listener.uri());
  client_uri.options["max"] = "4K";
  std::optional<Channel> client;
  std::thread connector([&] { client.emplace(Channel::connect(client_uri.str())); });
  std::optional<Channel> server = listener.accept(kWait);
  connector.join();
  ASSERT_TRUE(server && client);
  EXPECT_EQ(server->max_message_size(), 1024u);
  client->send(Bytes(2000, std::byte{'o'}));
  client->send("next");
  try {
    server->receive(kWait);
    ADD_FAILURE() << "a 2000-byte message was accepted with max=1K";
  } catch (const MessageTooLarge& error) {
    EXPECT_NE(std::string(error.what()).find("2000"), std::string::npos) << error.what();
  }
  EXPECT_EQ(text_of(receive_message(*server)), "next");
}

INSTANTIATE_TEST_SUITE_P(, ChannelKernelFramedTest, ::testing::Values(kSeqpacket, kDgram),
                         SchemeName);

TEST(ChannelSeqpacketTest, EmptyMessageIsAMessageDistinctFromClose) {
  TempDir dir;
  LocalPair pair = make_local_pair(kSeqpacket, dir);
  pair.client->send("");
  pair.server->send("");
  Received received = pair.server->receive(kWait);
  EXPECT_EQ(received.status, ReceiveStatus::message);
  EXPECT_EQ(received.message.size(), 0u);
  received = pair.client->receive(kWait);
  EXPECT_EQ(received.status, ReceiveStatus::message);
  EXPECT_EQ(received.message.size(), 0u);
  pair.client->send("");
  pair.client.reset();
  received = pair.server->receive(kWait);
  EXPECT_EQ(received.status, ReceiveStatus::message) << "the empty message before close was lost";
  EXPECT_EQ(pair.server->receive(kWait).status, ReceiveStatus::closed);
}

// ---- Peer credentials ----------------------------------------------------------------

class ChannelCredentialsTest : public ChannelSchemeTest {};

TEST_P(ChannelCredentialsTest, AcceptedChannelNamesTheClientProcess) {
  ChannelListener listener = ChannelListener::listen(GetParam().listen_uri(dir_));
  const std::string uri = listener.uri();
  ChildProcess client([&] {
    Channel channel = Channel::connect(uri);
    EXPECT_EQ(text_of(receive_message(channel)), "bye");
  });
  std::optional<Channel> server = listener.accept(kWait);
  ASSERT_TRUE(server);
  std::optional<PeerCredentials> credentials = server->peer_credentials();
  ASSERT_TRUE(credentials);
  EXPECT_EQ(credentials->pid, client.pid());
  EXPECT_EQ(credentials->uid, ::getuid());
  EXPECT_EQ(credentials->gid, ::getgid());
  server->send("bye");
  EXPECT_CHILD_SUCCEEDS(client);
}

TEST_P(ChannelCredentialsTest, ConnectedChannelNamesTheServerProcess) {
  ChannelListener listener = ChannelListener::listen(GetParam().listen_uri(dir_));
  const std::string uri = listener.uri();
  const pid_t server_pid = ::getpid();
  ChildProcess client([&] {
    Channel channel = Channel::connect(uri);
    std::optional<PeerCredentials> credentials = channel.peer_credentials();
    ASSERT_TRUE(credentials);
    EXPECT_EQ(credentials->pid, server_pid);
    EXPECT_EQ(credentials->uid, ::getuid());
  });
  std::optional<Channel> server = listener.accept(kWait);
  ASSERT_TRUE(server);
  EXPECT_CHILD_SUCCEEDS(client);
}

INSTANTIATE_TEST_SUITE_P(, ChannelCredentialsTest,
                         ::testing::Values(kUnixPath, kUnixAbstract, kSeqpacket), SchemeName);

class ChannelNoCredentialsTest : public ChannelSchemeTest {};

TEST_P(ChannelNoCredentialsTest, NonUnixChannelsHaveNoPeerCredentials) {
  LocalPair pair = make_local_pair(GetParam(), dir_);
  EXPECT_FALSE(pair.server->peer_credentials());
  EXPECT_FALSE(pair.client->peer_credentials());
}

INSTANTIATE_TEST_SUITE_P(, ChannelNoCredentialsTest, ::testing::Values(kPipe, kFifo, kTcp4),
                         SchemeName);

// ---- FIFO rendezvous ------------------------------------------------------------------

class ChannelFifoTest : public ::testing::Test {
 protected:
  std::string path() const { return dir_ / "chan"; }
  std::string uri() const { return "fifo:" + path(); }
  // The names of the FIFOs of pid's clients in the directory:
  // "chan.PID.N.c2s" and "chan.PID.N.s2c", sorted.
  std::vector<std::string> pair_of(pid_t pid) const {
    std::vector<std::string> pair;
    const std::string start = "chan." + std::to_string(pid) + ".";
    for (const std::string& name : names_in(dir_.path())) {
      if (name.rfind(start, 0) != 0) continue;
      std::string rest = name.substr(start.size());  // "N.c2s"
      auto dot = rest.find('.');
      if (dot == 0 || dot == std::string::npos ||
          !std::all_of(rest.begin(), rest.begin() + static_cast<std::ptrdiff_t>(dot),
                       [](char c) { return c >= '0' && c <= '9'; }))
        continue;
      pair.push_back(name);
    }
    return pair;
  }
  // Expects exactly one client pair of pid in the directory, of FIFOs with
  // `mode`, and nothing else but the server's FIFO.
  void expect_one_pair(pid_t pid, int mode) const {
    std::vector<std::string> pair = pair_of(pid);
    ASSERT_EQ(pair.size(), 2u) << "the client's pair is not chan." << pid << ".N.{c2s,s2c}";
    const std::string prefix = pair[0].substr(0, pair[0].size() - 4);
    EXPECT_EQ(pair, (std::vector<std::string>{prefix + ".c2s", prefix + ".s2c"}));
    for (const std::string& name : pair)
      EXPECT_EQ(fifo_mode(dir_ / name), mode) << name << " (-1: missing or not a FIFO)";
    EXPECT_EQ(names_in(dir_.path()).size(), 3u) << "more than the server's FIFO and one pair";
  }
  TempDir dir_;
};

// umask(mask) for the scope of one test.
class ScopedUmask {
 public:
  explicit ScopedUmask(mode_t mask) : saved_(::umask(mask)) {}
  ~ScopedUmask() { ::umask(saved_); }
  ScopedUmask(const ScopedUmask&) = delete;
  ScopedUmask& operator=(const ScopedUmask&) = delete;

 private:
  mode_t saved_;
};

TEST_F(ChannelFifoTest, ListenerCreatesOnlyTheRequestFifoWithMode0600ByDefault) {
  ChannelListener listener = ChannelListener::listen(uri());
  EXPECT_EQ(names_in(dir_.path()), std::vector<std::string>{"chan"});
  EXPECT_EQ(fifo_mode(path()), 0600) << "-1: missing or not a FIFO";
  EXPECT_EQ(listener.peer_model(), PeerModel::concurrent);
}

TEST_F(ChannelFifoTest, EachClientProcessHasItsOwnPairRemovedWhenItsChannelCloses) {
  ChannelListener listener = ChannelListener::listen(uri());
  const std::string target = listener.uri();
  ChildProcess client([&] {
    std::optional<Channel> channel(Channel::connect(target));
    channel->send("connected");
    EXPECT_EQ(text_of(receive_message(*channel)), "now leave");
    channel.reset();
    // Removed by the client itself, while the server still has its channel.
    EXPECT_TRUE(pair_of(::getpid()).empty());
  });
  std::optional<Channel> server = listener.accept(kWait);
  ASSERT_TRUE(server) << "the client was not accepted";
  EXPECT_EQ(text_of(receive_from(*server, client)), "connected");
  expect_one_pair(client.pid(), 0600);
  server->send("now leave");
  EXPECT_CHILD_SUCCEEDS(client);
  EXPECT_TRUE(pair_of(client.pid()).empty()) << "the client left its pair behind";
  EXPECT_EQ(server->receive(kWait).status, ReceiveStatus::closed);
  EXPECT_EQ(names_in(dir_.path()), std::vector<std::string>{"chan"});
}

TEST_F(ChannelFifoTest, ModeOptionSetsThePermissionsOfEveryFifoWhateverTheUmask) {
  ScopedUmask strict(077);
  // The client connects with the listener's URI, so its pair gets mode=660 too.
  const Scheme kFifo660{"fifo660",
                        [](const TempDir& dir) { return "fifo:" + dir / "chan" + "?mode=660"; }};
  LocalPair pair = make_local_pair(kFifo660, dir_);
  EXPECT_EQ(fifo_mode(path()), 0660);
  expect_one_pair(::getpid(), 0660);
  pair.client.reset();
  EXPECT_TRUE(pair_of(::getpid()).empty()) << "the client left its pair behind";
}

TEST_F(ChannelFifoTest, ListenerRemovesItsFifoOnDestruction) {
  {
    LocalPair pair = make_local_pair(kFifo, dir_);
    pair.client->send("x");
    receive_message(*pair.server);
  }
  std::vector<std::string> left = names_in(dir_.path());
  EXPECT_TRUE(left.empty()) << "left behind: " << (left.empty() ? "" : left.front());
}

TEST_F(ChannelFifoTest, ConcurrentClientProcessesAreServedAtOnceEachWithItsOwnEchoes) {
  ChannelListener listener = ChannelListener::listen(kFifo.listen_uri(dir_));
  const std::string target = listener.uri();
  constexpr std::size_t kClients = 3, kMessages = 200;
  // Each client writes a byte into `served` once its first message came
  // back, then stays until the parent closes `go`: all are connected at once.
  PipePair served = PipePair::create();
  PipePair go = PipePair::create();
  auto client_body = [&](std::size_t id) {
    served.read_end.reset();
    go.write_end.reset();
    Channel channel = Channel::connect(target);
    channel.send("hello from client " + std::to_string(id));
    EXPECT_EQ(text_of(receive_message(channel)), "hello from client " + std::to_string(id));
    write_all(served.write_end.get(), bytes_of("s"));
    served.write_end.reset();
    char end;
    pollfd ready{go.read_end.get(), POLLIN, 0};
    ASSERT_EQ(::poll(&ready, 1, static_cast<int>(kWait.count())), 1) << "no go in time";
    ASSERT_EQ(::read(go.read_end.get(), &end, 1), 0);
    for (std::size_t i = 0; i < kMessages; ++i) {
      std::size_t index = (id + 1) * 100000 + i;
      channel.send(make_message(index, size_for(i)));
      ASSERT_TRUE(IsMessage(receive_message(channel), index, size_for(i)));
    }
  };
  std::vector<std::unique_ptr<ChildProcess>> clients;
  for (std::size_t id = 0; id < kClients; ++id)
    clients.push_back(std::make_unique<ChildProcess>([&, id] { client_body(id); }));
  served.write_end.reset();
  go.read_end.reset();
  EchoLoop server(listener, /*thread_per_peer=*/true);  // after fork: no threads in children
  std::string all_served;
  try {
    all_served = text_of(read_exactly(served.read_end.get(), kClients));
  } catch (const std::exception& error) {
    ADD_FAILURE() << "the clients were not all served at once: " << error.what();
  }
  go.write_end.reset();
  for (auto& client : clients) EXPECT_CHILD_SUCCEEDS(*client);
  server.stop();
  EXPECT_EQ(server.errors(), 0) << server.error_text();
  EXPECT_EQ(all_served, std::string(kClients, 's'));
}

TEST_F(ChannelFifoTest, ClientNotAcceptedWithinConnectTimeoutFailsClearlyAndIsSkippedLater) {
  LocalPair pair = make_local_pair(kFifo, dir_);
  const std::string target = pair.listener->uri();
  ChannelOptions impatient;
  impatient.connect_timeout = 200ms;
  auto start = Clock::now();
  try {
    Channel::connect(target, impatient);
    ADD_FAILURE() << "connected although the server never accepted";
  } catch (const SystemError& error) {
    std::string what = error.what();
    EXPECT_EQ(error.code(), ETIMEDOUT) << what;
    EXPECT_NE(what.find("connect(" + target + ")"), std::string::npos) << what;
    EXPECT_NE(what.find("did not accept"), std::string::npos) << what;
  }
  auto elapsed = Clock::now() - start;
  EXPECT_GE(elapsed, 150ms);
  EXPECT_LT(elapsed, 5s);
  // The client that gave up removed its pair; the first client's remains.
  expect_one_pair(::getpid(), 0600);
  // The first client's conversation is unaffected.
  pair.client->send("still mine");
  EXPECT_EQ(text_of(receive_message(*pair.server)), "still mine");
  pair.server->send("yours");
  EXPECT_EQ(text_of(receive_message(*pair.client)), "yours");
  // The next accept() passes over the request of the client that gave up.
  auto [server, client] = connect_and_accept(*pair.listener, target);
  client.send("the third client");
  EXPECT_EQ(text_of(receive_message(server)), "the third client");
  server.send("welcome");
  EXPECT_EQ(text_of(receive_message(client)), "welcome");
}

TEST_F(ChannelFifoTest, SecondConcurrentClientWaitsUntilTheFirstLeaves) {
  // A server that serves one client at a time: the second client waits in
  // connect() (up to connect_timeout) until the server accepts it.
  ChannelListener listener = ChannelListener::listen(kFifo.listen_uri(dir_));
  const std::string target = listener.uri();
  EchoLoop server(listener, /*thread_per_peer=*/false);
  std::optional<Channel> first(Channel::connect(target));
  first->send("first");
  EXPECT_EQ(text_of(receive_message(*first)), "first");
  std::atomic<bool> second_connected{false};
  std::exception_ptr second_failure;
  std::optional<Channel> second;
  std::thread connector([&] {
    try {
      second.emplace(Channel::connect(target));
    } catch (...) {
      second_failure = std::current_exception();
    }
    second_connected = true;
  });
  std::this_thread::sleep_for(200ms);
  EXPECT_FALSE(second_connected) << "the second client connected while the first was served";
  for (std::size_t i = 0; i < 50; ++i) {
    first->send(make_message(i, size_for(i)));
    EXPECT_TRUE(IsMessage(receive_message(*first), i, size_for(i)));
  }
  first.reset();
  connector.join();
  if (second_failure) std::rethrow_exception(second_failure);
  ASSERT_TRUE(second);
  for (std::size_t i = 100; i < 150; ++i) {
    second->send(make_message(i, size_for(i)));
    EXPECT_TRUE(IsMessage(receive_message(*second), i, size_for(i)));
  }
}

TEST_F(ChannelFifoTest, ChannelOfALeavingClientEndsEvenWhenTheNextClientIsQuick) {
  LocalPair pair = make_local_pair(kFifo, dir_);
  const std::string target = pair.listener->uri();
  std::exception_ptr second_failure;
  std::jthread second([&] {
    try {
      Channel channel = Channel::connect(target);  // waits until the server accepts it
      channel.send("from the second client");
      std::this_thread::sleep_for(300ms);  // stay connected while the server looks
    } catch (...) {
      second_failure = std::current_exception();
    }
  });
  pair.client->send("goodbye from the first client");
  EXPECT_EQ(text_of(receive_message(*pair.server)), "goodbye from the first client");
  pair.client.reset();
  std::this_thread::sleep_for(100ms);  // the server is busy for a moment
  // The first client left at a message boundary: its channel is closed. The
  // second client's messages belong to the next accept().
  Received received = pair.server->receive(kWait);
  EXPECT_EQ(received.status, ReceiveStatus::closed)
      << "the first client's channel delivered: "
      << (received ? "'" + text_of(received.message) + "'" : "a time-out");
  if (received.status == ReceiveStatus::closed) {
    std::optional<Channel> next = pair.listener->accept(kWait);
    ASSERT_TRUE(next) << "the second client was not accepted";
    EXPECT_EQ(text_of(receive_message(*next)), "from the second client");
  }
  second.join();
  if (second_failure) std::rethrow_exception(second_failure);
}

TEST_F(ChannelFifoTest, ConcurrentClientProcessesAreServedOneAtATime) {
  // A server may still take its FIFO clients one at a time: the others wait
  // in connect() until it accepts them.
  ChannelListener listener = ChannelListener::listen(kFifo.listen_uri(dir_));
  const std::string target = listener.uri();
  constexpr std::size_t kClients = 3, kMessages = 100;
  auto client_body = [&](std::size_t id) {
    Channel channel = Channel::connect(target);
    for (std::size_t i = 0; i < kMessages; ++i) {
      std::size_t index = id * 1000 + i;
      channel.send(make_message(index, size_for(i)));
      ASSERT_TRUE(IsMessage(receive_message(channel), index, size_for(i)));
    }
  };
  std::vector<std::unique_ptr<ChildProcess>> clients;
  for (std::size_t id = 0; id < kClients; ++id)
    clients.push_back(std::make_unique<ChildProcess>([&, id] { client_body(id); }));
  std::size_t echoed = 0;
  auto deadline = Clock::now() + kWait;
  while (echoed < kClients * kMessages && Clock::now() < deadline) {
    std::optional<Channel> channel = listener.accept(100ms);
    if (!channel) continue;
    for (;;) {
      Received received = channel->receive(kWait);
      ASSERT_NE(received.status, ReceiveStatus::timed_out);
      if (received.status == ReceiveStatus::closed) break;
      channel->send(received.message);
      ++echoed;
    }
  }
  EXPECT_EQ(echoed, kClients * kMessages);
  for (auto& client : clients) EXPECT_CHILD_SUCCEEDS(*client);
}

TEST_F(ChannelFifoTest, SequentialClientsAreServedOneAfterAnother) {
  ChannelListener listener = ChannelListener::listen(kFifo.listen_uri(dir_));
  const std::string target = listener.uri();
  for (std::size_t id = 0; id < 4; ++id) {
    ChildProcess client([&] {
      Channel channel = Channel::connect(target);
      channel.send("client " + std::to_string(id));
      EXPECT_EQ(text_of(receive_message(channel)), "hello client " + std::to_string(id));
    });
    std::optional<Channel> server = listener.accept(kWait);
    ASSERT_TRUE(server) << "client " << id << " was not accepted";
    std::string greeting = text_of(receive_message(*server));
    EXPECT_EQ(greeting, "client " + std::to_string(id));
    server->send("hello " + greeting);
    EXPECT_EQ(server->receive(kWait).status, ReceiveStatus::closed);
    EXPECT_CHILD_SUCCEEDS(client);
  }
}

TEST_F(ChannelFifoTest, StaleFifoOfAKilledServerIsReplacedButALiveServersIsRefused) {
  PipePair ready = PipePair::create();
  const std::string target = uri();
  ChildProcess old_server([&] {
    ready.read_end.reset();
    ChannelListener listener = ChannelListener::listen(target);
    write_all(ready.write_end.get(), bytes_of("r"));
    std::this_thread::sleep_for(3 * kWait);  // until killed
  });
  ready.write_end.reset();
  ASSERT_EQ(text_of(read_exactly(ready.read_end.get(), 1)), "r");
  // While the other process serves, its FIFO is refused and left alone.
  try {
    ChannelListener second = ChannelListener::listen(target);
    ADD_FAILURE() << "a second server took over the FIFO of a live server in another process";
  } catch (const SystemError& error) {
    EXPECT_EQ(error.code(), EADDRINUSE) << error.what();
    EXPECT_NE(std::string(error.what()).find(target), std::string::npos) << error.what();
  }
  EXPECT_EQ(fifo_mode(path()), 0600) << "the refused listen() touched the live server's FIFO";
  int status = old_server.kill_and_wait();
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << describe_status(status);
  ASSERT_EQ(fifo_mode(path()), 0600) << "the killed server's FIFO is not there to be stale";
  // Nobody reads the stale FIFO: a client fails at once.
  try {
    Channel::connect(target);
    ADD_FAILURE() << "connected to the FIFO of a dead server";
  } catch (const SystemError& error) {
    EXPECT_EQ(error.code(), ENXIO) << error.what();
  }
  LocalPair pair = make_local_pair(kFifo, dir_);
  pair.client->send("fresh");
  EXPECT_EQ(text_of(receive_message(*pair.server)), "fresh");
  pair.server->send("and answered");
  EXPECT_EQ(text_of(receive_message(*pair.client)), "and answered");
}

TEST_F(ChannelFifoTest, ListenRefusesTheFifosOfAServerServingAClient) {
  LocalPair pair = make_local_pair(kFifo, dir_);
  EXPECT_THROW(ChannelListener::listen(pair.listener->uri()), SystemError);
  pair.client->send("undisturbed");
  EXPECT_EQ(text_of(receive_message(*pair.server)), "undisturbed");
}

TEST_F(ChannelFifoTest, ListenRefusesTheFifosOfALiveIdleServer) {
  ChannelListener first = ChannelListener::listen(uri());
  try {
    ChannelListener second = ChannelListener::listen(uri());
    ADD_FAILURE() << "a second server took over the FIFOs of a live server waiting for clients";
  } catch (const SystemError& error) {
    EXPECT_EQ(error.code(), EADDRINUSE) << error.what();
  }
}

TEST_F(ChannelFifoTest, ConnectWithoutAServerFailsAtOnceWithAClearError) {
  ChannelOptions patient;
  patient.connect_timeout = 5s;  // connect() must not spend it
  auto expect_prompt_failure = [&](int code, const std::string& cause) {
    auto start = Clock::now();
    try {
      Channel::connect(uri(), patient);
      ADD_FAILURE() << "connected without a server";
    } catch (const SystemError& error) {
      std::string what = error.what();
      EXPECT_EQ(error.code(), code) << what;
      EXPECT_NE(what.find("connect(" + uri() + ")"), std::string::npos) << what;
      EXPECT_NE(what.find(cause), std::string::npos) << what;
      EXPECT_NE(what.find("is the server running?"), std::string::npos) << what;
    }
    EXPECT_LT(Clock::now() - start, 1s) << "connect() waited for a server that is not there";
  };
  // No FIFO at all.
  expect_prompt_failure(ENOENT, "no such FIFO");
  EXPECT_TRUE(names_in(dir_.path()).empty()) << "connect() left files behind";
  // A FIFO that no server has open (as a killed server leaves it).
  ASSERT_EQ(::mkfifo(path().c_str(), 0600), 0);
  expect_prompt_failure(ENXIO, "no server has this FIFO open");
  EXPECT_EQ(names_in(dir_.path()), std::vector<std::string>{"chan"}) << "connect() left files";
}

TEST_F(ChannelFifoTest, MalformedAndHostileRequestsAreIgnoredAndTheServerKeepsServing) {
  ChannelListener listener = ChannelListener::listen(uri());
  // Working pairs the server must not open, because of their names: one
  // outside the directory, one under a name with a slash after the prefix.
  // We hold their reply ends, as a client would.
  TempDir elsewhere;
  HandMadePair outside = make_pair_fifos(elsewhere / "p");
  ASSERT_EQ(::mkdir((path() + ".sub").c_str(), 0700), 0);
  HandMadePair nested = make_pair_fifos(path() + ".sub/p");
  FileDescriptor outside_reply =
      open_fifo_for_reading(outside.prefix + ".s2c", FifoOpen::nonblocking);
  FileDescriptor nested_reply =
      open_fifo_for_reading(nested.prefix + ".s2c", FifoOpen::nonblocking);
  // Regular files named as a pair (both, or the reply end only), whose
  // contents must survive.
  auto write_file = [](const std::string& file, const std::string& text) {
    std::FILE* f = std::fopen(file.c_str(), "w");
    ASSERT_TRUE(f) << file;
    std::fputs(text.c_str(), f);
    std::fclose(f);
  };
  auto read_file = [](const std::string& file) {
    std::string text(64, '\0');
    std::FILE* f = std::fopen(file.c_str(), "r");
    if (!f) return std::string("(missing)");
    text.resize(std::fread(text.data(), 1, text.size(), f));
    std::fclose(f);
    return text;
  };
  write_file(path() + ".files.c2s", "not a FIFO 1");
  write_file(path() + ".files.s2c", "not a FIFO 2");
  Fifo half_c2s = Fifo::create(path() + ".half.c2s");
  write_file(path() + ".half.s2c", "not a FIFO 3");

  const std::vector<std::string> requests = {
      outside.prefix,              // a pair outside the directory
      "../x",                      // relative paths
      "chan.x",                    // (the server's own name, relative)
      path() + ".sub/p",           // a slash after the prefix
      path() + "./../chan.sub/p",  // climbing out and back
      path() + ".",                // a prefix without a name
      path(),                      // the server's own FIFO
      "",                          // an empty line
      path() + ".files",           // regular files named as the pair
      path() + ".half",            // a FIFO, and a regular file as the reply end
      path() + ".missing",         // a pair that does not exist
      std::string(3000, 'x'),      // a long line of garbage
  };
  for (const std::string& request : requests) write_request(path(), request + "\n");
  EXPECT_FALSE(listener.accept(200ms)) << "accept() made a channel out of a bad request";

  // A good client is served next.
  auto [server, client] = connect_and_accept(listener, listener.uri());
  client.send("a good client");
  EXPECT_EQ(text_of(receive_message(server)), "a good client");
  server.send("served");
  EXPECT_EQ(text_of(receive_message(client)), "served");

  // Nothing named by a bad request was opened or changed.
  EXPECT_FALSE(a_writer_came_and_went(outside_reply.get()))
      << "the server opened " << outside.prefix;
  EXPECT_FALSE(a_writer_came_and_went(nested_reply.get())) << "the server opened " << nested.prefix;
  for (const HandMadePair* pair : {&outside, &nested}) {
    try {
      open_fifo_for_writing(pair->prefix + ".c2s", FifoOpen::nonblocking);
      ADD_FAILURE() << "someone still reads " << pair->prefix << ".c2s";
    } catch (const SystemError& error) {
      EXPECT_EQ(error.code(), ENXIO) << error.what();
    }
  }
  EXPECT_EQ(read_file(path() + ".files.c2s"), "not a FIFO 1");
  EXPECT_EQ(read_file(path() + ".files.s2c"), "not a FIFO 2");
  EXPECT_EQ(read_file(path() + ".half.s2c"), "not a FIFO 3");
  EXPECT_FALSE(listener.accept(50ms)) << "a channel for a bad request turned up late";
}

TEST_F(ChannelFifoTest, GarbageWithoutANewlineDoesNotCostTheNextClientItsConnection) {
  // The server splits what arrives on its FIFO at newlines. Bytes without a
  // newline must not swallow the request line of the next client.
  ChannelListener listener = ChannelListener::listen(uri());
  write_request(path(), "garbage without a newline");
  EXPECT_FALSE(listener.accept(50ms));
  ChannelOptions options;
  options.connect_timeout = 2s;
  auto [server, client] = connect_and_accept(listener, listener.uri(), options);
  client.send("a good client");
  EXPECT_EQ(text_of(receive_message(server)), "a good client");
  server.send("served");
  EXPECT_EQ(text_of(receive_message(client)), "served");
}

// ---- Cleanup --------------------------------------------------------------------------

class ChannelCleanupTest : public ChannelSchemeTest {};

TEST_P(ChannelCleanupTest, ListenerRemovesItsSocketFileOnDestruction) {
  std::string file = Uri::parse(GetParam().listen_uri(dir_)).path;
  {
    LocalPair pair = make_local_pair(GetParam(), dir_);
    struct stat st {};
    ASSERT_EQ(::lstat(file.c_str(), &st), 0) << file;
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0600u) << "socket files are created with mode 600 by default";
    pair.client->send("x");
    receive_message(*pair.server);
  }
  EXPECT_FALSE(std::filesystem::exists(file));
}

TEST_P(ChannelCleanupTest, ModeOptionSetsTheSocketFilePermissions) {
  std::string uri = GetParam().listen_uri(dir_);
  uri += uri.find('?') == std::string::npos ? "?mode=660" : "&mode=660";
  ChannelListener listener = ChannelListener::listen(uri);
  struct stat st {};
  ASSERT_EQ(::lstat(Uri::parse(uri).path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u);
}

INSTANTIATE_TEST_SUITE_P(, ChannelCleanupTest, ::testing::Values(kUnixPath, kSeqpacket, kDgram),
                         SchemeName);

TEST(ChannelListenerTest, ReportsThePeerModelOfEachScheme) {
  TempDir dir;
  EXPECT_EQ(ChannelListener::listen("unix:" + dir / "a").peer_model(), PeerModel::concurrent);
  EXPECT_EQ(ChannelListener::listen("unix+seqpacket:" + dir / "b").peer_model(),
            PeerModel::concurrent);
  EXPECT_EQ(ChannelListener::listen("tcp://127.0.0.1:0").peer_model(), PeerModel::concurrent);
  EXPECT_EQ(ChannelListener::listen("fifo:" + dir / "c").peer_model(), PeerModel::concurrent);
  EXPECT_EQ(ChannelListener::listen("unix+dgram:" + dir / "d").peer_model(), PeerModel::single);
}

TEST(ChannelListenerTest, TcpListenerUriCarriesTheRealPort) {
  ChannelListener listener = ChannelListener::listen("tcp://127.0.0.1:0?max=1M");
  Uri uri = Uri::parse(listener.uri());
  EXPECT_NE(uri.port, 0);
  EXPECT_EQ(uri.host, "127.0.0.1");
  EXPECT_EQ(uri.options.at("max"), "1M");
}

// ---- Cancellation ------------------------------------------------------------------------

class ChannelCancelTest : public ChannelSchemeTest {};

TEST_P(ChannelCancelTest, BlockedReceiveThrowsCancelledPromptly) {
  Cancellation cancellation;
  ChannelOptions options;
  options.cancellation = &cancellation;
  LocalPair pair = make_local_pair(GetParam(), dir_, options);
  std::promise<std::string> outcome;
  std::future<std::string> result = outcome.get_future();
  std::thread receiver([&] {
    try {
      Received received = pair.server->receive();
      outcome.set_value(received ? "a message" : "a status without a message");
    } catch (const Cancelled&) {
      outcome.set_value("Cancelled");
    } catch (const std::exception& error) {
      outcome.set_value(std::string("another exception: ") + error.what());
    }
  });
  std::this_thread::sleep_for(50ms);
  cancellation.cancel();
  bool returned = result.wait_for(5s) == std::future_status::ready;
  if (!returned) pair.client->send("unblock");  // so the thread can be joined
  receiver.join();
  ASSERT_TRUE(returned) << "receive did not return within 5 s of cancel()";
  EXPECT_EQ(result.get(), "Cancelled");
  EXPECT_TRUE(cancellation.cancelled());
}

INSTANTIATE_TEST_SUITE_P(, ChannelCancelTest,
                         ::testing::Values(kPipe, kFifo, kUnixPath, kSeqpacket, kDgram, kTcp4),
                         SchemeName);

class ChannelCancelAcceptTest : public ChannelSchemeTest {};

TEST_P(ChannelCancelAcceptTest, BlockedAcceptThrowsCancelledPromptly) {
  Cancellation cancellation;
  ChannelOptions options;
  options.cancellation = &cancellation;
  ChannelListener listener = ChannelListener::listen(GetParam().listen_uri(dir_), options);
  std::promise<std::string> outcome;
  std::future<std::string> result = outcome.get_future();
  std::thread acceptor([&] {
    try {
      std::optional<Channel> channel = listener.accept();
      outcome.set_value(channel ? "a channel" : "nullopt");
    } catch (const Cancelled&) {
      outcome.set_value("Cancelled");
    } catch (const std::exception& error) {
      outcome.set_value(std::string("another exception: ") + error.what());
    }
  });
  std::this_thread::sleep_for(50ms);
  cancellation.cancel();
  bool returned = result.wait_for(5s) == std::future_status::ready;
  if (!returned) Channel::connect(listener.uri());  // so the thread can be joined
  acceptor.join();
  ASSERT_TRUE(returned) << "accept did not return within 5 s of cancel()";
  EXPECT_EQ(result.get(), "Cancelled");
}

TEST_P(ChannelCancelAcceptTest, AcceptWithTimeoutAndNoClientReturnsNullopt) {
  ChannelListener listener = ChannelListener::listen(GetParam().listen_uri(dir_));
  auto start = Clock::now();
  EXPECT_FALSE(listener.accept(50ms));
  EXPECT_GE(Clock::now() - start, 40ms);
}

INSTANTIATE_TEST_SUITE_P(, ChannelCancelAcceptTest,
                         ::testing::Values(kFifo, kUnixPath, kSeqpacket, kTcp4), SchemeName);

// ---- System-call hygiene through the sys:: seam -----------------------------------------

// Shared with the replacement calls below; reset by the fixtures.
std::atomic<int> g_calls{0};
std::atomic<int> g_injected{0};

// Every other call fails with EINTR before doing anything.
bool interrupt_this_call() {
  if (g_calls++ % 2 != 0) return false;
  ++g_injected;
  errno = EINTR;
  return true;
}
ssize_t eintr_read(int fd, void* buffer, size_t size) {
  return interrupt_this_call() ? -1 : sys::real_calls().read(fd, buffer, size);
}
ssize_t eintr_writev(int fd, const iovec* iov, int count) {
  return interrupt_this_call() ? -1 : sys::real_calls().writev(fd, iov, count);
}
ssize_t eintr_sendmsg(int fd, const msghdr* message, int flags) {
  return interrupt_this_call() ? -1 : sys::real_calls().sendmsg(fd, message, flags);
}
ssize_t eintr_recvmsg(int fd, msghdr* message, int flags) {
  return interrupt_this_call() ? -1 : sys::real_calls().recvmsg(fd, message, flags);
}
int eintr_poll(pollfd* fds, nfds_t count, int timeout_ms) {
  return interrupt_this_call() ? -1 : sys::real_calls().poll(fds, count, timeout_ms);
}

// Short transfers: 1, 2 or 3 bytes per call, in turn.
std::size_t next_limit() {
  return 1 + static_cast<std::size_t>(g_calls++ % 3);
}

// The first `limit` bytes of iov, in `cut` (at most 8 entries); the entry count.
int cut_iov(const iovec* iov, std::size_t count, std::size_t limit, iovec* cut) {
  int entries = 0;
  std::size_t total = 0, left = limit;
  for (std::size_t i = 0; i < count; ++i) total += iov[i].iov_len;
  for (std::size_t i = 0; i < count && left > 0 && entries < 8; ++i) {
    std::size_t take = std::min(left, iov[i].iov_len);
    if (take == 0) continue;
    cut[entries++] = iovec{iov[i].iov_base, take};
    left -= take;
  }
  if (total > limit) ++g_injected;
  return entries;
}
ssize_t short_writev(int fd, const iovec* iov, int count) {
  iovec cut[8];
  int entries = cut_iov(iov, static_cast<std::size_t>(count), next_limit(), cut);
  return sys::real_calls().writev(fd, cut, entries);
}
ssize_t short_sendmsg(int fd, const msghdr* message, int flags) {
  iovec cut[8];
  msghdr shorter = *message;
  shorter.msg_iov = cut;
  shorter.msg_iovlen =
      static_cast<std::size_t>(cut_iov(message->msg_iov, message->msg_iovlen, next_limit(), cut));
  return sys::real_calls().sendmsg(fd, &shorter, flags);
}
ssize_t short_read(int fd, void* buffer, size_t size) {
  std::size_t limit = next_limit();
  if (size > limit) ++g_injected;
  return sys::real_calls().read(fd, buffer, std::min(size, limit));
}

// Restores the real system calls after every test, whatever happened.
class SeamTest {
 protected:
  static void reset_counters() {
    g_calls = 0;
    g_injected = 0;
  }
  static int stop_injecting() {
    sys::calls() = sys::real_calls();
    return g_injected;
  }
};

struct EintrCase {
  std::string name;
  Scheme scheme;
  void (*install)();
};
void PrintTo(const EintrCase& c, std::ostream* out) {
  *out << c.name;
}

class ChannelEintrTest : public ::testing::TestWithParam<EintrCase>, public SeamTest {
 protected:
  void SetUp() override { reset_counters(); }
  void TearDown() override { sys::calls() = sys::real_calls(); }
  TempDir dir_;
};

TEST_P(ChannelEintrTest, InterruptedCallIsRetriedTransparently) {
  LocalPair pair = make_local_pair(GetParam().scheme, dir_);
  Watchdog watchdog("the exchange of messages with interrupted calls");
  GetParam().install();
  for (std::size_t i = 0; i < 200; ++i) {
    pair.client->send(make_message(i, size_for(i)));
    // Blocking and timed receives take different paths. The message was
    // sent already, so the blocking one has no reason to wait long.
    Bytes got = receive_message(*pair.server, i % 2 ? kWaitForever : kWait);
    ASSERT_TRUE(IsMessage(got, i, size_for(i)));
    pair.server->send(got);
    ASSERT_TRUE(IsMessage(receive_message(*pair.client), i, size_for(i)));
  }
  EXPECT_GT(stop_injecting(), 0) << "no call was interrupted: the channel bypassed the seam";
}

INSTANTIATE_TEST_SUITE_P(
    , ChannelEintrTest,
    ::testing::Values(
        EintrCase{"read_pipe", kPipe, [] { sys::calls().read = eintr_read; }},
        EintrCase{"read_fifo", kFifo, [] { sys::calls().read = eintr_read; }},
        EintrCase{"read_unix", kUnixPath, [] { sys::calls().read = eintr_read; }},
        EintrCase{"read_tcp", kTcp4, [] { sys::calls().read = eintr_read; }},
        EintrCase{"writev_pipe", kPipe, [] { sys::calls().writev = eintr_writev; }},
        EintrCase{"writev_fifo", kFifo, [] { sys::calls().writev = eintr_writev; }},
        EintrCase{"sendmsg_unix", kUnixPath, [] { sys::calls().sendmsg = eintr_sendmsg; }},
        EintrCase{"sendmsg_tcp", kTcp4, [] { sys::calls().sendmsg = eintr_sendmsg; }},
        EintrCase{"sendmsg_seqpacket", kSeqpacket, [] { sys::calls().sendmsg = eintr_sendmsg; }},
        EintrCase{"sendmsg_dgram", kDgram, [] { sys::calls().sendmsg = eintr_sendmsg; }},
        EintrCase{"recvmsg_seqpacket", kSeqpacket, [] { sys::calls().recvmsg = eintr_recvmsg; }},
        EintrCase{"recvmsg_dgram", kDgram, [] { sys::calls().recvmsg = eintr_recvmsg; }},
        EintrCase{"poll_pipe", kPipe, [] { sys::calls().poll = eintr_poll; }},
        EintrCase{"poll_fifo", kFifo, [] { sys::calls().poll = eintr_poll; }},
        EintrCase{"poll_unix", kUnixPath, [] { sys::calls().poll = eintr_poll; }},
        EintrCase{"poll_dgram", kDgram, [] { sys::calls().poll = eintr_poll; }}),
    [](const auto& info) { return info.param.name; });

class ChannelSeamTest : public ::testing::Test, public SeamTest {
 protected:
  void SetUp() override { reset_counters(); }
  void TearDown() override { sys::calls() = sys::real_calls(); }
  TempDir dir_;
};

TEST_F(ChannelSeamTest, InterruptedPollStillTimesOutAfterTheTimeout) {
  LocalPair pair = make_local_pair(kUnixPath, dir_);
  sys::calls().poll = eintr_poll;
  auto start = Clock::now();
  Received received = pair.server->receive(50ms);
  auto elapsed = Clock::now() - start;
  EXPECT_GT(stop_injecting(), 0);
  EXPECT_EQ(received.status, ReceiveStatus::timed_out);
  EXPECT_GE(elapsed, 40ms);
  EXPECT_LT(elapsed, 5s);
}

class ChannelShortTransferTest : public ::testing::TestWithParam<Scheme>, public SeamTest {
 protected:
  void SetUp() override {
    if (GetParam().ipv6 && !ipv6_loopback_available()) GTEST_SKIP() << "no IPv6 loopback here";
    reset_counters();
  }
  void TearDown() override { sys::calls() = sys::real_calls(); }

  // Messages with sizes around the header's 4 bytes, to the server and back.
  // The server echoes in its own thread: tiny writes each take a whole socket
  // buffer entry, so a 10000-byte message does not fit unless it is read as
  // it is written.
  void exchange(LocalPair& pair) {
    Watchdog watchdog("the exchange of messages with short transfers");
    const std::vector<std::size_t> sizes = {0, 1, 2, 3, 4, 5, 7, 8, 100, 1000, 10000};
    std::string echo_error;
    std::jthread echo([&] {
      try {
        for (std::size_t i = 0; i < sizes.size(); ++i)
          pair.server->send(receive_message(*pair.server));
      } catch (const std::exception& error) {
        echo_error = error.what();
      }
      pair.server.reset();  // a sender stuck on a full buffer then fails instead
    });
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      pair.client->send(make_message(i, sizes[i]));
      ASSERT_TRUE(IsMessage(receive_message(*pair.client), i, sizes[i]));
    }
    echo.join();
    EXPECT_EQ(echo_error, "");
  }
  TempDir dir_;
};

TEST_P(ChannelShortTransferTest, ShortWritesStillDeliverWholeMessages) {
  LocalPair pair = make_local_pair(GetParam(), dir_);
  sys::calls().writev = short_writev;
  sys::calls().sendmsg = short_sendmsg;
  exchange(pair);
  EXPECT_GT(stop_injecting(), 0) << "no write was cut short: the channel bypassed the seam";
}

TEST_P(ChannelShortTransferTest, ShortReadsStillAssembleWholeMessages) {
  LocalPair pair = make_local_pair(GetParam(), dir_);
  sys::calls().read = short_read;
  exchange(pair);
  EXPECT_GT(stop_injecting(), 0) << "no read was cut short: the channel bypassed the seam";
}

INSTANTIATE_TEST_SUITE_P(, ChannelShortTransferTest,
                         ::testing::Values(kPipe, kFifo, kUnixPath, kTcp4), SchemeName);

// ---- Borrowed descriptors in non-blocking mode ------------------------------------------

// Pass-throughs that count the calls failing with EAGAIN.
ssize_t counting_read(int fd, void* buffer, size_t size) {
  ssize_t n = sys::real_calls().read(fd, buffer, size);
  if (n < 0 && errno == EAGAIN) ++g_injected;
  return n;
}
ssize_t counting_writev(int fd, const iovec* iov, int count) {
  ssize_t n = sys::real_calls().writev(fd, iov, count);
  if (n < 0 && errno == EAGAIN) ++g_injected;
  return n;
}

TEST_F(ChannelSeamTest, NonBlockingBorrowedReadDescriptorWaitsOnEagain) {
  PipePair a = PipePair::create();
  PipePair b = PipePair::create();
  set_nonblocking(a.read_end.get(), true);
  Channel reader = Channel::connect(pipe_uri(a.read_end, b.write_end));
  Channel writer = Channel::connect(pipe_uri(b.read_end, a.write_end));
  sys::calls().read = counting_read;
  std::jthread sender([&] {
    std::this_thread::sleep_for(50ms);
    writer.send("worth the wait");
  });
  // A blocking receive: read() fails with EAGAIN first, which must become a
  // wait. (The sender guarantees the message, so this does not block forever.)
  std::string outcome;
  try {
    Received received = reader.receive();
    outcome = received ? text_of(received.message) : "no message";
  } catch (const std::exception& error) {
    outcome = std::string("threw: ") + error.what();
  }
  sender.join();
  EXPECT_EQ(outcome, "worth the wait");
  EXPECT_GT(stop_injecting(), 0) << "read() never returned EAGAIN: the case was not exercised";
}

TEST_F(ChannelSeamTest, NonBlockingBorrowedWriteDescriptorWaitsForRoomOnEagain) {
  PipePair a = PipePair::create();
  PipePair b = PipePair::create();
  set_nonblocking(a.write_end.get(), true);
  Channel reader = Channel::connect(pipe_uri(a.read_end, b.write_end));
  Channel writer = Channel::connect(pipe_uri(b.read_end, a.write_end));
  sys::calls().writev = counting_writev;
  Bytes received;
  std::jthread receiver([&] {
    // Read only once the pipe is full and writev() has failed with EAGAIN: a
    // reader draining it from the start could keep it from ever filling.
    eventually([] { return g_injected > 0; }, kWait);
    try {
      received = receive_message(reader);
    } catch (const std::exception&) {
    }
  });
  // Far more than a pipe can hold (1 MiB at most unprivileged), so writev()
  // fails with EAGAIN part way.
  EXPECT_NO_THROW(writer.send(make_message(9, 3000000)));
  receiver.join();
  EXPECT_TRUE(IsMessage(received, 9, 3000000));
  EXPECT_GT(stop_injecting(), 0) << "writev() never returned EAGAIN: the case was not exercised";
}

// ---- A vanished peer: an error, not SIGPIPE -----------------------------------------------

// Sends until the channel notices the peer is gone (TCP needs a round trip).
void expect_send_fails_because_peer_is_gone(Channel& channel) {
  for (int attempt = 0; attempt < 500; ++attempt) {
    try {
      channel.send("anyone there?");
    } catch (const SystemError& error) {
      EXPECT_TRUE(error.code() == EPIPE || error.code() == ECONNRESET ||
                  error.code() == ECONNREFUSED)
          << error.what();
      return;
    }
    std::this_thread::sleep_for(2ms);
  }
  ADD_FAILURE() << "send kept succeeding after the peer exited";
}

// Runs body in a child whose SIGPIPE disposition is the default, so a
// SIGPIPE would kill it, and checks that it exited normally.
void expect_survives_without_sigpipe(const std::function<void()>& body) {
  ChildProcess scenario([&] {
    ::signal(SIGPIPE, SIG_DFL);
    body();
  });
  int status = scenario.wait();
  EXPECT_FALSE(WIFSIGNALED(status) && WTERMSIG(status) == SIGPIPE) << "killed by SIGPIPE";
  EXPECT_TRUE(exited_cleanly(status)) << "the scenario " << describe_status(status);
}

class ChannelPeerGoneTest : public ChannelSchemeTest {};

TEST_P(ChannelPeerGoneTest, SendToAnExitedPeerThrowsSystemErrorInsteadOfRaisingSigpipe) {
  const std::string listen_uri = GetParam().listen_uri(dir_);
  expect_survives_without_sigpipe([&] {
    ChannelListener listener = ChannelListener::listen(listen_uri);
    const std::string uri = listener.uri();
    ChildProcess peer([&] {
      Channel channel = Channel::connect(uri);
      channel.send("goodbye");
    });
    std::optional<Channel> server = listener.accept(kWait);
    ASSERT_TRUE(server);
    EXPECT_EQ(text_of(receive_from(*server, peer)), "goodbye");
    EXPECT_CHILD_SUCCEEDS(peer);
    expect_send_fails_because_peer_is_gone(*server);
  });
}

INSTANTIATE_TEST_SUITE_P(, ChannelPeerGoneTest,
                         ::testing::Values(kFifo, kUnixPath, kSeqpacket, kDgram, kTcp4),
                         SchemeName);

TEST(ChannelPipeTest, SendToAnExitedSpawnedChildThrowsSystemErrorInsteadOfRaisingSigpipe) {
  expect_survives_without_sigpipe([] {
    auto [channel, child] = Channel::spawn({"true"});
    std::optional<ExitStatus> status = child.wait_for(kWait);
    ASSERT_TRUE(status) << "'true' did not exit";
    expect_send_fails_because_peer_is_gone(channel);
  });
}

TEST(ChannelPipeTest, SendOnInheritedDescriptorWithNoReaderThrowsSystemError) {
  expect_survives_without_sigpipe([] {
    PipePair a = PipePair::create();
    PipePair b = PipePair::create();
    Channel channel = Channel::connect(pipe_uri(a.read_end, b.write_end));
    b.read_end.reset();
    expect_send_fails_because_peer_is_gone(channel);
  });
}

}  // namespace
}  // namespace conduit::ipc
