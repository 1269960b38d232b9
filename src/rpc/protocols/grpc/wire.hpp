// gRPC's pieces on top of HTTP/2 (the "gRPC over HTTP2" protocol
// description): the length-prefixed message framing, grpc-timeout values,
// and the percent-encoding of grpc-message. Independent of any transport.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace conduit::rpc::grpc {

// The HTTP/2 client connection preface, which a gRPC connection opens with.
inline constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

// A grpc-timeout value: at most eight digits and a unit (H, M, S, m, u, n).
// std::nullopt when `text` is not one. A value longer than nanoseconds hold
// (from 2,562,048 hours, about 292 years) is std::chrono::nanoseconds::max().
std::optional<std::chrono::nanoseconds> parse_timeout(std::string_view text);
// The shortest grpc-timeout value not shorter than `timeout` (at least 1n).
std::string format_timeout(std::chrono::nanoseconds timeout);

// grpc-message: bytes outside printable ASCII, and '%', as %XX.
std::string percent_encode(std::string_view text);
// The reverse; a '%' not followed by two hex digits stays as it is (the
// protocol asks receivers to keep what they cannot decode).
std::string percent_decode(std::string_view text);

// Metadata whose key ends in "-bin" carries bytes, base64-encoded on the
// wire. Decoding takes padded and unpadded text (gRPC peers send either);
// std::nullopt when `text` is not base64.
bool is_binary_header(std::string_view key);
std::string base64_encode(std::string_view bytes);
std::optional<std::string> base64_decode(std::string_view text);

// grpc-encoding "gzip". Decompression stops (std::nullopt) at malformed
// input and at output beyond `max_output` bytes (a gzip bomb), `too_large`
// telling which.
std::string gzip_compress(std::string_view bytes);
std::optional<std::string> gzip_decompress(std::string_view bytes, std::size_t max_output,
                                           bool& too_large);

// One message as it travels: a compressed flag, a 4-byte big-endian length,
// then the bytes.
std::string frame_message(std::string_view payload, bool compressed = false);

// Splits a byte stream into messages.
class MessageDeframer {
 public:
  enum class Result { message, need_more, too_large };

  // `max_message_bytes`: a longer message is refused before it arrives.
  explicit MessageDeframer(std::size_t max_message_bytes) : max_(max_message_bytes) {}

  void append(std::string_view bytes) { buffer_.append(bytes); }
  // The next whole message in `payload` (valid until the next call).
  Result next(bool& compressed, std::string& payload);
  // Whether bytes of a message not yet whole are held.
  bool partial() const { return !buffer_.empty(); }
  // Whether next() would return at once with a message (or too_large).
  bool whole() const;
  // The length the last too_large message announced.
  std::uint64_t announced() const { return announced_; }

 private:
  std::size_t max_;
  std::string buffer_;
  std::uint64_t announced_ = 0;
};

}  // namespace conduit::rpc::grpc
