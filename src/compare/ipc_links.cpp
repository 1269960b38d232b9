#include "compare/ipc_links.hpp"

#include <fcntl.h>
#include <fmt/core.h>
#include <mqueue.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <optional>

#include "compare/measurement.hpp"
#include "conduit/error.hpp"
#include "conduit/ipc/channel.hpp"
#include "conduit/ipc/file_descriptor.hpp"
#include "conduit/ipc/pipe.hpp"
#include "conduit/ipc/shm_ring.hpp"
#include "conduit/ipc/tcp_socket.hpp"

namespace conduit::compare {

namespace {

using ipc::Channel;
using ipc::ChannelListener;
using ipc::FileDescriptor;
using ipc::ShmRing;
using Clock = std::chrono::steady_clock;

// How long one receive may wait before the run is declared stuck.
constexpr std::chrono::seconds kReceiveTimeout{20};

[[noreturn]] void fail(const std::string& call) {
  int saved = errno;
  if (saved == EINTR) throw Error(call + ": interrupted (the run took too long)");
  throw Error(call + ": " + std::strerror(saved));
}

long read_long(const char* path, long fallback) {
  std::ifstream in(path);
  long value = fallback;
  in >> value;
  return in ? value : fallback;
}

// ---- conduit: Channel --------------------------------------------------------

// Receives wait without a deadline where a dead peer shows as end of file
// (pipes, FIFOs, sockets, shared memory's liveness check): that is how a
// Channel is used, and a deadline costs a poll() before each read. Queues
// cannot tell that their peer is gone, so there the wait is bounded.
std::chrono::nanoseconds receive_timeout_for(const std::string& uri) {
  bool queue = uri.rfind("mq:", 0) == 0 || uri.rfind("sysvmq:", 0) == 0;
  return queue ? std::chrono::nanoseconds(kReceiveTimeout) : ipc::kWaitForever;
}

class ChannelEndpoint : public Endpoint {
 public:
  explicit ChannelEndpoint(Channel channel)
      : channel_(std::move(channel)), timeout_(receive_timeout_for(channel_.uri())) {}
  std::span<std::byte> prepare(std::size_t size) override { return buffer_.take(size); }
  void send(std::size_t size) override { channel_.send({buffer_.data(), size}); }
  std::span<const std::byte> receive() override {
    ipc::Received received = channel_.receive(timeout_);
    if (received.status == ipc::ReceiveStatus::timed_out)
      throw Error(fmt::format("nothing arrived on {} within {} s", channel_.uri(),
                              kReceiveTimeout.count()));
    if (received.status == ipc::ReceiveStatus::closed)
      throw Error(fmt::format("{} was closed by the other side", channel_.uri()));
    return received.message;
  }

 private:
  Channel channel_;
  std::chrono::nanoseconds timeout_;
  MessageBuffer buffer_;
};

std::unique_ptr<Endpoint> checked_channel(Channel channel, std::size_t size) {
  if (channel.max_message_size() < size) throw SizeCapped(channel.max_message_size());
  return std::make_unique<ChannelEndpoint>(std::move(channel));
}

class ChannelLink : public Link {
 public:
  ChannelLink(const std::string& uri, std::size_t size)
      : listener_(ChannelListener::listen(uri)), size_(size) {}
  std::unique_ptr<Endpoint> driver() override {
    return checked_channel(Channel::connect(listener_.uri()), size_);
  }
  std::unique_ptr<Endpoint> peer() override {
    std::optional<Channel> channel = listener_.accept(kReceiveTimeout);
    if (!channel) throw Error("the driver did not connect to " + listener_.uri());
    return checked_channel(std::move(*channel), size_);
  }

 private:
  ChannelListener listener_;
  std::size_t size_;
};

class ChannelPipeLink : public Link {
 public:
  explicit ChannelPipeLink(std::size_t size)
      : there_(ipc::PipePair::create()), back_(ipc::PipePair::create()), size_(size) {}
  std::unique_ptr<Endpoint> driver() override {
    there_.read_end.reset();
    back_.write_end.reset();
    return checked_channel(
        Channel::connect(fmt::format("pipe:{},{}", back_.read_end.get(), there_.write_end.get())),
        size_);
  }
  std::unique_ptr<Endpoint> peer() override {
    there_.write_end.reset();
    back_.read_end.reset();
    return checked_channel(
        Channel::connect(fmt::format("pipe:{},{}", there_.read_end.get(), back_.write_end.get())),
        size_);
  }

