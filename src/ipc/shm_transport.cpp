#include "shm_transport.hpp"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <bit>
#include <cerrno>
#include <thread>

#include "conduit/error.hpp"
#include "conduit/ipc/shared_memory.hpp"
#include "conduit/ipc/shm_ring.hpp"
#include "leftovers.hpp"

namespace conduit::ipc {
namespace {

constexpr std::uint64_t kControlMagic = 0x4c52544e43544e43ull;  // "CNTCNTRL"
constexpr std::size_t kDefaultCapacity = 4 << 20;
constexpr std::size_t kMaxCapacity = std::size_t{1} << 30;
constexpr auto kPollInterval = std::chrono::milliseconds(20);

// At the start of the segment; the rings follow, each on a 64-byte boundary.
struct alignas(64) ControlBlock {
  std::uint64_t magic;
  std::uint64_t capacity;
  std::atomic<std::int32_t> client_pid;  // 0: the slot is free
  std::atomic<std::uint32_t> claimed;    // futex word the server sleeps on
  std::atomic<std::int32_t> server_pid;  // the process that made the segment
  std::uint64_t server_pid_namespace;    // where server_pid means that process
};

std::size_t segment_size(std::size_t capacity) {
  return sizeof(ControlBlock) + 2 * ShmRing::footprint(capacity);
}

void* ring_at(const Mapping& mapping, int index, std::size_t capacity) {
  return mapping.bytes() + sizeof(ControlBlock) + index * ShmRing::footprint(capacity);
}

std::string segment_name(const Uri& uri) {
  return uri.path;
}

// True when the server the control block names is gone.
bool server_gone(const ControlBlock& control) {
  std::int32_t server = control.server_pid.load();
  return server > 0 && process_gone(server, control.server_pid_namespace);
}

// The server pid the segment `name` records, and whether that server is
// gone; a pid of 0 when it holds no shm: channel (or its server has not
// written the control block yet).
std::pair<std::int32_t, bool> server_of(const std::string& name) {
  SharedMemory segment = SharedMemory::open(name);
  if (segment.size() < sizeof(ControlBlock)) return {0, false};
  Mapping mapping = segment.map();
  auto* control = static_cast<ControlBlock*>(mapping.data());
  if (std::atomic_ref<std::uint64_t>(control->magic).load(std::memory_order_acquire) !=
      kControlMagic)
    return {0, false};
  return {control->server_pid.load(), server_gone(*control)};
}

// Creates the segment for a server, taking over one that a killed server
// left behind (the pid it records is gone); a live server's is refused.
SharedMemory create_segment(const Uri& uri, std::size_t size, mode_t mode) {
  std::string name = segment_name(uri);
  try {
    return SharedMemory::create(name, size, mode);
  } catch (const SystemError& error) {
    if (error.code() != EEXIST) throw;
  }
  auto [server, gone] = server_of(name);
  if (server == 0)
    throw SystemError("listen", uri.str(), EADDRINUSE,
                      "/dev/shm" + name +
                          " exists and is not the segment of a shm: server; remove it if "
                          "nothing uses it, or choose another name");
  if (!gone)
    throw SystemError("listen", uri.str(), EADDRINUSE,
                      "another server (pid " + std::to_string(server) +
                          ") is serving on this segment; stop it or choose another name");
  SharedMemory::open(name).unlink();
  return SharedMemory::create(name, size, mode);
}

// Throws when the server that made the segment is gone.
void check_server_alive(const ControlBlock& control, const Uri& uri) {
  if (server_gone(control))
    throw SystemError(
        "connect", uri.str(), ECONNREFUSED,
        server_gone_hint(control.server_pid.load(), "/dev/shm" + segment_name(uri), uri.str()));
}

ShmRingOptions ring_options(const ChannelOptions& options) {
  ShmRingOptions ring;
  ring.cancellation = options.cancellation;
  return ring;
}

class ShmTransport final : public Transport {
 public:
  ShmTransport(std::shared_ptr<const Mapping> mapping, ShmRing out, ShmRing in, std::string uri,
               std::size_t max_message_size)
      : Transport(std::move(uri), std::min(max_message_size, out.max_message_size()), nullptr),
        mapping_(std::move(mapping)),
        out_(std::move(out)),
        in_(std::move(in)) {}

  void send(std::span<const std::byte> message) override {
    check_send_size(message.size());
    out_.send(message);
  }

  Received receive(std::chrono::nanoseconds timeout) override {
    Received received = in_.consume(timeout);
    if (received.status == ReceiveStatus::message && received.message.size() > max_message_size_)
      throw MessageTooLarge("receive(" + uri_ + "): a " + std::to_string(received.message.size()) +
                            "-byte message exceeds the maximum of " +
                            std::to_string(max_message_size_));
    return received;
  }

 private:
  std::shared_ptr<const Mapping> mapping_;  // outlives the rings inside it
  ShmRing out_;
  ShmRing in_;
};

class ShmListener final : public ListenerImpl {
 public:
  ShmListener(const Uri& uri, const Settings& settings, const ChannelOptions& options)
      : uri_(uri.str()),
        settings_(settings),
        options_(options),
        capacity_(shm_ring_capacity(uri, settings)) {
    segment_ = create_segment(uri, segment_size(capacity_), settings.mode);
    mapping_ = std::make_shared<const Mapping>(segment_.map());
    auto* control = new (mapping_->data()) ControlBlock{};
    control->capacity = capacity_;
    control->client_pid.store(-1);  // no slot open until accept()
    control->server_pid.store(::getpid());
    control->server_pid_namespace = pid_namespace();
    std::atomic_ref<std::uint64_t>(control->magic).store(kControlMagic, std::memory_order_release);
  }

