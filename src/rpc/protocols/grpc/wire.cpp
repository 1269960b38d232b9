#include "rpc/protocols/grpc/wire.hpp"

#include <zlib.h>

#include <algorithm>
#include <iterator>
#include <utility>

namespace conduit::rpc::grpc {

std::optional<std::chrono::nanoseconds> parse_timeout(std::string_view text) {
  if (text.size() < 2 || text.size() > 9) return std::nullopt;
  std::int64_t value = 0;
  for (char c : text.substr(0, text.size() - 1)) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + (c - '0');
  }
  using namespace std::chrono;
  // Eight digits of hours hold more nanoseconds than an int64 does: such a
  // timeout saturates (no deadline worth tracking) rather than wrapping.
  const auto in = [value](auto unit) -> std::optional<nanoseconds> {
    const std::int64_t per = duration_cast<nanoseconds>(decltype(unit)(1)).count();
    if (value > nanoseconds::max().count() / per) return nanoseconds::max();
    return nanoseconds(value * per);
  };
  switch (text.back()) {
    case 'H':
      return in(hours(1));
    case 'M':
      return in(minutes(1));
    case 'S':
      return in(seconds(1));
    case 'm':
      return in(milliseconds(1));
    case 'u':
      return in(microseconds(1));
    case 'n':
      return nanoseconds(value);
    default:
      return std::nullopt;
  }
}

std::string format_timeout(std::chrono::nanoseconds timeout) {
  constexpr std::int64_t kMaxValue = 99'999'999;  // eight digits
  std::int64_t value = std::max<std::int64_t>(timeout.count(), 1);
  // Each unit and how many of the previous one it holds.
  constexpr std::pair<char, std::int64_t> kUnits[] = {{'n', 1},    {'u', 1000}, {'m', 1000},
                                                      {'S', 1000}, {'M', 60},   {'H', 60}};
  std::size_t unit = 0;
  while (value > kMaxValue && unit + 1 < std::size(kUnits)) {
    ++unit;
    const std::int64_t per = kUnits[unit].second;
    value = (value + per - 1) / per;  // rounded up: never shorter
  }
  return std::to_string(std::min(value, kMaxValue)) + kUnits[unit].first;
}

std::string percent_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string encoded;
  encoded.reserve(text.size());
  for (unsigned char c : text) {
    if (c >= 0x20 && c <= 0x7E && c != '%') {
      encoded += static_cast<char>(c);
    } else {
      encoded += '%';
      encoded += kHex[c >> 4];
      encoded += kHex[c & 0xF];
    }
  }
  return encoded;
}

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string percent_decode(std::string_view text) {
  std::string decoded;
  decoded.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size()) {
      const int high = hex_value(text[i + 1]);
      const int low = hex_value(text[i + 2]);
      if (high >= 0 && low >= 0) {
        decoded += static_cast<char>(high * 16 + low);
        i += 2;
        continue;
      }
    }
    decoded += text[i];
  }
  return decoded;
}

bool is_binary_header(std::string_view key) {
  return key.size() > 4 && key.substr(key.size() - 4) == "-bin";
}

namespace {

constexpr char kBase64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

}  // namespace

std::string base64_encode(std::string_view bytes) {
  std::string text;
  text.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const std::uint32_t group = (std::uint32_t{static_cast<std::uint8_t>(bytes[i])} << 16) |
                                (std::uint32_t{static_cast<std::uint8_t>(bytes[i + 1])} << 8) |
                                static_cast<std::uint8_t>(bytes[i + 2]);
    for (int shift : {18, 12, 6, 0}) text += kBase64[(group >> shift) & 0x3F];
  }
  if (const std::size_t left = bytes.size() - i; left > 0) {
    std::uint32_t group = std::uint32_t{static_cast<std::uint8_t>(bytes[i])} << 16;
    if (left == 2) group |= std::uint32_t{static_cast<std::uint8_t>(bytes[i + 1])} << 8;
    text += kBase64[(group >> 18) & 0x3F];
    text += kBase64[(group >> 12) & 0x3F];
    text += left == 2 ? kBase64[(group >> 6) & 0x3F] : '=';
    text += '=';
  }
  return text;
}

