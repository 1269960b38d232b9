// ShmRing: a lock-free single-producer single-consumer ring of variable-size
// messages in shared memory — the fastest way conduit moves messages between
// two processes.
//
// Layout (all in the shared segment): a header with the magic, the capacity,
// the write position (head) and the read position (tail) on separate cache
// lines, the sleep flags and both sides' pids; then `capacity` bytes of data.
// Each message is an 8-byte record header (length, kind) and the payload,
// padded to 8 bytes. A message never wraps: when it does not fit before the
// end of the data area, a padding record fills the rest and the message starts
// at offset 0, so every message is contiguous and can be loaned or consumed in
// place. Hence max_message_size() is capacity / 2 less the record header.
//
// Waiting: a side that must wait (no data, no space) spins for a bounded time
// (ShmRingOptions::spin), then sets its "waiting" flag and sleeps on a futex;
// the other side clears the flag before it calls futex wake, so each sleep
// costs at most one wake-up.
//
// Failure: a message becomes visible only when committed whole, so a producer
// that dies mid-write never delivers a torn message; the consumer drains what
// was committed and then gets PeerGone. A producer blocked on a full ring
// whose consumer dies gets PeerGone too. Death is noticed within
// ShmRingOptions::liveness_interval by watching the peer through a pidfd of
// the pid it recorded, or through ShmRingOptions::peer_watch when given (a
// pid in shared memory is what the peer says of itself; a descriptor is
// what the kernel says).
// Positions and record headers read from shared memory are validated: a
// corrupted (or hostile) peer yields ProtocolError, never an access outside
// the ring.
//
// Threads: one producer thread and one consumer thread per ring.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "conduit/ipc/channel.hpp"
#include "conduit/ipc/file_descriptor.hpp"

namespace conduit::ipc {

struct ShmRingHeader;  // the shared layout, defined in the library
class Deadline;

struct ShmRingOptions {
  // How long a waiting side polls before it sleeps on the futex. Spinning
  // trades CPU for latency: waking a sleeping process on another core costs
  // tens of microseconds on virtual machines. 0 sleeps at once; conduit also
  // sleeps at once when only one CPU is usable, since spinning then only
  // delays the peer.
  std::chrono::nanoseconds spin = std::chrono::microseconds(50);
  // How often a sleeping side checks that its peer is still alive (and the
  // cancellation below).
  std::chrono::milliseconds liveness_interval{50};
  // When set, a waiting operation throws Cancelled within liveness_interval
  // of cancel().
  const Cancellation* cancellation = nullptr;
  // A descriptor the kernel marks when the peer is gone, which then alone
  // judges the peer's liveness: the pid the peer recorded in the ring is not
  // consulted. A pidfd of the peer becomes readable when it exits; a
  // connected socket whose other end only the peer holds hangs up when the
  // peer closes it or dies. The peer counts as gone once the descriptor is
  // readable, hung up or in error, so a socket watched this way must carry
  // nothing more. Not owned: it must stay open while the ring is. -1: the
  // recorded pid.
  int peer_watch = -1;
  // send() copies messages of at least this many bytes with non-temporal
  // (streaming) stores, which write to memory instead of leaving the message
  // dirty in the producer's cache. That pays when producer and consumer run
  // on cores that share no cache (on a 2-vCPU EPYC VM, 1 MiB messages move
  // about 3x faster) and costs when they share one; bench/shm_ring_bench
  // shows which holds on a machine. SIZE_MAX turns it off. x86-64 only.
  std::size_t streaming_copy_from = 256 * 1024;
};

// Copies `size` bytes with non-temporal (streaming) stores where the CPU has
// them (x86-64), so the copy goes to memory rather than staying dirty in this
// core's cache; a plain memcpy elsewhere. Every byte is visible to a release
// store made after it returns. What send() uses from
// ShmRingOptions::streaming_copy_from bytes on.
void copy_streaming(std::byte* to, const std::byte* from, std::size_t size);

class ShmRing {
 public:
  enum class Role { producer, consumer };

  // Bytes of shared memory a ring with `capacity` data bytes needs.
  // REQUIRES: capacity is a power of two, at least 4096.
  static std::size_t footprint(std::size_t capacity);

  // Writes a fresh, empty ring into memory (footprint(capacity) bytes,
  // 64-byte aligned). Throws Error when capacity is not a power of two >= 4096.
  static void format(void* memory, std::size_t capacity);