  std::optional<Channel> accept(std::chrono::nanoseconds timeout) override {
    auto* control = static_cast<ControlBlock*>(mapping_->data());
    ShmRing::format(ring_at(*mapping_, 0, capacity_), capacity_);
    ShmRing::format(ring_at(*mapping_, 1, capacity_), capacity_);
    control->claimed.store(0);
    control->client_pid.store(0);  // open the slot
    Deadline deadline(timeout);
    for (;;) {
      if (control->claimed.load() != 0) break;
      if (options_.cancellation && options_.cancellation->cancelled())
        throw Cancelled("accept on " + uri_ + " was cancelled");
      int left = deadline.poll_timeout_ms();
      if (left == 0) {
        std::int32_t open = 0;
        // Close the slot unless a client took it at the last moment.
        if (control->client_pid.compare_exchange_strong(open, -1)) return std::nullopt;
        continue;
      }
      auto slice =
          left < 0 ? kPollInterval : std::min(kPollInterval, std::chrono::milliseconds(left));
      timespec wait{0, static_cast<long>(slice.count()) * 1000000};
      ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&control->claimed), FUTEX_WAIT, 0,
                &wait, nullptr, 0);
    }
    std::size_t footprint = ShmRing::footprint(capacity_);
    ShmRing in = ShmRing::attach(ring_at(*mapping_, 0, capacity_), footprint,
                                 ShmRing::Role::consumer, ring_options(options_));
    ShmRing out = ShmRing::attach(ring_at(*mapping_, 1, capacity_), footprint,
                                  ShmRing::Role::producer, ring_options(options_));
    return Channel(std::make_unique<ShmTransport>(mapping_, std::move(out), std::move(in), uri_,
                                                  settings_.max_message_size));
  }

  PeerModel peer_model() const override { return PeerModel::sequential; }
  std::string uri() const override { return uri_; }

 private:
  std::string uri_;
  Settings settings_;
  ChannelOptions options_;
  std::size_t capacity_;
  SharedMemory segment_;
  std::shared_ptr<const Mapping> mapping_;
};

}  // namespace

std::size_t shm_ring_capacity(const Uri& uri, const Settings& settings) {
  if (!uri.has_option("max")) return kDefaultCapacity;
  std::size_t wanted = std::bit_ceil(2 * (settings.max_message_size + 8));
  if (wanted > kMaxCapacity)
    throw InvalidUri("shm: max=" + uri.options.at("max") + " needs rings of " +
                     std::to_string(wanted) + " bytes; the most shm: allocates is 1 GiB");
  return std::max<std::size_t>(wanted, 64 * 1024);
}

std::unique_ptr<ListenerImpl> listen_shm(const Uri& uri, const Settings& settings,
                                         const ChannelOptions& options) {
  return std::make_unique<ShmListener>(uri, settings, options);
}

std::unique_ptr<Transport> connect_shm(const Uri& uri, const Settings& settings,
                                       const ChannelOptions& options) {
  // A server that has just created the segment may not have sized it or
  // written the control block yet (fresh memory reads as zeros): wait for it
  // rather than mistake it for something else.
  Deadline deadline(options.connect_timeout);
  std::shared_ptr<const Mapping> mapping;
  ControlBlock* control = nullptr;
  for (;;) {
    SharedMemory segment;
    try {
      segment = SharedMemory::open(segment_name(uri));
    } catch (const SystemError& error) {
      if (error.code() == ENOENT)
        throw SystemError("shm_open", uri.str(), ENOENT, "no such segment: is the server running?");
      throw;
    }
    if (segment.size() >= sizeof(ControlBlock)) {
      mapping = std::make_shared<const Mapping>(segment.map());
      control = static_cast<ControlBlock*>(mapping->data());
      if (std::atomic_ref<std::uint64_t>(control->magic).load(std::memory_order_acquire) != 0)
        break;
    }
    if (deadline.poll_timeout_ms() == 0)
      throw ProtocolError("connect(" + uri.str() +
                          "): the segment is empty: not a shm: channel, or its server hung");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::size_t capacity = control->capacity;
  if (control->magic != kControlMagic || !std::has_single_bit(capacity) ||
      segment_size(capacity) > mapping->size())
    throw ProtocolError("connect(" + uri.str() + "): the segment does not hold a shm: channel");

  for (;;) {
    check_server_alive(*control, uri);
    std::int32_t free_slot = 0;
    if (control->client_pid.compare_exchange_strong(free_slot, ::getpid())) break;
    // Taken by another client (or closed between two accepts): wait. A client
    // that died holding the slot is noticed by the server, which re-opens it.
    if (deadline.poll_timeout_ms() == 0)
      throw Error("connect(" + uri.str() + "): the server is busy with another client (pid " +
                  std::to_string(free_slot) + ") or not accepting; try again later");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::size_t footprint = ShmRing::footprint(capacity);
  ShmRing out = ShmRing::attach(ring_at(*mapping, 0, capacity), footprint, ShmRing::Role::producer,
                                ring_options(options));
  ShmRing in = ShmRing::attach(ring_at(*mapping, 1, capacity), footprint, ShmRing::Role::consumer,
                               ring_options(options));
  control->claimed.store(1);
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&control->claimed), FUTEX_WAKE, 1, nullptr,
            nullptr, 0);
  return std::make_unique<ShmTransport>(std::move(mapping), std::move(out), std::move(in),
                                        uri.str(), settings.max_message_size);
}

}  // namespace conduit::ipc
