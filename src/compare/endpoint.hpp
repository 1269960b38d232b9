// One side of a conversation between two processes, through conduit or
// through the bare system calls of the same mechanism. The measuring loops
// (loops.hpp) are written once against this interface, so conduit and its raw
// baseline run exactly the same loop.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace conduit::compare {

class Endpoint {
 public:
  virtual ~Endpoint() = default;

  // Where to build the next outgoing message of `size` bytes: a buffer of the
  // endpoint's, or (zero-copy mechanisms) the place in shared memory the
  // message will be read from.
  virtual std::span<std::byte> prepare(std::size_t size) = 0;
  // Sends the `size` bytes built in the span prepare() returned.
  virtual void send(std::size_t size) = 0;
  // Waits for the next whole message. Throws Error when the peer is gone or
  // nothing arrives within the endpoint's timeout. The span is valid until
  // release().
  virtual std::span<const std::byte> receive() = 0;
  // The caller is done with what receive() returned.
  virtual void release() {}
  // Whether prepare() hands out shared memory that the peer reads on another
  // core: large messages are then best written with streaming stores, as
  // ShmRing::send does (see ShmRingOptions::streaming_copy_from).
  virtual bool builds_in_shared_memory() const { return false; }
};

// Sets up a connection between this process and a peer process that does not
// exist yet: the constructor runs before fork(), peer() only in the child,
// driver() only in the parent.
class Link {
 public:
  virtual ~Link() = default;
  virtual std::unique_ptr<Endpoint> driver() = 0;
  virtual std::unique_ptr<Endpoint> peer() = 0;
};

// A buffer an Endpoint can hand out from prepare(), grown on demand.
class MessageBuffer {
 public:
  std::span<std::byte> take(std::size_t size) {
    if (bytes_.size() < size) bytes_.resize(size);
    return {bytes_.data(), size};
  }
  std::byte* data() { return bytes_.data(); }

 private:
  std::vector<std::byte> bytes_;
};

// The bytes every message is built from. Message i of size n is the pattern's
// first n bytes with i stamped over the first 8 and (mixed) over the last 8,
// so a lost, duplicated, reordered, truncated or corrupted message fails the
// check. Messages are at least kMinimumSize bytes.
class Pattern {
 public:
  static constexpr std::size_t kMinimumSize = 16;
  // Indexes that are not data: the end of a throughput round, and the end of
  // the conversation.
  static constexpr std::uint64_t kEndOfRound = ~std::uint64_t{0};
  static constexpr std::uint64_t kQuit = ~std::uint64_t{0} - 1;

  explicit Pattern(std::size_t largest);

  // Builds message `index` of out.size() bytes in `out`, with streaming
  // stores when `streaming`.
  void build(std::span<std::byte> out, std::uint64_t index, bool streaming = false) const;
  // The index of a message built by build(); does not check the body.
  static std::uint64_t index_of(std::span<const std::byte> message);
  // Whether `message` is exactly message `index` of `size` bytes.
  bool matches(std::span<const std::byte> message, std::uint64_t index, std::size_t size) const;

 private:
  std::vector<std::byte> bytes_;
};

}  // namespace conduit::compare