 private:
  ipc::PipePair there_, back_;
  std::size_t size_;
};

// ---- conduit: ShmRing loan path ---------------------------------------------

std::size_t ring_capacity_for(std::size_t size) {
  std::size_t capacity = 4 << 20;
  while (capacity / 2 - 8 < size) capacity *= 2;
  return capacity;
}

class SharedAnonymousMemory {
 public:
  explicit SharedAnonymousMemory(std::size_t size) : size_(size) {
    memory_ = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (memory_ == MAP_FAILED) fail(fmt::format("mmap({} bytes, MAP_SHARED)", size));
  }
  ~SharedAnonymousMemory() { ::munmap(memory_, size_); }
  SharedAnonymousMemory(const SharedAnonymousMemory&) = delete;
  SharedAnonymousMemory& operator=(const SharedAnonymousMemory&) = delete;
  std::byte* bytes() const { return static_cast<std::byte*>(memory_); }

 private:
  void* memory_;
  std::size_t size_;
};

class RingLoanEndpoint : public Endpoint {
 public:
  RingLoanEndpoint(ShmRing out, ShmRing in) : out_(std::move(out)), in_(std::move(in)) {}
  std::span<std::byte> prepare(std::size_t size) override {
    auto space = out_.loan(size, kReceiveTimeout);
    if (!space) throw Error("the ring stayed full: the peer stopped reading");
    return *space;
  }
  void send(std::size_t size) override { out_.commit(size); }
  std::span<const std::byte> receive() override {
    ipc::Received received = in_.consume(kReceiveTimeout);
    if (received.status != ipc::ReceiveStatus::message)
      throw Error(received.status == ipc::ReceiveStatus::closed ? "the peer closed its ring"
                                                                : "nothing arrived on the ring");
    return received.message;
  }
  void release() override { in_.release(); }
  bool builds_in_shared_memory() const override { return true; }

 private:
  ShmRing out_, in_;
};

class RingLoanLink : public Link {
 public:
  explicit RingLoanLink(std::size_t size)
      : capacity_(ring_capacity_for(size)),
        footprint_(ShmRing::footprint(capacity_)),
        memory_(2 * footprint_) {
    ShmRing::format(ring(0), capacity_);
    ShmRing::format(ring(1), capacity_);
  }
  std::unique_ptr<Endpoint> driver() override { return endpoint(0, 1); }
  std::unique_ptr<Endpoint> peer() override { return endpoint(1, 0); }

 private:
  void* ring(int index) const { return memory_.bytes() + index * footprint_; }
  std::unique_ptr<Endpoint> endpoint(int out, int in) {
    return std::make_unique<RingLoanEndpoint>(
        ShmRing::attach(ring(out), footprint_, ShmRing::Role::producer),
        ShmRing::attach(ring(in), footprint_, ShmRing::Role::consumer));
  }
  std::size_t capacity_, footprint_;
  SharedAnonymousMemory memory_;
};

// ---- raw: byte streams (pipes, FIFOs, stream sockets) -------------------------

class StreamEndpoint : public Endpoint {
 public:
  StreamEndpoint(int read_fd, int write_fd, std::size_t size)
      : read_fd_(read_fd), write_fd_(write_fd), size_(size) {}
  std::span<std::byte> prepare(std::size_t size) override { return out_.take(size); }
  void send(std::size_t size) override {
    std::size_t done = 0;
    while (done < size) {
      ssize_t n = ::write(write_fd_, out_.data() + done, size - done);
      if (n < 0) fail("write");
      done += static_cast<std::size_t>(n);
    }
  }
  std::span<const std::byte> receive() override {
    std::span<std::byte> into = in_.take(size_);
    std::size_t done = 0;
    while (done < size_) {
      ssize_t n = ::read(read_fd_, into.data() + done, size_ - done);
      if (n < 0) fail("read");
      if (n == 0) throw Error("read: end of file: the peer is gone");
      done += static_cast<std::size_t>(n);
    }
    return into;
  }

