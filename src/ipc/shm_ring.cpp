#include "conduit/ipc/shm_ring.hpp"

#include <linux/futex.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <new>
#include <string>

#include "conduit/error.hpp"
#include "transport.hpp"

#if defined(__x86_64__)
#include <emmintrin.h>
#endif

namespace conduit::ipc {

namespace {

constexpr std::uint64_t kMagic = 0x474e4952544e4443ull;  // "CDNTRING"
constexpr std::uint32_t kVersion = 2;
constexpr std::size_t kRecordHeader = 8;
constexpr std::uint32_t kMessage = 1;
constexpr std::uint32_t kPadding = 2;
constexpr std::size_t kMinCapacity = 4096;

struct RecordHeader {
  std::uint32_t length;
  std::uint32_t kind;
};

constexpr std::uint64_t align8(std::uint64_t n) {
  return (n + 7) & ~std::uint64_t{7};
}

bool power_of_two(std::size_t n) {
  return n != 0 && (n & (n - 1)) == 0;
}

long futex(std::atomic<std::uint32_t>* word, int op, std::uint32_t value, const timespec* timeout) {
  return ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), op, value, timeout, nullptr,
                   0);
}

// Spinning helps only when the peer can run at the same time on another CPU.
// A process pinned to one CPU may still face a peer on another, so this looks
// at the CPUs online, not at this process's affinity.
bool several_cpus() {
  static const bool several = ::sysconf(_SC_NPROCESSORS_ONLN) > 1;
  return several;
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

}  // namespace

void copy_streaming(std::byte* to, const std::byte* from, std::size_t size) {
#if defined(__x86_64__)
  const std::size_t lead = std::min(size, (16 - reinterpret_cast<std::uintptr_t>(to) % 16) % 16);
  std::memcpy(to, from, lead);
  std::size_t done = lead;
  for (; done + 64 <= size; done += 64) {
    auto* out = reinterpret_cast<__m128i*>(to + done);
    const auto* in = reinterpret_cast<const __m128i*>(from + done);
    __m128i a = _mm_loadu_si128(in), b = _mm_loadu_si128(in + 1);
    __m128i c = _mm_loadu_si128(in + 2), d = _mm_loadu_si128(in + 3);
    _mm_stream_si128(out, a);
    _mm_stream_si128(out + 1, b);
    _mm_stream_si128(out + 2, c);
    _mm_stream_si128(out + 3, d);
  }
  std::memcpy(to + done, from + done, size - done);
  _mm_sfence();  // non-temporal stores are weakly ordered
#else
  std::memcpy(to, from, size);
#endif
}

// The shared layout. Each side writes only its own cache lines: the producer
// head, producer_waiting's peer flag and its pid; the consumer tail and its own.
// Hot fields sit 128 bytes apart, because x86 cores prefetch cache lines in
// adjacent pairs and 64 bytes apart would still share one pair. (Unused lines
// rather than alignas(128), so that a header needs only the 64-byte alignment
// format() promises.)
struct alignas(64) ShmRingHeader {
  std::uint64_t magic;
  std::uint32_t version;
  std::uint32_t reserved;
  std::uint64_t capacity;
  alignas(64) std::byte unused0[64];
  alignas(64) std::atomic<std::uint64_t> head;  // bytes ever written (producer)
  alignas(64) std::byte unused1[64];
  alignas(64) std::atomic<std::uint64_t> tail;  // bytes ever freed (consumer)
  alignas(64) std::byte unused2[64];
  alignas(64) std::atomic<std::uint32_t> consumer_waiting;  // futex word
  alignas(64) std::byte unused3[64];
  alignas(64) std::atomic<std::uint32_t> producer_waiting;  // futex word
  alignas(64) std::byte unused4[64];
  alignas(64) std::atomic<std::int32_t> producer_pid;
  std::atomic<std::int32_t> consumer_pid;
  std::atomic<std::uint32_t> producer_closed;
  std::atomic<std::uint32_t> consumer_closed;
};

static_assert(offsetof(ShmRingHeader, head) == 128 && offsetof(ShmRingHeader, tail) == 256);

static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);

std::size_t ShmRing::footprint(std::size_t capacity) {
  return sizeof(ShmRingHeader) + capacity;
}

