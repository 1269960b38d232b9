// UTF-8 checks for JSON text: RFC 8259 allows only well-formed UTF-8, and
// what conduit writes must be so too.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace conduit::rpc::jsonrpc {

// The length of the well-formed UTF-8 sequence `text` starts with, or 0
// (an overlong form, a surrogate, beyond U+10FFFF, cut short).
// REQUIRES: !text.empty().
std::size_t utf8_sequence_length(std::string_view text);

// Where `text` stops being well-formed UTF-8, or npos. ASCII, the common
// case, is skipped sixteen bytes at a time.
std::size_t invalid_utf8_at(std::string_view text);

inline bool is_valid_utf8(std::string_view text) {
  return invalid_utf8_at(text) == std::string_view::npos;
}

// `text` with each byte that does not begin well-formed UTF-8 replaced by
// U+FFFD, for messages that go into JSON whatever they hold.
std::string to_valid_utf8(std::string_view text);

// True when a string RapidJSON decoded holds a UTF-16 surrogate (ED A0..BF):
// that is how it decodes an unpaired "\uDC00" escape, the one ill-formed
// UTF-8 a check of the raw text cannot see. Everything else in a decoded
// string is well-formed, so an ED byte always leads a sequence.
bool has_surrogate(std::string_view decoded);

}  // namespace conduit::rpc::jsonrpc