 private:
  int read_fd_, write_fd_;
  std::size_t size_;
  MessageBuffer out_, in_;
};

// Two one-way byte streams, each given as (read end, write end).
class StreamPairLink : public Link {
 public:
  StreamPairLink(FileDescriptor there_read, FileDescriptor there_write, FileDescriptor back_read,
                 FileDescriptor back_write, std::size_t size)
      : there_read_(std::move(there_read)),
        there_write_(std::move(there_write)),
        back_read_(std::move(back_read)),
        back_write_(std::move(back_write)),
        size_(size) {}
  std::unique_ptr<Endpoint> driver() override {
    there_read_.reset();
    back_write_.reset();
    return std::make_unique<StreamEndpoint>(back_read_.get(), there_write_.get(), size_);
  }
  std::unique_ptr<Endpoint> peer() override {
    there_write_.reset();
    back_read_.reset();
    return std::make_unique<StreamEndpoint>(there_read_.get(), back_write_.get(), size_);
  }

 private:
  FileDescriptor there_read_, there_write_, back_read_, back_write_;
  std::size_t size_;
};

// The pipe capacity conduit asks for (stream_transport.cpp), so that the
// comparison measures conduit's code, not a different kernel setting.
void widen_pipe(int fd, std::size_t size) {
  std::size_t wanted = std::min<std::size_t>(size + 4, 1 << 20);
  if (::fcntl(fd, F_GETPIPE_SZ) < static_cast<int>(wanted))
    ::fcntl(fd, F_SETPIPE_SZ, static_cast<int>(wanted));
}

// A bidirectional socket used from both sides (socketpair, TCP).
class SocketPairLink : public Link {
 public:
  SocketPairLink(FileDescriptor driver, FileDescriptor peer, bool stream, std::size_t size)
      : driver_(std::move(driver)), peer_(std::move(peer)), stream_(stream), size_(size) {}
  std::unique_ptr<Endpoint> driver() override {
    peer_.reset();
    return make(driver_.get());
  }
  std::unique_ptr<Endpoint> peer() override {
    driver_.reset();
    return make(peer_.get());
  }

 private:
  std::unique_ptr<Endpoint> make(int fd);
  FileDescriptor driver_, peer_;
  bool stream_;
  std::size_t size_;
};

// ---- raw: message sockets (seqpacket, datagram) ------------------------------

class MessageSocketEndpoint : public Endpoint {
 public:
  MessageSocketEndpoint(int fd, std::size_t size) : fd_(fd), size_(size) {}
  std::span<std::byte> prepare(std::size_t size) override { return out_.take(size); }
  void send(std::size_t size) override {
    ssize_t n = ::send(fd_, out_.data(), size, 0);
    if (n < 0) fail("send");
    if (static_cast<std::size_t>(n) != size) throw Error("send: the message was cut short");
  }
  std::span<const std::byte> receive() override {
    std::span<std::byte> into = in_.take(size_ + 1);
    ssize_t n = ::recv(fd_, into.data(), into.size(), 0);
    if (n < 0) fail("recv");
    if (n == 0) throw Error("recv: end of file: the peer is gone");
    return into.first(static_cast<std::size_t>(n));
  }

 private:
  int fd_;
  std::size_t size_;
  MessageBuffer out_, in_;
};

std::unique_ptr<Endpoint> SocketPairLink::make(int fd) {
  if (stream_) return std::make_unique<StreamEndpoint>(fd, fd, size_);
  return std::make_unique<MessageSocketEndpoint>(fd, size_);
}

// ---- raw: POSIX and System V message queues ----------------------------------

class PosixQueueEndpoint : public Endpoint {
 public:
  PosixQueueEndpoint(mqd_t in, mqd_t out, std::size_t size) : in_(in), out_(out), size_(size) {}
  std::span<std::byte> prepare(std::size_t size) override { return outgoing_.take(size); }
  void send(std::size_t size) override {
    if (::mq_send(out_, reinterpret_cast<const char*>(outgoing_.data()), size, 0) != 0)
      fail("mq_send");
  }
  std::span<const std::byte> receive() override {
    std::span<std::byte> into = incoming_.take(size_);
    ssize_t n = ::mq_receive(in_, reinterpret_cast<char*>(into.data()), size_, nullptr);
    if (n < 0) fail("mq_receive");
    return into.first(static_cast<std::size_t>(n));
  }

