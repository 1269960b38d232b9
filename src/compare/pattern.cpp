#include <algorithm>
#include <cstring>

#include "compare/endpoint.hpp"
#include "conduit/ipc/shm_ring.hpp"

namespace conduit::compare {

namespace {

// Mixed into the trailing stamp, so a message whose two ends were swapped or
// copied from another message does not match.
constexpr std::uint64_t kTailMix = 0x9E3779B97F4A7C15ull;

}  // namespace

Pattern::Pattern(std::size_t largest) : bytes_(std::max(largest, kMinimumSize)) {
  std::uint64_t state = 0x2545F4914F6CDD1Dull;
  for (auto& byte : bytes_) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    byte = static_cast<std::byte>(state);
  }
}

void Pattern::build(std::span<std::byte> out, std::uint64_t index, bool streaming) const {
  const std::size_t size = out.size();
  if (streaming)
    ipc::copy_streaming(out.data(), bytes_.data(), size);
  else
    std::memcpy(out.data(), bytes_.data(), size);
  const std::uint64_t tail = index ^ kTailMix;
  std::memcpy(out.data(), &index, sizeof index);
  std::memcpy(out.data() + size - sizeof tail, &tail, sizeof tail);
}

std::uint64_t Pattern::index_of(std::span<const std::byte> message) {
  std::uint64_t index = kQuit - 1;  // no valid index: a short message
  if (message.size() >= sizeof index) std::memcpy(&index, message.data(), sizeof index);
  return index;
}

bool Pattern::matches(std::span<const std::byte> message, std::uint64_t index,
                      std::size_t size) const {
  if (message.size() != size || size < kMinimumSize || size > bytes_.size()) return false;
  std::uint64_t head, tail;
  std::memcpy(&head, message.data(), sizeof head);
  std::memcpy(&tail, message.data() + size - sizeof tail, sizeof tail);
  return head == index && tail == (index ^ kTailMix) &&
         std::memcmp(message.data() + 8, bytes_.data() + 8, size - 16) == 0;
}

}  // namespace conduit::compare
