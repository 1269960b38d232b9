#include "rpc/transports/shm_transport.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "conduit/error.hpp"
#include "conduit/ipc/unix_socket.hpp"

namespace conduit::rpc::shm {

namespace {

using ipc::ShmRing;

// What the server sends with the memfd.
struct Handshake {
  char magic[8];
  std::uint64_t capacity;
};
constexpr char kMagic[8] = {'C', 'D', 'N', 'T', 'S', 'H', 'M', '2'};
// What the client sends back once it has attached to the rings.
constexpr char kAttached[8] = {'C', 'D', 'N', 'T', 'A', 'T', 'C', 'H'};
constexpr std::size_t kLargestCapacity = std::size_t{1} << 30;

// Ring 0 carries the client's messages, ring 1 the server's.
void* ring_at(const ipc::Mapping& mapping, int index, std::size_t capacity) {
  return mapping.bytes() + index * ShmRing::footprint(capacity);
}

// The rings judge the peer by the socket's hang-up, never by the pid it
// records in them.
ipc::ShmRingOptions options_for(const ipc::Cancellation& cancellation, int socket) {
  ipc::ShmRingOptions options;
  options.cancellation = &cancellation;
  options.peer_watch = socket;
  return options;
}

// Waits until `socket` has something to read (or has hung up) before
// `deadline`; false when the deadline passed first. Throws Cancelled once
// `cancellation` is, and SystemError when poll fails.
bool readable_before(int socket, std::chrono::steady_clock::time_point deadline,
                     const ipc::Cancellation* cancellation) {
  for (;;) {
    const auto left =
        std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd ready[2] = {{socket, POLLIN, 0}, {cancellation ? cancellation->fd() : -1, POLLIN, 0}};
    const int n = ::poll(ready, 2, static_cast<int>(std::min<std::int64_t>(left.count(), 60'000)));
    if (n < 0 && errno != EINTR) throw SystemError("poll", "shm handshake socket", errno);
    if (cancellation && cancellation->cancelled()) throw Cancelled("shm handshake: cancelled");
    if (n > 0 && ready[0].revents != 0) return true;
  }
}

}  // namespace

Link::Link(ipc::FileDescriptor socket, ipc::Mapping mapping, ShmRing out, ShmRing in,
           std::unique_ptr<ipc::Cancellation> cancellation)
    : socket_(std::move(socket)),
      mapping_(std::move(mapping)),
      cancellation_(std::move(cancellation)),
      out_(std::move(out)),
      in_(std::move(in)) {}

Link::Link(Link&&) noexcept = default;

Link::~Link() {
  // The rings go first (they mark themselves closed), then the mapping.
  out_.close();
  in_.close();
}

void Link::send(std::string_view message) {
  out_.send(std::as_bytes(std::span(message.data(), message.size())));
}

void Link::send_bytes(std::string_view bytes) {
  while (!bytes.empty()) {
    const std::size_t n = std::min(bytes.size(), out_.max_message_size());
    send(bytes.substr(0, n));
    bytes.remove_prefix(n);
  }
}

std::optional<std::string_view> Link::receive(std::chrono::nanoseconds timeout, bool* timed_out) {
  ipc::Received received = in_.consume(timeout);
  if (timed_out) *timed_out = received.status == ipc::ReceiveStatus::timed_out;
  if (received.status != ipc::ReceiveStatus::message) return std::nullopt;
  return std::string_view(reinterpret_cast<const char*>(received.message.data()),
                          received.message.size());
}

void Link::wait_until_attached(std::chrono::milliseconds timeout) {
  char word[sizeof kAttached];
  std::size_t got = 0;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (got < sizeof word) {
    if (!readable_before(socket_.get(), deadline, cancellation_.get()))
      throw Timeout("shm handshake: the client did not attach to its shared memory within " +
                    std::to_string(timeout.count()) + " ms");
    const ssize_t n = ::recv(socket_.get(), word + got, sizeof word - got, MSG_DONTWAIT);
    if (n == 0)
      throw PeerGone("shm handshake: the client closed the connection before it attached");
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      throw PeerGone("shm handshake: the client's connection failed before it attached: " +
                     std::string(std::strerror(errno)));
    }
    got += static_cast<std::size_t>(n);
  }
  if (std::memcmp(word, kAttached, sizeof kAttached) != 0)
    throw ProtocolError("shm handshake: the client's answer is not conduit's");
}

void Link::cancel() {
  cancellation_->cancel();
}

Link accept_link(ipc::FileDescriptor socket, std::size_t ring_capacity) {
  const std::size_t footprint = ShmRing::footprint(ring_capacity);
  ipc::SharedMemory memory = ipc::SharedMemory::anonymous("conduit-rpc-shm", 2 * footprint);
  ipc::Mapping mapping = memory.map();
  ShmRing::format(ring_at(mapping, 0, ring_capacity), ring_capacity);
  ShmRing::format(ring_at(mapping, 1, ring_capacity), ring_capacity);
  auto cancellation = std::make_unique<ipc::Cancellation>();
  ShmRing in = ShmRing::attach(ring_at(mapping, 0, ring_capacity), footprint,
                               ShmRing::Role::consumer, options_for(*cancellation, socket.get()));
  ShmRing out = ShmRing::attach(ring_at(mapping, 1, ring_capacity), footprint,
                                ShmRing::Role::producer, options_for(*cancellation, socket.get()));
  Handshake handshake{};
  std::memcpy(handshake.magic, kMagic, sizeof kMagic);
  handshake.capacity = ring_capacity;
  ipc::UnixSocket unix_socket(std::move(socket), ipc::UnixSocketType::stream);
  int fd = memory.fd();
  std::size_t sent = unix_socket.send_with_fds(std::as_bytes(std::span(&handshake, 1)),
                                               std::span<const int>(&fd, 1));
  if (sent != sizeof handshake)
    throw ProtocolError("shm handshake: the client's socket took only part of the handshake");
  return Link(unix_socket.release(), std::move(mapping), std::move(out), std::move(in),
              std::move(cancellation));
}

Link connect_link(std::string_view path, std::chrono::milliseconds timeout) {
  ipc::UnixSocket socket =
      ipc::UnixSocket::connect(ipc::UnixAddress::parse(path), ipc::UnixSocketType::stream);
  Handshake handshake{};
  std::vector<ipc::FileDescriptor> fds;
  std::size_t got = 0;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (got < sizeof handshake) {
    if (!readable_before(socket.fd(), deadline, nullptr))
      throw Error("shm+unix:" + std::string(path) + ": the server sent no shared memory within " +
                  std::to_string(timeout.count()) + " ms");
    std::vector<ipc::FileDescriptor> more;
    std::size_t n = socket.receive_with_fds(
        std::as_writable_bytes(std::span(&handshake, 1)).subspan(got), more);
    if (n == 0)
      throw PeerGone("shm+unix:" + std::string(path) +
                     ": the server closed the connection (is it a "
                     "conduit server listening on shm+unix:?)");
    got += n;
    for (auto& fd : more) fds.push_back(std::move(fd));
  }
  if (std::memcmp(handshake.magic, kMagic, sizeof kMagic - 1) == 0 &&
      handshake.magic[7] != kMagic[7])
    throw ProtocolError("shm+unix:" + std::string(path) + ": the server speaks version " +
                        handshake.magic[7] + " of conduit's shared-memory handshake, this client " +
                        kMagic[7] + " (run the same conduit release on both sides)");
  if (std::memcmp(handshake.magic, kMagic, sizeof kMagic) != 0 || fds.size() != 1)
    throw ProtocolError("shm+unix:" + std::string(path) +
                        ": the server's handshake is not conduit's (wrong magic or no memfd)");
  const std::size_t capacity = handshake.capacity;
  if (capacity < 4096 || capacity > kLargestCapacity || (capacity & (capacity - 1)) != 0)
    throw ProtocolError("shm+unix:" + std::string(path) + ": the server announced rings of " +
                        std::to_string(capacity) + " bytes, not a power of two in 4 KiB..1 GiB");
  ipc::SharedMemory memory = ipc::SharedMemory::adopt(std::move(fds.front()));
  const std::size_t footprint = ShmRing::footprint(capacity);
  if (memory.size() != 2 * footprint || !memory.size_sealed())
    throw ProtocolError("shm+unix:" + std::string(path) +
                        ": the shared memory passed is not the size announced, or not sealed");
  ipc::Mapping mapping = memory.map();
  auto cancellation = std::make_unique<ipc::Cancellation>();
  ShmRing out = ShmRing::attach(ring_at(mapping, 0, capacity), footprint, ShmRing::Role::producer,
                                options_for(*cancellation, socket.fd()));
  ShmRing in = ShmRing::attach(ring_at(mapping, 1, capacity), footprint, ShmRing::Role::consumer,
                               options_for(*cancellation, socket.fd()));
  if (::send(socket.fd(), kAttached, sizeof kAttached, MSG_NOSIGNAL) !=
      static_cast<ssize_t>(sizeof kAttached))
    throw PeerGone("shm+unix:" + std::string(path) +
                   ": the server closed the connection during the handshake");
  return Link(socket.release(), std::move(mapping), std::move(out), std::move(in),
              std::move(cancellation));
}

}  // namespace conduit::rpc::shm