 private:
  mqd_t in_, out_;
  std::size_t size_;
  MessageBuffer outgoing_, incoming_;
};

class PosixQueueLink : public Link {
 public:
  PosixQueueLink(const Scratch& scratch, std::size_t size)
      : there_name_(scratch.name_prefix + fmt::format("-raw-there-{}", counter())),
        back_name_(scratch.name_prefix + fmt::format("-raw-back-{}", counter())),
        size_(size) {
    long limit = read_long("/proc/sys/fs/mqueue/msgsize_max", 8192);
    if (static_cast<long>(size) > limit) throw SizeCapped(static_cast<std::size_t>(limit));
    mq_attr attributes{};
    attributes.mq_maxmsg = 10;
    attributes.mq_msgsize = static_cast<long>(size);
    there_ = ::mq_open(there_name_.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600, &attributes);
    if (there_ == static_cast<mqd_t>(-1)) fail("mq_open(" + there_name_ + ")");
    back_ = ::mq_open(back_name_.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600, &attributes);
    if (back_ == static_cast<mqd_t>(-1)) {
      int saved = errno;
      cleanup();
      errno = saved;
      fail("mq_open(" + back_name_ + ")");
    }
  }
  ~PosixQueueLink() override { cleanup(); }
  std::unique_ptr<Endpoint> driver() override {
    return std::make_unique<PosixQueueEndpoint>(back_, there_, size_);
  }
  std::unique_ptr<Endpoint> peer() override {
    return std::make_unique<PosixQueueEndpoint>(there_, back_, size_);
  }

 private:
  static int counter() {
    static int next = 0;
    return next++;
  }
  void cleanup() {
    if (there_ != static_cast<mqd_t>(-1)) ::mq_close(there_), ::mq_unlink(there_name_.c_str());
    if (back_ != static_cast<mqd_t>(-1)) ::mq_close(back_), ::mq_unlink(back_name_.c_str());
    there_ = back_ = static_cast<mqd_t>(-1);
  }
  std::string there_name_, back_name_;
  std::size_t size_;
  mqd_t there_ = static_cast<mqd_t>(-1), back_ = static_cast<mqd_t>(-1);
};

class SysvQueueEndpoint : public Endpoint {
 public:
  SysvQueueEndpoint(int queue, long send_type, long receive_type, std::size_t size)
      : queue_(queue), send_type_(send_type), receive_type_(receive_type), size_(size) {}
  std::span<std::byte> prepare(std::size_t size) override {
    return outgoing_.take(sizeof(long) + size).subspan(sizeof(long));
  }
  void send(std::size_t size) override {
    std::memcpy(outgoing_.data(), &send_type_, sizeof send_type_);
    if (::msgsnd(queue_, outgoing_.data(), size, 0) != 0) fail("msgsnd");
  }
  std::span<const std::byte> receive() override {
    std::span<std::byte> into = incoming_.take(sizeof(long) + size_);
    ssize_t n = ::msgrcv(queue_, into.data(), size_, receive_type_, 0);
    if (n < 0) fail("msgrcv");
    return into.subspan(sizeof(long), static_cast<std::size_t>(n));
  }

 private:
  int queue_;
  long send_type_, receive_type_;
  std::size_t size_;
  MessageBuffer outgoing_, incoming_;
};

class SysvQueueLink : public Link {
 public:
  explicit SysvQueueLink(std::size_t size) : size_(size) {
    long limit = read_long("/proc/sys/kernel/msgmax", 8192);
    if (static_cast<long>(size) > limit) throw SizeCapped(static_cast<std::size_t>(limit));
    queue_ = ::msgget(IPC_PRIVATE, IPC_CREAT | 0600);
    if (queue_ < 0) fail("msgget(IPC_PRIVATE)");
  }
  ~SysvQueueLink() override { ::msgctl(queue_, IPC_RMID, nullptr); }
  std::unique_ptr<Endpoint> driver() override {
    return std::make_unique<SysvQueueEndpoint>(queue_, 1, 2, size_);
  }
  std::unique_ptr<Endpoint> peer() override {
    return std::make_unique<SysvQueueEndpoint>(queue_, 2, 1, size_);
  }

 private:
  std::size_t size_;
  int queue_ = -1;
};

// ---- raw: busy-polled slots in shared memory ----------------------------------

// The same store policy as ShmRing::send (see ShmRingOptions).
void copy_into_shared(std::byte* to, const std::byte* from, std::size_t size) {
  ipc::ShmRingOptions defaults;
  if (size < defaults.streaming_copy_from) {
    std::memcpy(to, from, size);
    return;
  }
  ipc::copy_streaming(to, from, size);
}

struct alignas(128) SlotHeader {
  std::atomic<std::uint32_t> full;
  std::uint32_t size;
};

class SlotsEndpoint : public Endpoint {
 public:
  static constexpr int kSlots = 4;

