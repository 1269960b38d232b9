#include "conduit/ipc/uri.hpp"

#include <charconv>

#include "conduit/error.hpp"
#include "conduit/ipc/posix_message_queue.hpp"
#include "conduit/ipc/sysv_message_queue.hpp"

namespace conduit::ipc {
namespace {

constexpr std::string_view kForms =
    "  pipe:                   stdin/stdout of this process (a spawned child)\n"
    "  pipe:R,W                inherited descriptors R (receive) and W (send)\n"
    "  fifo:/path              FIFO server at /path; each client gets its own FIFO pair\n"
    "  unix:/path, unix:@name  UNIX stream socket (path or abstract name)\n"
    "  unix+seqpacket:/path    UNIX seqpacket socket\n"
    "  unix+dgram:/path        UNIX datagram socket\n"
    "  tcp://host:port         TCP (IPv6: tcp://[::1]:port)\n"
    "  mq:/name                POSIX message queue /name (each client adds /name.PID)\n"
    "  sysvmq:KEY, sysvmq:/path  System V message queue: key 0x1234 or 4660, or ftok(path)\n"
    "  shm:/name               ShmRing pair in shared memory /name (4 MiB rings unless ?max=)\n"
    "  options: ?raw (no length prefix), ?max=BYTES (e.g. 64K, 16M), ?mode=600\n";

constexpr std::string_view kSchemes[] = {
    "pipe", "fifo", "unix", "unix+seqpacket", "unix+dgram", "tcp", "mq", "sysvmq", "shm"};

[[noreturn]] void fail(std::string_view text, const std::string& why) {
  throw InvalidUri("invalid URI '" + std::string(text) + "': " + why);
}

bool parse_number(std::string_view digits, unsigned long long& value) {
  if (digits.empty()) return false;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  return ec == std::errc() && end == digits.data() + digits.size();
}

void parse_options(std::string_view text, std::string_view query, Uri& uri) {
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view item = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (item.empty()) continue;
    auto eq = item.find('=');
    std::string name(item.substr(0, eq));
    std::string value = eq == std::string_view::npos ? "" : std::string(item.substr(eq + 1));
    if (name != "raw" && name != "max" && name != "mode")
      fail(text, "unknown option '" + name + "' (known: raw, max=BYTES, mode=OCTAL)");
    uri.options[name] = value;
  }
  if (uri.has_option("max") && !uri.size_option("max"))
    fail(text, "max= wants a byte count such as 65536, 64K or 16M");
  if (uri.has_option("mode")) {
    const std::string& mode = uri.options["mode"];
    if (mode.empty() || mode.size() > 4 || mode.find_first_not_of("01234567") != std::string::npos)
      fail(text, "mode= wants octal permissions such as 600 or 660");
  }
}

}  // namespace

std::string_view uri_forms() {
  return kForms;
}