void ShmRing::format(void* memory, std::size_t capacity) {
  if (!power_of_two(capacity) || capacity < kMinCapacity)
    throw Error("ShmRing: capacity " + std::to_string(capacity) +
                " must be a power of two of at least 4096 bytes");
  auto* header = new (memory) ShmRingHeader{};
  header->capacity = capacity;
  header->version = kVersion;
  std::atomic_thread_fence(std::memory_order_release);
  header->magic = kMagic;
}

ShmRing ShmRing::attach(void* memory, std::size_t size, Role role, ShmRingOptions options) {
  auto* header = static_cast<ShmRingHeader*>(memory);
  if (size < sizeof(ShmRingHeader) || header->magic != kMagic)
    throw ProtocolError("ShmRing: the shared memory does not hold a ring (bad magic)");
  if (header->version != kVersion)
    throw ProtocolError("ShmRing: ring version " + std::to_string(header->version) +
                        ", this library speaks " + std::to_string(kVersion));
  std::uint64_t capacity = header->capacity;
  if (!power_of_two(capacity) || capacity < kMinCapacity || footprint(capacity) > size)
    throw ProtocolError("ShmRing: ring header announces a capacity of " + std::to_string(capacity) +
                        " bytes, which does not fit the " + std::to_string(size) + "-byte segment");
  auto& pid = role == Role::producer ? header->producer_pid : header->consumer_pid;
  std::int32_t previous = pid.load();
  if (previous != 0 && previous != ::getpid() && ::kill(previous, 0) == 0) {
    auto& closed = role == Role::producer ? header->producer_closed : header->consumer_closed;
    if (closed.load() == 0)
      throw Error(std::string("ShmRing: the ") +
                  (role == Role::producer ? "producer" : "consumer") +
                  " side is already attached by process " + std::to_string(previous));
  }
  pid.store(::getpid());
  (role == Role::producer ? header->producer_closed : header->consumer_closed).store(0);
  return ShmRing(header, role, options);
}

ShmRing::ShmRing(ShmRingHeader* header, Role role, ShmRingOptions options)
    : header_(header),
      data_(reinterpret_cast<std::byte*>(header) + sizeof(ShmRingHeader)),
      capacity_(header->capacity),
      role_(role),
      options_(options),
      position_(role == Role::producer ? header->head.load() : header->tail.load()),
      peer_position_(role == Role::producer ? header->tail.load() : position_),
      spin_(options.spin.count() > 0 && several_cpus()) {}

ShmRing::ShmRing(ShmRing&& other) noexcept
    : header_(std::exchange(other.header_, nullptr)),
      data_(other.data_),
      capacity_(other.capacity_),
      role_(other.role_),
      options_(other.options_),
      position_(other.position_),
      peer_position_(other.peer_position_),
      loan_start_(other.loan_start_),
      loan_size_(other.loan_size_),
      loaned_(other.loaned_),
      pending_release_(other.pending_release_),
      interrupted_(std::move(other.interrupted_)),
      peer_(std::move(other.peer_)),
      peer_pid_(other.peer_pid_),
      spin_(other.spin_) {}

ShmRing& ShmRing::operator=(ShmRing&& other) noexcept {
  if (this != &other) {
    close();
    this->~ShmRing();
    new (this) ShmRing(std::move(other));
  }
  return *this;
}

ShmRing::~ShmRing() {
  close();
}

std::size_t ShmRing::max_message_size() const {
  return capacity_ / 2 - kRecordHeader;
}

void ShmRing::close() noexcept {
  if (!header_) return;
  if (role_ == Role::producer)
    header_->producer_closed.store(1);
  else
    header_->consumer_closed.store(1);
  // Wake the peer whatever its flag says: it must see the close now.
  auto& flag = role_ == Role::producer ? header_->consumer_waiting : header_->producer_waiting;
  flag.store(0);
  futex(&flag, FUTEX_WAKE, 1, nullptr);
  header_ = nullptr;
}

void ShmRing::corrupted(const char* what) const {
  throw ProtocolError(std::string("ShmRing: corrupted ring: ") + what +
                      " (a buggy or hostile peer wrote the shared memory)");
}