  SlotsEndpoint(std::byte* out, std::byte* in, std::size_t stride, bool copy_in)
      : out_(out), in_(in), stride_(stride), copy_in_(copy_in) {}
  std::span<std::byte> prepare(std::size_t size) override {
    SlotHeader& slot = header(out_, sent_);
    wait_until(slot, 0);
    if (copy_in_) return own_.take(size);
    return {payload(out_, sent_), size};
  }
  void send(std::size_t size) override {
    SlotHeader& slot = header(out_, sent_);
    if (copy_in_) copy_into_shared(payload(out_, sent_), own_.data(), size);
    slot.size = static_cast<std::uint32_t>(size);
    slot.full.store(1, std::memory_order_release);
    ++sent_;
  }
  std::span<const std::byte> receive() override {
    SlotHeader& slot = header(in_, received_);
    wait_until(slot, 1);
    return {payload(in_, received_), slot.size};
  }
  void release() override {
    header(in_, received_).full.store(0, std::memory_order_release);
    ++received_;
  }
  bool builds_in_shared_memory() const override { return !copy_in_; }

 private:
  SlotHeader& header(std::byte* base, std::uint64_t n) const {
    return *reinterpret_cast<SlotHeader*>(base + (n % kSlots) * stride_);
  }
  std::byte* payload(std::byte* base, std::uint64_t n) const {
    return base + (n % kSlots) * stride_ + sizeof(SlotHeader);
  }
  void wait_until(SlotHeader& slot, std::uint32_t value) const {
    auto deadline = Clock::now() + kReceiveTimeout;
    for (std::uint64_t spins = 1; slot.full.load(std::memory_order_acquire) != value; ++spins) {
      if ((spins & 0xffff) == 0 && Clock::now() > deadline)
        throw Error("the peer stopped answering in shared memory");
    }
  }
  std::byte *out_, *in_;
  std::size_t stride_;
  bool copy_in_;
  std::uint64_t sent_ = 0, received_ = 0;
  MessageBuffer own_;
};

class SlotsLink : public Link {
 public:
  SlotsLink(std::size_t size, bool copy_in)
      : stride_(sizeof(SlotHeader) + (size + 127) / 128 * 128),
        memory_(2 * SlotsEndpoint::kSlots * stride_),
        copy_in_(copy_in) {
    for (int i = 0; i < 2 * SlotsEndpoint::kSlots; ++i)
      new (memory_.bytes() + i * stride_) SlotHeader{};
  }
  std::unique_ptr<Endpoint> driver() override {
    return std::make_unique<SlotsEndpoint>(half(0), half(1), stride_, copy_in_);
  }
  std::unique_ptr<Endpoint> peer() override {
    return std::make_unique<SlotsEndpoint>(half(1), half(0), stride_, copy_in_);
  }

