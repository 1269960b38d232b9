// Channel addresses.
//
//   pipe:                    this process's stdin (receive) and stdout (send)
//   pipe:R,W                 inherited descriptors R (receive) and W (send)
//   fifo:/path               the server's request FIFO; each client gets a
//                            pair of its own, /path.PID.N.c2s and .s2c
//   unix:/path  unix:@name   UNIX stream socket (path or abstract name)
//   unix+seqpacket:/path     UNIX seqpacket socket
//   unix+dgram:/path         UNIX datagram socket
//   tcp://host:port          TCP; IPv6 hosts in brackets: tcp://[::1]:7000
//   mq:/name                 POSIX message queue "/name" (requests), and one
//                            reply queue "/name.PID" per client
//   sysvmq:KEY               System V message queue with KEY: a number,
//                            decimal or 0x hex (1 to 0xffffffff)
//   sysvmq:/path             ... with the key ftok(path, 'c') of an existing path
//   shm:/name                two ShmRings in the POSIX shared memory segment
//                            "/name"; one client at a time; rings of 4 MiB
//                            unless max= asks for more
//
// Options follow '?' and are separated by '&':
//   raw        no length prefix: bytes pass untouched (stream mechanisms
//              only), so ordinary tools like cat and socat can be the peer
//   max=BYTES  largest message accepted or sent (suffixes K, M: 64K, 16M)
//   mode=OCTAL permissions of created FIFOs, socket files, queues and segments
//              (default 600)
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace conduit::ipc {

// A parsed channel URI. Value type.
struct Uri {
  std::string scheme;  // "pipe", "fifo", "unix", "unix+seqpacket", ...
  std::string path;    // fifo/unix: path or "@name"; pipe: "" or "R,W";
                       // mq, shm: "/name"; sysvmq: the key or a path
  std::string host;    // tcp: without brackets
  std::uint16_t port = 0;
  std::map<std::string, std::string> options;

  // Parses text. Throws InvalidUri naming the problem and the accepted forms.
  static Uri parse(std::string_view text);

  // Back to text, options included, in canonical order.
  std::string str() const;

  bool has_option(const std::string& name) const { return options.count(name) != 0; }
  // Parses "max" style sizes: digits with an optional K or M suffix.
  std::optional<std::size_t> size_option(const std::string& name) const;
};

// One line per scheme, for --help texts and error messages.
std::string_view uri_forms();

}  // namespace conduit::ipc
