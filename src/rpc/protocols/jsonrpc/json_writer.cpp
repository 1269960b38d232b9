#include "rpc/protocols/jsonrpc/json_writer.hpp"

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include <charconv>

#include "rpc/protocols/jsonrpc/utf8.hpp"

namespace conduit::rpc::jsonrpc {

namespace {

constexpr char kHexDigits[] = "0123456789abcdef";

}  // namespace

void JsonWriter::number(std::int64_t value) {
  char digits[24];
  const auto end = std::to_chars(digits, digits + sizeof digits, value).ptr;
  scalar({digits, static_cast<std::size_t>(end - digits)});
}

void JsonWriter::number(std::uint64_t value) {
  char digits[24];
  const auto end = std::to_chars(digits, digits + sizeof digits, value).ptr;
  scalar({digits, static_cast<std::size_t>(end - digits)});
}

bool JsonWriter::key(std::string_view name) {
  const std::size_t mark = out_.size();
  separate();
  if (!quoted(name)) {
    out_.resize(mark);
    return false;
  }
  out_ += ':';
  need_comma_ = false;
  return true;
}

bool JsonWriter::string(std::string_view text) {
  const std::size_t mark = out_.size();
  separate();
  if (!quoted(text)) {
    out_.resize(mark);
    return false;
  }
  need_comma_ = true;
  return true;
}

// Runs of bytes that need nothing are appended whole; the scan for the
// bytes that do (a quote, a backslash, a control character, a byte of a
// multi-byte sequence to check) goes sixteen bytes at a time.
bool JsonWriter::quoted(std::string_view text) {
  out_.reserve(out_.size() + text.size() + 2);
  out_ += '"';
  const char* data = text.data();
  const std::size_t size = text.size();
  std::size_t run = 0;  // the start of the bytes not yet appended
  std::size_t i = 0;
#ifdef __SSE2__
  const __m128i quote = _mm_set1_epi8('"');
  const __m128i backslash = _mm_set1_epi8('\\');
  const __m128i space = _mm_set1_epi8(0x1F);
#endif
  while (i < size) {
#ifdef __SSE2__
    if (i + 16 <= size) {
      const __m128i block = _mm_loadu_si128(reinterpret_cast<const __m128i*>(data + i));
      const __m128i control = _mm_cmpeq_epi8(_mm_max_epu8(block, space), space);
      const __m128i special = _mm_or_si128(
          _mm_or_si128(_mm_cmpeq_epi8(block, quote), _mm_cmpeq_epi8(block, backslash)), control);
      const int mask = _mm_movemask_epi8(special) | _mm_movemask_epi8(block);
      if (mask == 0) {
        i += 16;
        continue;
      }
      i += static_cast<std::size_t>(__builtin_ctz(static_cast<unsigned>(mask)));
    }
#endif
    const auto byte = static_cast<unsigned char>(data[i]);
    if (byte >= 0x80) {
      const std::size_t length = utf8_sequence_length(text.substr(i));
      if (length == 0) return false;
      i += length;
      continue;
    }
    if (byte >= 0x20 && byte != '"' && byte != '\\') {
      ++i;
      continue;
    }
    out_.append(data + run, i - run);
    switch (byte) {
      case '"':
        out_ += "\\\"";
        break;
      case '\\':
        out_ += "\\\\";
        break;
      case '\b':
        out_ += "\\b";
        break;
      case '\f':
        out_ += "\\f";
        break;
      case '\n':
        out_ += "\\n";
        break;
      case '\r':
        out_ += "\\r";
        break;
      case '\t':
        out_ += "\\t";
        break;
      default: {
        const char escape[] = {'\\', 'u', '0', '0', kHexDigits[byte >> 4], kHexDigits[byte & 15]};
        out_.append(escape, sizeof escape);
      }
    }
    run = ++i;
  }
  out_.append(data + run, size - run);
  out_ += '"';
  return true;
}

}  // namespace conduit::rpc::jsonrpc