 private:
  std::byte* half(int index) const {
    return memory_.bytes() + index * SlotsEndpoint::kSlots * stride_;
  }
  std::size_t stride_;
  SharedAnonymousMemory memory_;
  bool copy_in_;
};

}  // namespace

std::unique_ptr<Link> channel_link(std::string uri, std::size_t size) {
  return std::make_unique<ChannelLink>(uri, size);
}

std::unique_ptr<Link> channel_pipe_link(std::size_t size) {
  return std::make_unique<ChannelPipeLink>(size);
}

std::unique_ptr<Link> ring_loan_link(std::size_t size) {
  return std::make_unique<RingLoanLink>(size);
}

std::unique_ptr<Link> raw_pipe_link(std::size_t size) {
  ipc::PipePair there = ipc::PipePair::create(), back = ipc::PipePair::create();
  for (int fd : {there.write_end.get(), back.write_end.get()}) widen_pipe(fd, size);
  return std::make_unique<StreamPairLink>(std::move(there.read_end), std::move(there.write_end),
                                          std::move(back.read_end), std::move(back.write_end),
                                          size);
}

std::unique_ptr<Link> raw_fifo_link(const Scratch& scratch, std::size_t size) {
  static int counter = 0;
  std::string there = fmt::format("{}/raw-there-{}", scratch.directory, counter);
  std::string back = fmt::format("{}/raw-back-{}", scratch.directory, counter++);
  for (const std::string& path : {there, back})
    if (::mkfifo(path.c_str(), 0600) != 0) fail("mkfifo(" + path + ")");
  // O_RDWR opens never block; the driver and the peer each close what they
  // do not use, as with pipes. The names go at once: the ends stay open.
  FileDescriptor there_read(::open(there.c_str(), O_RDWR | O_CLOEXEC));
  FileDescriptor there_write(::open(there.c_str(), O_WRONLY | O_CLOEXEC));
  FileDescriptor back_read(::open(back.c_str(), O_RDWR | O_CLOEXEC));
  FileDescriptor back_write(::open(back.c_str(), O_WRONLY | O_CLOEXEC));
  ::unlink(there.c_str());
  ::unlink(back.c_str());
  if (!there_read || !there_write || !back_read || !back_write) fail("open(FIFO)");
  for (int fd : {there_write.get(), back_write.get()}) widen_pipe(fd, size);
  return std::make_unique<StreamPairLink>(std::move(there_read), std::move(there_write),
                                          std::move(back_read), std::move(back_write), size);
}

namespace {

// As conduit does for message sockets (datagram_transport.cpp): ask for a
// send buffer that holds the largest message a Channel allows, and learn
// what the kernel granted. Throws SizeCapped when `size` does not fit.
void size_message_buffers(int a, int b, std::size_t size) {
  const std::size_t largest = ipc::ChannelOptions{}.max_message_size;
  int wanted = static_cast<int>(std::min<std::size_t>(largest + 1024, 1u << 30) / 2 + 1);
  for (int fd : {a, b}) ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &wanted, sizeof wanted);
  int granted = 0;
  socklen_t length = sizeof granted;
  ::getsockopt(a, SOL_SOCKET, SO_SNDBUF, &granted, &length);
  std::size_t limit = std::min<std::size_t>(static_cast<std::size_t>(granted) - 32, 4 << 20);
  if (size > limit) throw SizeCapped(limit);
}

}  // namespace

std::unique_ptr<Link> raw_socketpair_link(int type, std::size_t size) {
  int pair[2];
  if (::socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, pair) != 0) fail("socketpair");
  FileDescriptor a(pair[0]), b(pair[1]);
  if (type != SOCK_STREAM) size_message_buffers(a.get(), b.get(), size);
  return std::make_unique<SocketPairLink>(std::move(a), std::move(b), type == SOCK_STREAM, size);
}

std::unique_ptr<Link> raw_unix_connection_link(const Scratch& scratch, int type, std::size_t size) {
  static int counter = 0;
  std::string path = fmt::format("{}/raw-unix-{}.sock", scratch.directory, counter++);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof address.sun_path) throw Error("socket path too long: " + path);
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  FileDescriptor listener(::socket(AF_UNIX, type | SOCK_CLOEXEC, 0));
  if (!listener || ::bind(listener.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::listen(listener.get(), 1) != 0)
    fail("bind/listen(" + path + ")");
  FileDescriptor client(::socket(AF_UNIX, type | SOCK_CLOEXEC, 0));
  if (!client || ::connect(client.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
    fail("connect(" + path + ")");
  FileDescriptor server(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  ::unlink(path.c_str());
  if (!server) fail("accept(" + path + ")");
  if (type != SOCK_STREAM) size_message_buffers(client.get(), server.get(), size);
  return std::make_unique<SocketPairLink>(std::move(client), std::move(server), type == SOCK_STREAM,
                                          size);
}

std::unique_ptr<Link> raw_tcp_link(std::size_t size) {
  auto listener = ipc::TcpListener::bind("127.0.0.1", 0);
  auto client = ipc::TcpSocket::connect("127.0.0.1", listener.port());
  auto server = listener.accept();
  return std::make_unique<SocketPairLink>(client.release(), server.release(), true, size);
}

std::unique_ptr<Link> raw_posix_queue_link(const Scratch& scratch, std::size_t size) {
  return std::make_unique<PosixQueueLink>(scratch, size);
}

std::unique_ptr<Link> raw_sysv_queue_link(std::size_t size) {
  return std::make_unique<SysvQueueLink>(size);
}

std::unique_ptr<Link> raw_shared_slots_link(std::size_t size, bool copy_in) {
  return std::make_unique<SlotsLink>(size, copy_in);
}

}  // namespace conduit::compare
