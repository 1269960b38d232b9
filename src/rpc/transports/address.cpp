#include "rpc/transports/address.hpp"

#include <charconv>

#include "conduit/error.hpp"

namespace conduit::rpc::transport {

namespace {

[[noreturn]] void fail(std::string_view text, Role role, const std::string& why) {
  throw InvalidUri("invalid address '" + std::string(text) + "': " + why + "; " +
                   (role == Role::server ? "a server listens on" : "a client connects to") +
                   " one of:\n" + address_forms(role));
}

std::string socket_path(std::string_view text, std::string_view path, Role role,
                        std::string_view scheme) {
  if (path.starts_with("//")) path.remove_prefix(2);  // unix:///path
  if (path.empty()) fail(text, role, std::string(scheme) + " needs a socket path or @name");
  if (path.size() > 107) fail(text, role, "a UNIX socket path has at most 107 bytes");
  if (path == "@") fail(text, role, "an abstract socket needs a name after '@'");
  return std::string(path);
}

}  // namespace

std::string Address::uri() const {
  switch (kind) {
    case Kind::tcp:
      return "tcp://" + (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
             std::to_string(port);
    case Kind::unix_socket:
      return "unix:" + path;
    case Kind::shm:
      return "shm+unix:" + path;
    case Kind::stdio:
      return "stdio";
  }
  return {};
}

std::string address_forms(Role role) {
  std::string forms =
      "  tcp://HOST:PORT          TCP (IPv6: tcp://[::1]:PORT)\n"
      "  unix:/path, unix:@name   UNIX stream socket (path or abstract name)\n"
      "  shm+unix:/path           shared-memory rings handed over the UNIX socket at /path\n";
  if (role == Role::server)
    forms += "  stdio                    stdin and stdout of this process\n";
  return forms;
}

Address parse_address(std::string_view text, Role role) {
  Address address;
  if (text == "stdio") {
    if (role == Role::client) fail(text, role, "a client cannot connect to stdio");
    address.kind = Kind::stdio;
    return address;
  }
  if (text.starts_with("shm+unix:")) {
    address.kind = Kind::shm;
    address.path = socket_path(text, text.substr(9), role, "shm+unix:");
    return address;
  }
  if (text.starts_with("unix:")) {
    address.kind = Kind::unix_socket;
    address.path = socket_path(text, text.substr(5), role, "unix:");
    return address;
  }
  if (text.starts_with("shm:"))
    fail(text, role,
         "shm:/name is a named POSIX shared-memory segment (conduit ipc); the RPC transport "
         "over shared memory is shm+unix:/path");
  if (!text.starts_with("tcp://")) {
    const auto colon = text.find(':');
    fail(text, role,
         colon == std::string_view::npos
             ? std::string("no scheme")
             : "unknown scheme '" + std::string(text.substr(0, colon)) + "'");
  }
  std::string_view rest = text.substr(6);
  if (const auto slash = rest.find('/'); slash != std::string_view::npos) {
    if (slash + 1 != rest.size()) fail(text, role, "tcp:// takes no path");
    rest.remove_suffix(1);
  }
  const auto colon = rest.rfind(':');
  if (colon == std::string_view::npos) fail(text, role, "tcp:// needs HOST:PORT");
  std::string_view host = rest.substr(0, colon);
  const std::string_view port = rest.substr(colon + 1);
  if (host.starts_with('[')) {
    if (!host.ends_with(']')) fail(text, role, "an IPv6 host needs its closing ']'");
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    fail(text, role, "an IPv6 host goes in brackets: tcp://[::1]:PORT");
  }
  if (host.empty()) fail(text, role, "tcp:// needs a host");
  unsigned long number = 0;
  auto [end, error] = std::from_chars(port.data(), port.data() + port.size(), number);
  if (port.empty() || error != std::errc() || end != port.data() + port.size() || number > 65535)
    fail(text, role,
         "the port must be a number from " + std::string(role == Role::server ? "0" : "1") +
             " to 65535");
  if (number == 0 && role == Role::client) fail(text, role, "a client cannot connect to port 0");
  address.host = std::string(host);
  address.port = static_cast<std::uint16_t>(number);
  return address;
}

}  // namespace conduit::rpc::transport