Uri Uri::parse(std::string_view text) {
  Uri uri;
  auto colon = text.find(':');
  if (colon == std::string_view::npos || colon == 0)
    fail(text, "no scheme; expected one of:\n" + std::string(kForms));
  uri.scheme = std::string(text.substr(0, colon));
  bool known = false;
  for (auto scheme : kSchemes) known = known || scheme == uri.scheme;
  if (!known)
    fail(text, "unknown scheme '" + uri.scheme + "'; expected one of:\n" + std::string(kForms));

  std::string_view rest = text.substr(colon + 1);
  auto question = rest.find('?');
  if (question != std::string_view::npos) {
    parse_options(text, rest.substr(question + 1), uri);
    rest = rest.substr(0, question);
  }

  if (uri.scheme == "tcp") {
    if (rest.substr(0, 2) != "//") fail(text, "write TCP addresses as tcp://host:port");
    rest.remove_prefix(2);
    std::string_view port_text;
    if (!rest.empty() && rest.front() == '[') {
      auto close = rest.find(']');
      if (close == std::string_view::npos) fail(text, "missing ']' after the IPv6 address");
      uri.host = std::string(rest.substr(1, close - 1));
      rest.remove_prefix(close + 1);
      if (rest.empty() || rest.front() != ':') fail(text, "missing ':port' after the IPv6 address");
      port_text = rest.substr(1);
    } else {
      auto last = rest.rfind(':');
      if (last == std::string_view::npos) fail(text, "missing ':port'");
      uri.host = std::string(rest.substr(0, last));
      if (uri.host.find(':') != std::string::npos)
        fail(text, "put IPv6 addresses in brackets: tcp://[::1]:port");
      port_text = rest.substr(last + 1);
    }
    if (uri.host.empty()) fail(text, "missing host (use 127.0.0.1 for loopback)");
    unsigned long long port = 0;
    if (!parse_number(port_text, port) || port > 65535)
      fail(text, "port must be a number from 0 to 65535");
    uri.port = static_cast<std::uint16_t>(port);
    if (uri.has_option("mode")) fail(text, "mode= applies to FIFOs and UNIX sockets only");
    return uri;
  }

  uri.path = std::string(rest);
  if (uri.scheme == "pipe") {
    if (!uri.path.empty()) {
      auto comma = rest.find(',');
      unsigned long long r = 0, w = 0;
      if (comma == std::string_view::npos || !parse_number(rest.substr(0, comma), r) ||
          !parse_number(rest.substr(comma + 1), w) || r > 1000000 || w > 1000000)
        fail(text, "write inherited descriptors as pipe:READ_FD,WRITE_FD (e.g. pipe:3,4)");
    }
    return uri;
  }
  if (uri.path.empty()) fail(text, "missing path after '" + uri.scheme + ":'");
  if (uri.scheme == "fifo" && uri.path.front() == '@')
    fail(text, "FIFOs live in the filesystem; there is no abstract namespace for them");
  if (uri.has_option("raw") &&
      (uri.scheme == "unix+seqpacket" || uri.scheme == "unix+dgram" || uri.scheme == "mq" ||
       uri.scheme == "sysvmq" || uri.scheme == "shm"))
    fail(text, "raw applies to stream mechanisms; " + uri.scheme + " keeps message boundaries");
  if (uri.scheme == "mq") {
    if (std::string problem = posix_queue_name_problem(uri.path); !problem.empty())
      fail(text, problem);
    // Each client's reply queue is named "/name.PID" or "/name.PID.N".
    if (uri.path.size() - 1 > 231)
      fail(text,
           "mq: names are at most 231 characters after the '/', leaving room for the "
           "\".PID.N\" its clients append for their reply queues");
  }
  if (uri.scheme == "shm") {
    if (std::string problem = posix_queue_name_problem(uri.path, "shared-memory object");
        !problem.empty())
      fail(text, problem);
  }
  if (uri.scheme == "sysvmq" && uri.path.front() != '/' && !parse_sysv_key(uri.path))
    fail(text,
         "write the key as a number from 1 to 0xffffffff (e.g. sysvmq:0x1234 or "
         "sysvmq:4660), or as an absolute path for ftok (sysvmq:/path)");
  return uri;
}

std::string Uri::str() const {
  std::string text = scheme + ":";
  if (scheme == "tcp") {
    bool v6 = host.find(':') != std::string::npos;
    text += "//" + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
  } else {
    text += path;
  }
  char separator = '?';
  for (const auto& [name, value] : options) {
    text += separator;
    text += name;
    if (!value.empty()) text += "=" + value;
    separator = '&';
  }
  return text;
}

std::optional<std::size_t> Uri::size_option(const std::string& name) const {
  auto found = options.find(name);
  if (found == options.end()) return std::nullopt;
  std::string_view value = found->second;
  unsigned long long multiplier = 1;
  if (!value.empty() && (value.back() == 'K' || value.back() == 'k')) multiplier = 1024;
  if (!value.empty() && (value.back() == 'M' || value.back() == 'm')) multiplier = 1024 * 1024;
  if (multiplier != 1) value.remove_suffix(1);
  unsigned long long number = 0;
  if (!parse_number(value, number) || number > (1ull << 32) / multiplier) return std::nullopt;
  return static_cast<std::size_t>(number * multiplier);
}

}  // namespace conduit::ipc
