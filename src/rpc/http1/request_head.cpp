#include "rpc/http1/request_head.hpp"

#include <algorithm>
#include <array>

namespace conduit::rpc::http1 {

namespace {

// tchar of RFC 9110 5.6.2: what a method or a field name is made of.
constexpr std::array<bool, 256> kTokenChars = [] {
  std::array<bool, 256> table{};
  for (int c = '0'; c <= '9'; ++c) table[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) table[c] = table[c - 'a' + 'A'] = true;
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) table[static_cast<unsigned char>(c)] = true;
  return table;
}();

// Which of HTTP's own fields `name` is: its length picks the candidates.
KnownField classify(std::string_view name) {
  auto is = [name](std::string_view known) { return equal_ignoring_case(name, known); };
  switch (name.size()) {
    case 2:
      return is("te") ? KnownField::te : KnownField::other;
    case 4:
      return is("host") ? KnownField::host : KnownField::other;
    case 6:
      return is("expect")   ? KnownField::expect
             : is("accept") ? KnownField::accept
                            : KnownField::other;
    case 7:
      return is("trailer")   ? KnownField::trailer
             : is("upgrade") ? KnownField::upgrade
                             : KnownField::other;
    case 10:
      return is("connection")   ? KnownField::connection
             : is("keep-alive") ? KnownField::keep_alive
                                : KnownField::other;
    case 12:
      return is("content-type") ? KnownField::content_type : KnownField::other;
    case 14:
      return is("content-length") ? KnownField::content_length : KnownField::other;
    case 17:
      return is("transfer-encoding") ? KnownField::transfer_encoding : KnownField::other;
    default:
      return KnownField::other;
  }
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

// Whether a comma-separated list of tokens holds `token`.
bool list_has(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    const std::size_t comma = list.find(',');
    if (equal_ignoring_case(trim(list.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

// The last member of a comma-separated list.
std::string_view last_of(std::string_view list) {
  const std::size_t comma = list.rfind(',');
  return trim(comma == std::string_view::npos ? list : list.substr(comma + 1));
}

HeadError bad(std::string why) {
  return {400, std::move(why)};
}

std::optional<HeadError> parse_request_line(std::string_view line, RequestHead& head) {
  const std::size_t first_space = line.find(' ');
  const std::size_t second_space =
      first_space == std::string_view::npos ? first_space : line.find(' ', first_space + 1);
  if (second_space == std::string_view::npos || line.find(' ', second_space + 1) != line.npos)
    return bad("the request line must be METHOD TARGET HTTP/1.1, each separated by one space");
  head.method = line.substr(0, first_space);
  head.target = line.substr(first_space + 1, second_space - first_space - 1);
  const std::string_view version = line.substr(second_space + 1);
  if (!is_token(head.method)) return bad("the method is not an HTTP token");
  if (head.target.empty() || !std::all_of(head.target.begin(), head.target.end(),
                                          [](char c) { return c > 0x20 && c < 0x7f; }))
    return bad("the request target must be visible ASCII, without spaces");
  if (version.size() != 8 || !version.starts_with("HTTP/") || version[6] != '.' ||
      version[5] < '0' || version[5] > '9' || version[7] < '0' || version[7] > '9')
    return bad("the HTTP version must be HTTP/1.1 or HTTP/1.0");
  if (version[5] != '1') return HeadError{505, "only HTTP/1.1 and HTTP/1.0 are served here"};
  head.minor_version = version[7] - '0';
  return std::nullopt;
}

std::optional<HeadError> parse_content_length(std::string_view value, std::size_t max_body,
                                              std::optional<std::size_t>& length) {
  if (value.empty() ||
      !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return bad("Content-Length must be a decimal number of bytes, not \"" + std::string(value) +
               "\"");
  const std::string_view digits =
      value.substr(std::min(value.find_first_not_of('0'), value.size()));
  std::size_t parsed = 0;
  const bool fits = digits.size() <= 18;  // below 10^18: no overflow
  if (fits)
    for (char c : digits) parsed = parsed * 10 + static_cast<std::size_t>(c - '0');
  if (!fits || parsed > max_body)
    return HeadError{413, "the body of " + std::string(value) +
                              " bytes exceeds the server's limit of " + std::to_string(max_body) +
                              " bytes"};
  if (length && *length != parsed)
    return bad("two Content-Length fields disagree (" + std::to_string(*length) + " and " +
               std::to_string(parsed) + ")");
  length = parsed;
  return std::nullopt;
}

}  // namespace

bool is_token(std::string_view text) {
  if (text.empty()) return false;
  for (char c : text)
    if (!kTokenChars[static_cast<unsigned char>(c)]) return false;
  return true;
}

bool is_field_value(std::string_view value) {
  return std::all_of(value.begin(), value.end(), [](char ch) {
    const auto c = static_cast<unsigned char>(ch);
    return c == '\t' || (c >= 0x20 && c != 0x7f);
  });
}

std::string lower_ascii(std::string_view text) {
  std::string out(text);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

bool equal_ignoring_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

std::string_view RequestHead::field(std::string_view name) const {
  for (const FieldLine& line : fields)
    if (equal_ignoring_case(line.name, name)) return line.value;
  return {};
}

std::optional<std::size_t> head_end(std::string_view buffer) {
  std::size_t at = 0;
  bool leading = true;  // empty lines before the request line
  for (;;) {
    const std::size_t newline = buffer.find('\n', at);
    if (newline == std::string_view::npos) return std::nullopt;
    const bool empty = newline == at || (newline == at + 1 && buffer[at] == '\r');
    at = newline + 1;
    if (empty && !leading) return at;
    if (!empty) leading = false;
  }
}

std::optional<HeadError> parse_head(std::string_view text, std::size_t max_body,
                                    RequestHead& head) {
  // Reset field by field: the vector keeps its memory for the next head.
  head.method = head.target = head.content_type = {};
  head.minor_version = 1;
  head.fields.clear();
  head.content_length = 0;
  head.chunked = false;
  head.keep_alive = true;
  head.expects_continue = false;
  std::optional<std::size_t> content_length;
  std::string_view transfer_encoding, connection;
  std::size_t hosts = 0;
  bool seen_request_line = false;
  while (!text.empty()) {
    const std::size_t newline = text.find('\n');
    if (newline == 0 || text[newline - 1] != '\r')
      return bad("every line of the head must end with CRLF, not a bare LF");
    const std::string_view line = text.substr(0, newline - 1);
    text.remove_prefix(newline + 1);
    if (line.find('\r') != std::string_view::npos)
      return bad("a bare CR inside a line of the head");
    if (!seen_request_line) {
      if (line.empty()) continue;  // empty lines before the request line
      if (auto error = parse_request_line(line, head)) return error;
      seen_request_line = true;
      continue;
    }
    if (line.empty()) break;  // the blank line that ends the head
    if (line.front() == ' ' || line.front() == '\t')
      return bad("a header line begins with whitespace (obsolete line folding is not taken)");
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos)
      return bad("the header line \"" + std::string(line.substr(0, 64)) + "\" has no colon");
    const std::string_view name = line.substr(0, colon);
    const std::string_view value = trim(line.substr(colon + 1));
    if (!is_token(name))
      return bad("the header name \"" + std::string(name.substr(0, 64)) +
                 "\" is not an HTTP token (no whitespace before the colon)");
    if (!is_field_value(value))
      return bad("the value of " + std::string(name) + " holds a control character");
    const KnownField known = classify(name);
    head.fields.push_back({name, value, known});
    switch (known) {
      case KnownField::content_length:
        if (auto error = parse_content_length(value, max_body, content_length)) return error;
        break;
      case KnownField::transfer_encoding:
        if (!transfer_encoding.empty())
          return bad("more than one Transfer-Encoding field; send one list");
        transfer_encoding = value;
        break;
      case KnownField::host:
        ++hosts;
        break;
      case KnownField::content_type:
        if (head.content_type.empty()) head.content_type = value;
        break;
      case KnownField::connection:
        connection = value;
        break;
      case KnownField::expect:
        head.expects_continue = equal_ignoring_case(value, "100-continue");
        break;
      default:
        break;
    }
  }
  if (!seen_request_line) return bad("no request line");
  if (head.minor_version >= 1 && hosts != 1)
    return bad(hosts == 0 ? "an HTTP/1.1 request needs a Host field"
                          : "an HTTP/1.1 request takes exactly one Host field");
  if (!transfer_encoding.empty()) {
    if (content_length) return bad("both Content-Length and Transfer-Encoding: send one of them");
    if (head.minor_version == 0) return bad("Transfer-Encoding is not part of HTTP/1.0");
    if (!equal_ignoring_case(last_of(transfer_encoding), "chunked"))
      return bad("a request body's last transfer coding must be chunked");
    if (!equal_ignoring_case(transfer_encoding, "chunked"))
      return HeadError{501, "only the chunked transfer coding is served here, not \"" +
                                std::string(transfer_encoding) + "\""};
    head.chunked = true;
  }
  head.content_length = content_length.value_or(0);
  head.keep_alive =
      head.minor_version >= 1 ? !list_has(connection, "close") : list_has(connection, "keep-alive");
  return std::nullopt;
}

std::optional<std::uint64_t> parse_chunk_size(std::string_view line) {
  std::string_view digits = line.substr(0, line.find(';'));
  while (!digits.empty() && (digits.back() == ' ' || digits.back() == '\t'))
    digits.remove_suffix(1);
  if (digits.empty() || digits.size() > 15) return std::nullopt;  // 15 hex digits: no overflow
  std::uint64_t size = 0;
  for (char c : digits) {
    int digit;
    if (c >= '0' && c <= '9')
      digit = c - '0';
    else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
      digit = (c | 0x20) - 'a' + 10;
    else
      return std::nullopt;
    size = size * 16 + static_cast<std::uint64_t>(digit);
  }
  return size;
}

}  // namespace conduit::rpc::http1
