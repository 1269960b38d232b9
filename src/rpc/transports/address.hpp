// Where an RPC server listens or a client connects, whatever the protocol:
// the one parser of transport addresses.
//
//   tcp://HOST:PORT     TCP; IPv6 hosts in brackets (tcp://[::1]:7000); a
//                       server takes PORT 0 to pick a free port
//   unix:/path          UNIX stream socket at a path
//   unix:@name          ... in the abstract namespace (no file)
//   shm+unix:/path      two ShmRings in a memfd, handed over the UNIX socket
//                       at /path (or @name) with SCM_RIGHTS: only the
//                       connected peer gets the memory, nothing is named in
//                       /dev/shm, and a peer's death shows on the socket.
//                       (ipc's shm:/name is another thing: a named POSIX
//                       segment; an RPC transport never takes shm:.)
//   stdio               this process's stdin and stdout (servers only)
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace conduit::rpc::transport {

enum class Kind { tcp, unix_socket, shm, stdio };

// A parsed transport address. Value type.
struct Address {
  Kind kind = Kind::tcp;
  std::string host;  // tcp: without brackets
  std::uint16_t port = 0;
  std::string path;  // unix_socket, shm: "/path" or "@name"

  // The address as text, in the forms above.
  std::string uri() const;
  // For messages and peers: "127.0.0.1:4000", "unix:/run/x.sock".
  bool operator==(const Address&) const = default;
};

// What an address is for: the forms allowed differ (a client cannot connect
// to stdio; a server's tcp host must be an IP address).
enum class Role { server, client };

// Parses one of the forms above. Throws InvalidUri naming what was wrong and
// listing the forms `role` takes.
Address parse_address(std::string_view text, Role role);

// One line per form `role` takes, for --help texts and errors.
std::string address_forms(Role role);

}  // namespace conduit::rpc::transport
