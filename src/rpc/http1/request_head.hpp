// The head of an HTTP/1.1 request (RFC 9112): its request line and header
// fields, read strictly, and the chunk-size lines of a chunked body.
// What a server cannot take safely is refused rather than guessed at:
// obsolete line folding, whitespace before a colon, a bare LF, a
// Content-Length beside a Transfer-Encoding or two that differ (request
// smuggling), an HTTP/1.1 request without exactly one Host.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace conduit::rpc::http1 {

// The fields of HTTP itself, which say how a request travels rather than
// anything a handler could act on.
enum class KnownField {
  other,
  host,
  content_length,
  content_type,
  connection,
  keep_alive,
  transfer_encoding,
  te,
  trailer,
  upgrade,
  expect,
  accept,
};

struct FieldLine {
  std::string_view name;   // as sent
  std::string_view value;  // without surrounding whitespace
  KnownField known;
};

struct RequestHead {
  std::string_view method;         // as sent: methods are case-sensitive
  std::string_view target;         // "/path?query"
  int minor_version = 1;           // HTTP/1.minor_version
  std::vector<FieldLine> fields;   // every field, in order
  std::string_view content_type;   // the first Content-Type, or ""
  std::size_t content_length = 0;  // 0 when the body is chunked
  bool chunked = false;
  bool keep_alive = true;
  bool expects_continue = false;  // Expect: 100-continue

  // The value of the first field named `name` (case-insensitive), or "".
  std::string_view field(std::string_view name) const;
};

// Why a head was refused: the status to answer and the reason, in words
// that name the field at fault.
struct HeadError {
  unsigned status;  // 400, 413, 501 or 505
  std::string why;
};

// Where the head in `buffer` ends: the offset just past its blank line, or
// std::nullopt when the blank line has not arrived yet. Empty lines before
// the request line are part of the head (RFC 9112 2.2 lets a server skip
// them).
std::optional<std::size_t> head_end(std::string_view buffer);

// Parses the head `text` (as head_end delimits it); the views point into it.
// `max_body` refuses a larger Content-Length with 413.
std::optional<HeadError> parse_head(std::string_view text, std::size_t max_body, RequestHead& head);

// A chunk-size line without its CRLF ("1a", "1a;name=value"): the size, or
// std::nullopt when it is not one.
std::optional<std::uint64_t> parse_chunk_size(std::string_view line);

// Whether `text` is an HTTP token (RFC 9110 5.6.2): what a method or a field
// name is made of.
bool is_token(std::string_view text);

// Whether `value` may be a field's value: visible characters, spaces, tabs
// and bytes above 0x7f; no other control character (no CR, LF or NUL).
bool is_field_value(std::string_view value);

// ASCII lower case: HTTP's names and tokens are ASCII.
std::string lower_ascii(std::string_view text);

// Whether `a` and `b` are the same, ignoring ASCII case.
bool equal_ignoring_case(std::string_view a, std::string_view b);

}  // namespace conduit::rpc::http1