std::optional<std::string> base64_decode(std::string_view text) {
  while (!text.empty() && text.back() == '=') text.remove_suffix(1);
  if (text.size() % 4 == 1) return std::nullopt;
  std::string bytes;
  bytes.reserve(text.size() * 3 / 4);
  std::uint32_t group = 0;
  int bits = 0;
  for (char c : text) {
    const int value = base64_value(c);
    if (value < 0) return std::nullopt;
    group = (group << 6) | static_cast<std::uint32_t>(value);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      bytes += static_cast<char>((group >> bits) & 0xFF);
    }
  }
  return bytes;
}

std::string gzip_compress(std::string_view bytes) {
  z_stream stream{};
  // 16 + MAX_WBITS: a gzip header and trailer around the deflate data.
  if (deflateInit2(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8,
                   Z_DEFAULT_STRATEGY) != Z_OK)
    return {};
  std::string out(deflateBound(&stream, static_cast<uLong>(bytes.size())) + 32, '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  stream.avail_in = static_cast<uInt>(bytes.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  deflate(&stream, Z_FINISH);
  out.resize(stream.total_out);
  deflateEnd(&stream);
  return out;
}

std::optional<std::string> gzip_decompress(std::string_view bytes, std::size_t max_output,
                                           bool& too_large) {
  too_large = false;
  z_stream stream{};
  if (inflateInit2(&stream, 16 + MAX_WBITS) != Z_OK) return std::nullopt;
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  stream.avail_in = static_cast<uInt>(bytes.size());
  std::string out;
  char chunk[16384];
  int result = Z_OK;
  while (result == Z_OK) {
    stream.next_out = reinterpret_cast<Bytef*>(chunk);
    stream.avail_out = sizeof chunk;
    result = inflate(&stream, Z_NO_FLUSH);
    if (result != Z_OK && result != Z_STREAM_END) break;
    out.append(chunk, sizeof chunk - stream.avail_out);
    if (out.size() > max_output) {
      too_large = true;
      break;
    }
    if (result == Z_OK && stream.avail_in == 0 && stream.avail_out != 0) break;  // cut short
  }
  inflateEnd(&stream);
  if (result != Z_STREAM_END || too_large) return std::nullopt;
  return out;
}

std::string frame_message(std::string_view payload, bool compressed) {
  std::string framed;
  framed.reserve(5 + payload.size());
  const auto length = static_cast<std::uint32_t>(payload.size());
  framed += static_cast<char>(compressed ? 1 : 0);
  framed += static_cast<char>(length >> 24);
  framed += static_cast<char>(length >> 16);
  framed += static_cast<char>(length >> 8);
  framed += static_cast<char>(length);
  framed += payload;
  return framed;
}

namespace {

// The length a message's 5-byte prefix at the start of `buffer` announces.
std::uint64_t announced_length(const std::string& buffer) {
  const auto byte = [&](std::size_t i) {
    return std::uint64_t{static_cast<std::uint8_t>(buffer[i])};
  };
  return (byte(1) << 24) | (byte(2) << 16) | (byte(3) << 8) | byte(4);
}

}  // namespace

bool MessageDeframer::whole() const {
  if (buffer_.size() < 5) return false;
  const std::uint64_t length = announced_length(buffer_);
  return length > max_ || buffer_.size() >= 5 + length;
}

MessageDeframer::Result MessageDeframer::next(bool& compressed, std::string& payload) {
  if (buffer_.size() < 5) return Result::need_more;
  const std::uint64_t length = announced_length(buffer_);
  if (length > max_) {
    announced_ = length;
    return Result::too_large;
  }
  if (buffer_.size() < 5 + length) return Result::need_more;
  compressed = buffer_[0] != 0;
  payload.assign(buffer_, 5, length);
  buffer_.erase(0, 5 + length);
  return Result::message;
}

}  // namespace conduit::rpc::grpc