  // Attaches to a ring formatted by format() as its producer or consumer and
  // records this process's pid in it. Throws ProtocolError when the memory
  // does not hold a valid ring (bad magic or version, a capacity that does
  // not match size) and Error when the role is already taken by a live
  // process.
  static ShmRing attach(void* memory, std::size_t size, Role role, ShmRingOptions options = {});

  ShmRing(ShmRing&& other) noexcept;
  ShmRing& operator=(ShmRing&& other) noexcept;
  ShmRing(const ShmRing&) = delete;
  ShmRing& operator=(const ShmRing&) = delete;
  // Closes this side (see close()).
  ~ShmRing();

  std::size_t capacity() const { return capacity_; }
  std::size_t max_message_size() const;

  // ---- producer ----

  // Copies message into the ring, waiting at most timeout for space. Returns
  // false on timeout. Throws MessageTooLarge, PeerGone, ProtocolError.
  bool send(std::span<const std::byte> message, std::chrono::nanoseconds timeout = kWaitForever);

  // Reserves room for a message of up to `size` bytes and returns it to be
  // written in place (zero copy); std::nullopt on timeout. Nothing is
  // visible to the consumer until commit(). Throws like send().
  std::optional<std::span<std::byte>> loan(std::size_t size,
                                           std::chrono::nanoseconds timeout = kWaitForever);
  // Publishes the loaned message with its final length (<= the loaned size).
  // REQUIRES: a loan() is outstanding.
  void commit(std::size_t size);

  // ---- consumer ----

  // Waits at most timeout for the next message and returns a view of it in
  // the ring (zero copy), valid until release() or the next consume() or
  // receive(), which release it. `closed` once the producer closed and every
  // message has been consumed. Throws PeerGone when the producer died (after
  // every committed message was consumed), ProtocolError on corruption.
  Received consume(std::chrono::nanoseconds timeout = kWaitForever);
  // Frees the space of the message returned by consume().
  void release();

  // Copying receive: the message is copied into `out` (resized) and its
  // space freed at once.
  ReceiveStatus receive(std::vector<std::byte>& out,
                        std::chrono::nanoseconds timeout = kWaitForever);

  // Makes the consume() or receive() waiting now, or else the next one that
  // would wait, return timed_out at once: a thread that serves the ring and
  // other work (an event loop fed by other threads) is called back to it.
  // Any thread of the consumer's process may call it while the ring is open;
  // it costs a system call only when the consumer sleeps on the futex.
  void interrupt() noexcept;

  // Marks this side closed and wakes the peer: a consumer sees `closed` after
  // the last message; a producer's next send throws PeerGone. Idempotent.
  void close() noexcept;

 private:
  ShmRing(ShmRingHeader* header, Role role, ShmRingOptions options);
  enum class Wait { ready, timed_out, closed };
  // Waits until ready() or the deadline. `closed`: the producer closed (seen
  // by the consumer only). Throws PeerGone when the peer died, or when the
  // consumer closed (seen by the producer).
  template <typename Ready>
  Wait wait(Ready ready, const Deadline& deadline);
  bool peer_alive();
  void wake_peer();
  [[noreturn]] void corrupted(const char* what) const;

  ShmRingHeader* header_ = nullptr;
  std::byte* data_ = nullptr;
  std::size_t capacity_ = 0;
  Role role_ = Role::producer;
  ShmRingOptions options_;
  std::uint64_t position_ = 0;  // producer: head; consumer: tail (local copies)
  // The peer's position as last read (producer: tail; consumer: head). Both
  // only grow, so a stale copy is safe, and the shared line is read again
  // only when the copy says the ring is full (producer) or empty (consumer).
  std::uint64_t peer_position_ = 0;
  std::uint64_t loan_start_ = 0;  // producer: record start of the open loan
  std::size_t loan_size_ = 0;
  bool loaned_ = false;
  std::uint64_t pending_release_ = 0;  // consumer: bytes to free on release()
  // consumer: set by interrupt(); on the heap, so that it stays put when
  // the ring is moved.
  std::unique_ptr<std::atomic<bool>> interrupted_ = std::make_unique<std::atomic<bool>>(false);
  FileDescriptor peer_;  // pidfd of the peer, once it attached
  int peer_pid_ = 0;
  bool spin_ = true;
};

}  // namespace conduit::ipc