bool ShmRing::peer_alive() {
  if (options_.peer_watch >= 0) {
    pollfd watched{options_.peer_watch, POLLIN | POLLRDHUP, 0};
    int ready;
    do ready = ::poll(&watched, 1, 0);
    while (ready < 0 && errno == EINTR);
    return ready == 0;
  }
  const auto& pid_word = role_ == Role::producer ? header_->consumer_pid : header_->producer_pid;
  int pid = pid_word.load();
  if (pid == 0) return true;  // not attached yet
  if (pid != peer_pid_) {
    peer_pid_ = pid;
    peer_.reset(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    if (!peer_) return errno != ESRCH;
  }
  if (!peer_) return ::kill(pid, 0) == 0 || errno != ESRCH;
  pollfd exited{peer_.get(), POLLIN, 0};
  return ::poll(&exited, 1, 0) == 0;
}

void ShmRing::wake_peer() {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  auto& flag = role_ == Role::producer ? header_->consumer_waiting : header_->producer_waiting;
  if (flag.load(std::memory_order_relaxed) != 0 && flag.exchange(0) != 0)
    futex(&flag, FUTEX_WAKE, 1, nullptr);
}

void ShmRing::interrupt() noexcept {
  if (!header_ || role_ != Role::consumer) return;
  interrupted_->store(true);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  auto& flag = header_->consumer_waiting;
  if (flag.load(std::memory_order_relaxed) != 0 && flag.exchange(0) != 0)
    futex(&flag, FUTEX_WAKE, 1, nullptr);
}

template <typename Ready>
ShmRing::Wait ShmRing::wait(Ready ready, const Deadline& deadline) {
  if (ready()) return Wait::ready;
  if (spin_) {
    auto until = std::chrono::steady_clock::now() + options_.spin;
    for (unsigned i = 1;; ++i) {
      cpu_relax();
      if (ready()) return Wait::ready;
      if ((i & 63) == 0 && std::chrono::steady_clock::now() >= until) break;
    }
  }
  auto& flag = role_ == Role::producer ? header_->producer_waiting : header_->consumer_waiting;
  const auto& peer_closed =
      role_ == Role::producer ? header_->consumer_closed : header_->producer_closed;
  for (;;) {
    flag.store(1);
    if (ready()) {
      flag.store(0, std::memory_order_relaxed);
      return Wait::ready;
    }
    if (peer_closed.load() != 0) {
      flag.store(0, std::memory_order_relaxed);
      if (role_ == Role::producer) throw PeerGone("ShmRing: the consumer closed the ring");
      return ready() ? Wait::ready : Wait::closed;
    }
    if (options_.cancellation && options_.cancellation->cancelled()) {
      flag.store(0, std::memory_order_relaxed);
      throw Cancelled("ShmRing: waiting was cancelled");
    }
    if (!peer_alive()) {
      flag.store(0, std::memory_order_relaxed);
      if (role_ == Role::consumer && ready()) return Wait::ready;  // drain what was committed
      const std::string peer = role_ == Role::producer ? "consumer" : "producer";
      if (options_.peer_watch >= 0)
        throw PeerGone("ShmRing: the " + peer + " is gone (the descriptor watching it hung up)");
      throw PeerGone("ShmRing: the " + peer + " process " + std::to_string(peer_pid_) + " is gone");
    }
    int left_ms = deadline.poll_timeout_ms();
    if (left_ms == 0) {
      flag.store(0, std::memory_order_relaxed);
      return ready() ? Wait::ready : Wait::timed_out;
    }
    auto slice = options_.liveness_interval;
    if (left_ms > 0) slice = std::min(slice, std::chrono::milliseconds(left_ms));
    timespec timeout{static_cast<time_t>(slice.count() / 1000),
                     static_cast<long>(slice.count() % 1000) * 1000000};
    futex(&flag, FUTEX_WAIT, 1, &timeout);
  }
}

std::optional<std::span<std::byte>> ShmRing::loan(std::size_t size,
                                                  std::chrono::nanoseconds timeout) {
  if (role_ != Role::producer || !header_) throw Error("ShmRing::loan: not an open producer");
  if (loaned_) throw Error("ShmRing::loan: the previous loan was not committed");
  if (size > max_message_size())
    throw MessageTooLarge("ShmRing: a message of " + std::to_string(size) +
                          " bytes exceeds the ring's maximum of " +
                          std::to_string(max_message_size()) + " (capacity / 2 - 8)");
  if (header_->consumer_closed.load(std::memory_order_relaxed) != 0)
    throw PeerGone("ShmRing: the consumer closed the ring");
  const std::uint64_t record = align8(kRecordHeader + size);
  const std::uint64_t offset = position_ & (capacity_ - 1);
  const std::uint64_t contiguous = capacity_ - offset;
  const std::uint64_t padding = record <= contiguous ? 0 : contiguous;
  const std::uint64_t needed = padding + record;
  auto room = [&] {
    if (position_ + needed - peer_position_ <= capacity_) return true;
    std::uint64_t tail = header_->tail.load(std::memory_order_acquire);
    if (position_ - tail > capacity_) corrupted("the read position is ahead of the write position");
    peer_position_ = tail;
    return position_ + needed - tail <= capacity_;
  };
  Wait result = wait(room, Deadline(timeout));
  if (result != Wait::ready) return std::nullopt;
  if (padding != 0) {
    RecordHeader pad{static_cast<std::uint32_t>(padding - kRecordHeader), kPadding};
    std::memcpy(data_ + offset, &pad, sizeof pad);
    position_ += padding;
  }
  loan_start_ = position_;
  loan_size_ = size;
  loaned_ = true;
  return std::span<std::byte>(data_ + (position_ & (capacity_ - 1)) + kRecordHeader, size);
}

void ShmRing::commit(std::size_t size) {
  if (!loaned_ || !header_) throw Error("ShmRing::commit: no loan is outstanding");
  if (size > loan_size_)
    throw Error("ShmRing::commit: " + std::to_string(size) + " bytes exceed the loan of " +
                std::to_string(loan_size_));
  RecordHeader record{static_cast<std::uint32_t>(size), kMessage};
  std::memcpy(data_ + (loan_start_ & (capacity_ - 1)), &record, sizeof record);
  position_ = loan_start_ + align8(kRecordHeader + size);
  loaned_ = false;
  header_->head.store(position_, std::memory_order_release);
  wake_peer();
}

bool ShmRing::send(std::span<const std::byte> message, std::chrono::nanoseconds timeout) {
  auto space = loan(message.size(), timeout);
  if (!space) return false;
  if (message.size() >= options_.streaming_copy_from)
    copy_streaming(space->data(), message.data(), message.size());
  else if (!message.empty())
    std::memcpy(space->data(), message.data(), message.size());
  commit(message.size());
  return true;
}

Received ShmRing::consume(std::chrono::nanoseconds timeout) {
  if (role_ != Role::consumer || !header_) throw Error("ShmRing::consume: not an open consumer");
  release();
  Deadline deadline(timeout);
  for (;;) {
    bool interrupted = false;
    auto available = [&] {
      if (peer_position_ != position_) return true;
      std::uint64_t head = header_->head.load(std::memory_order_acquire);
      if (head - position_ > capacity_) corrupted("the write position is beyond the ring");
      peer_position_ = head;
      if (head != position_) return true;
      // Checked after the consumer's waiting flag is raised (wait() raises
      // it before it asks again), so an interrupt() either sees the flag or
      // is seen here.
      if (interrupted_->load() && interrupted_->exchange(false)) interrupted = true;
      return interrupted;
    };
    switch (wait(available, deadline)) {
      case Wait::ready:
        if (interrupted) return Received{ReceiveStatus::timed_out, {}};
        break;
      case Wait::timed_out:
        return Received{ReceiveStatus::timed_out, {}};
      case Wait::closed:
        return Received{ReceiveStatus::closed, {}};
    }
    const std::uint64_t offset = position_ & (capacity_ - 1);
    RecordHeader record;
    std::memcpy(&record, data_ + offset, sizeof record);
    if (record.kind == kPadding) {
      if (offset + kRecordHeader + record.length != capacity_ ||
          position_ + (capacity_ - offset) > peer_position_)
        corrupted("a padding record does not end at the end of the ring");
      position_ += capacity_ - offset;
      header_->tail.store(position_, std::memory_order_release);
      continue;
    }
    const std::uint64_t size = align8(kRecordHeader + record.length);
    if (record.kind != kMessage) corrupted("a record of unknown kind");
    if (record.length > max_message_size() || offset + size > capacity_ ||
        position_ + size > peer_position_)
      corrupted("a record length runs past the written data");
    pending_release_ = size;
    return Received{ReceiveStatus::message, {data_ + offset + kRecordHeader, record.length}};
  }
}

void ShmRing::release() {
  if (pending_release_ == 0 || !header_) return;
  position_ += std::exchange(pending_release_, 0);
  header_->tail.store(position_, std::memory_order_release);
  wake_peer();
}

ReceiveStatus ShmRing::receive(std::vector<std::byte>& out, std::chrono::nanoseconds timeout) {
  Received received = consume(timeout);
  if (received.status == ReceiveStatus::message) {
    out.assign(received.message.begin(), received.message.end());
    release();
  }
  return received.status;
}

}  // namespace conduit::ipc
