// The floor under any gRPC server on this machine: one thread, one epoll
// loop, and per batch of calls only what every HTTP/2 server must do: read
// the requests whole, walk their frames, and write the answers in one send.
// No HPACK is decoded and no protobuf is parsed or built per call: frames are
// told apart by their 9-byte headers only, and the answer to a stream is
// bytes encoded once at start, its stream id filled in.
//
//   grpc_floor --listen ADDRESS [--listen ADDRESS...] [--response-size N]
//       ADDRESS: 127.0.0.1:PORT (0: a port the kernel picks) or unix:/path
//       prints "grpc_floor: listening on ADDRESS" on stderr for each, the
//       port filled in; stops on SIGTERM or SIGINT
//       N: the payload bytes of every answer (default 16)
//
// bench/grpc_bench.py runs it beside conduit and libgrpc++: the CPU time it
// spends per call is what the kernel costs for one recv and one send per
// batch of calls, which no server doing that much I/O can go below.
//
// What it does on a connection, and no more:
//   - at once: SETTINGS (MAX_CONCURRENT_STREAMS 100, INITIAL_WINDOW_SIZE
//     1 MiB) and a WINDOW_UPDATE raising the connection's window to 8 MiB,
//     as conduit's server advertises;
//   - the client's preface is checked, then each frame by its header:
//     SETTINGS (not ACK) → SETTINGS ACK; PING (not ACK) → PING ACK;
//     HEADERS → the stream id noted; DATA → its bytes counted against the
//     connection's window; END_STREAM (on DATA or trailing HEADERS) → the
//     stream answered; WINDOW_UPDATE, RST_STREAM, PRIORITY and others
//     ignored;
//   - when half the connection's window has been received, a WINDOW_UPDATE
//     gives it back (streams need none: a request is far below 1 MiB);
//   - one recv (up to 64 KiB) per readiness, then everything that read
//     called for (answers, ACKs, WINDOW_UPDATE) in one send.
// The answer: HEADERS (:status 200, content-type application/grpc), DATA
// (the gRPC-framed SimpleResponse{payload{body: N zero bytes}}), trailing
// HEADERS with END_STREAM (grpc-status 0). The client's flow-control windows
// for the answers are not tracked: h2load's (1 GiB by default) never run out.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr std::uint8_t kData = 0x0, kHeaders = 0x1, kSettings = 0x4, kPing = 0x6,
                       kWindowUpdate = 0x8;
constexpr std::uint8_t kEndStream = 0x1, kAck = 0x1, kEndHeaders = 0x4;
constexpr std::uint32_t kMaxConcurrentStreams = 100;
constexpr std::uint32_t kStreamWindow = 1 << 20;
constexpr std::uint32_t kConnectionWindow = 8 << 20;
constexpr std::uint32_t kDefaultWindow = 65535;
// SETTINGS_MAX_FRAME_SIZE is left at its default both ways.
constexpr std::size_t kMaxFrame = 16384;
constexpr std::size_t kFrameHeader = 9;
constexpr std::size_t kReadBuffer = 65536;
constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

[[noreturn]] void die(const char* what, const std::string& detail = {}) {
  std::fprintf(stderr, "grpc_floor: %s%s%s: %s\n", what, detail.empty() ? "" : " ", detail.c_str(),
               std::strerror(errno));
  std::exit(1);
}

void put_frame_header(std::string& out, std::size_t length, std::uint8_t type, std::uint8_t flags,
                      std::uint32_t stream) {
  const char header[kFrameHeader] = {
      static_cast<char>(length >> 16), static_cast<char>(length >> 8),
      static_cast<char>(length),       static_cast<char>(type),
      static_cast<char>(flags),        static_cast<char>(stream >> 24),
      static_cast<char>(stream >> 16), static_cast<char>(stream >> 8),
      static_cast<char>(stream)};
  out.append(header, kFrameHeader);
}

void put_u32(std::string& out, std::uint32_t value) {
  const char bytes[4] = {static_cast<char>(value >> 24), static_cast<char>(value >> 16),
                         static_cast<char>(value >> 8), static_cast<char>(value)};
  out.append(bytes, 4);
}

void put_window_update(std::string& out, std::uint32_t stream, std::uint32_t increment) {
  put_frame_header(out, 4, kWindowUpdate, 0, stream);
  put_u32(out, increment);
}

void put_varint(std::string& out, std::uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>(value | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

// Field `number`, wire type 2 (length-delimited), holding `data`.
std::string length_delimited(int number, const std::string& data) {
  std::string out;
  put_varint(out, static_cast<std::uint64_t>(number) << 3 | 2);
  put_varint(out, data.size());
  return out + data;
}

// The answer to one stream, its stream id 0 at `stream_offsets`.
struct Answer {
  std::string bytes;
  std::vector<std::size_t> stream_offsets;

  void append_to(std::string& out, std::uint32_t stream) const {
    const std::size_t start = out.size();
    out += bytes;
    const char id[4] = {static_cast<char>((stream >> 24) & 0x7f), static_cast<char>(stream >> 16),
                        static_cast<char>(stream >> 8), static_cast<char>(stream)};
    for (const std::size_t offset : stream_offsets) std::memcpy(&out[start + offset], id, 4);
  }
};

Answer build_answer(std::size_t response_size) {
  Answer answer;
  auto frame = [&answer](std::size_t length, std::uint8_t type, std::uint8_t flags) {
    answer.stream_offsets.push_back(answer.bytes.size() + 5);
    put_frame_header(answer.bytes, length, type, flags, 0);
  };
  // HPACK: :status 200 is static entry 8 (indexed: 0x88); content-type is
  // static entry 31, a literal without indexing with an indexed name (4-bit
  // prefix: 0x0f then 31 - 15 = 0x10), the value not Huffman-coded.
  std::string head = "\x88\x0f\x10";
  head += static_cast<char>(16);
  head += "application/grpc";
  frame(head.size(), kHeaders, kEndHeaders);
  answer.bytes += head;

  // SimpleResponse{payload (1): Payload{body (2): N zero bytes}}; Payload's
  // type, COMPRESSABLE (0), is the default and not written.
  const std::string payload =
      response_size ? length_delimited(2, std::string(response_size, '\0')) : std::string();
  const std::string message = length_delimited(1, payload);
  std::string framed(1, '\0');  // not compressed
  put_u32(framed, static_cast<std::uint32_t>(message.size()));
  framed += message;
  for (std::size_t at = 0; at < framed.size(); at += kMaxFrame) {
    const std::size_t length = std::min(kMaxFrame, framed.size() - at);
    frame(length, kData, 0);
    answer.bytes.append(framed, at, length);
  }

  // grpc-status: 0, a literal without indexing with a new name.
  std::string trailers(1, '\0');
  trailers += static_cast<char>(11);
  trailers += "grpc-status";
  trailers += static_cast<char>(1);
  trailers += "0";
  frame(trailers.size(), kHeaders, kEndHeaders | kEndStream);
  answer.bytes += trailers;
  return answer;
}

struct Connection {
  int fd;
  bool preface_seen = false;
  std::uint32_t last_stream = 0;
  std::uint32_t unacknowledged = 0;  // DATA bytes received since the last WINDOW_UPDATE
  std::size_t have = 0;              // bytes held in `in`
  std::unique_ptr<char[]> in{new char[kReadBuffer]};
  std::string out;                // what is still to be sent
  bool waiting_to_write = false;  // EPOLLOUT asked for
};

std::uint32_t u24(const unsigned char* at) {
  return std::uint32_t{at[0]} << 16 | std::uint32_t{at[1]} << 8 | at[2];
}

std::uint32_t u31(const unsigned char* at) {
  return (std::uint32_t{at[0]} << 24 | std::uint32_t{at[1]} << 16 | std::uint32_t{at[2]} << 8 |
          at[3]) &
         0x7fffffff;
}

// Walks the whole frames in the connection's buffer, adding what they call
// for to its output; keeps a partial frame for the next read. False when the
// connection must close.
bool handle_frames(Connection& connection, const Answer& answer) {
  const auto* data = reinterpret_cast<const unsigned char*>(connection.in.get());
  std::size_t at = 0;
  if (!connection.preface_seen) {
    if (connection.have < kPreface.size()) return true;
    if (std::memcmp(data, kPreface.data(), kPreface.size()) != 0) return false;
    connection.preface_seen = true;
    at = kPreface.size();
  }
  std::string& out = connection.out;
  while (connection.have - at >= kFrameHeader) {
    const unsigned char* header = data + at;
    const std::uint32_t length = u24(header);
    if (length > kMaxFrame) return false;
    if (connection.have - at < kFrameHeader + length) break;
    const std::uint8_t type = header[3], flags = header[4];
    const std::uint32_t stream = u31(header + 5);
    const unsigned char* body = header + kFrameHeader;
    switch (type) {
      case kSettings:
        if (!(flags & kAck)) put_frame_header(out, 0, kSettings, kAck, 0);
        break;
      case kPing:
        if (!(flags & kAck) && length == 8) {
          put_frame_header(out, 8, kPing, kAck, 0);
          out.append(reinterpret_cast<const char*>(body), 8);
        }
        break;
      case kHeaders:
        if (stream > connection.last_stream) connection.last_stream = stream;
        if (flags & kEndStream) answer.append_to(out, stream);
        break;
      case kData:
        if (stream == 0 || stream > connection.last_stream) return false;
        connection.unacknowledged += length;
        if (flags & kEndStream) answer.append_to(out, stream);
        break;
      default:  // WINDOW_UPDATE, RST_STREAM, PRIORITY, GOAWAY, ...
        break;
    }
    at += kFrameHeader + length;
  }
  if (connection.unacknowledged >= kConnectionWindow / 2) {
    put_window_update(out, 0, connection.unacknowledged);
    connection.unacknowledged = 0;
  }
  connection.have -= at;
  if (connection.have && at) std::memmove(connection.in.get(), data + at, connection.have);
  return true;
}

void watch(int poller, int op, int fd, std::uint32_t events) {
  epoll_event event{};
  event.events = events;
  event.data.fd = fd;
  ::epoll_ctl(poller, op, fd, &event);
}

// Sends what the connection has to send; false on a failed write.
bool flush(int poller, Connection& connection) {
  while (!connection.out.empty()) {
    const ssize_t sent =
        ::send(connection.fd, connection.out.data(), connection.out.size(), MSG_NOSIGNAL);
    if (sent < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) return false;
      break;
    }
    connection.out.erase(0, static_cast<std::size_t>(sent));
  }
  const bool waiting = !connection.out.empty();
  if (waiting != connection.waiting_to_write) {
    watch(poller, EPOLL_CTL_MOD, connection.fd, waiting ? EPOLLIN | EPOLLOUT : EPOLLIN);
    connection.waiting_to_write = waiting;
  }
  return true;
}

struct Listener {
  int fd;
  std::string unix_path;  // empty for TCP
};

Listener listen_on(const std::string& address) {
  Listener listener{};
  if (address.rfind("unix:", 0) == 0) {
    listener.unix_path = address.substr(5);
    sockaddr_un where{};
    where.sun_family = AF_UNIX;
    if (listener.unix_path.empty() || listener.unix_path.size() >= sizeof where.sun_path) {
      errno = EINVAL;
      die("bad UNIX socket path", address);
    }
    std::memcpy(where.sun_path, listener.unix_path.c_str(), listener.unix_path.size() + 1);
    listener.fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ::unlink(listener.unix_path.c_str());
    if (::bind(listener.fd, reinterpret_cast<sockaddr*>(&where), sizeof where) != 0)
      die("bind", address);
    if (::listen(listener.fd, 128) != 0) die("listen", address);
    std::fprintf(stderr, "grpc_floor: listening on %s\n", address.c_str());
    return listener;
  }
  const std::size_t colon = address.rfind(':');
  sockaddr_in where{};
  where.sin_family = AF_INET;
  if (colon == std::string::npos ||
      ::inet_pton(AF_INET, address.substr(0, colon).c_str(), &where.sin_addr) != 1) {
    errno = EINVAL;
    die("not HOST:PORT (IPv4) or unix:/path", address);
  }
  where.sin_port = htons(static_cast<std::uint16_t>(std::atoi(address.c_str() + colon + 1)));
  listener.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  const int one = 1;
  ::setsockopt(listener.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(listener.fd, reinterpret_cast<sockaddr*>(&where), sizeof where) != 0)
    die("bind", address);
  if (::listen(listener.fd, 128) != 0) die("listen", address);
  socklen_t length = sizeof where;
  ::getsockname(listener.fd, reinterpret_cast<sockaddr*>(&where), &length);
  std::fprintf(stderr, "grpc_floor: listening on %s:%d\n", address.substr(0, colon).c_str(),
               ntohs(where.sin_port));
  return listener;
}

int usage() {
  std::fprintf(stderr,
               "usage: grpc_floor --listen 127.0.0.1:PORT|unix:/path [--listen ...] "
               "[--response-size N]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> addresses;
  long response_size = 16;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
      addresses.emplace_back(argv[++i]);
    } else if (std::strcmp(argv[i], "--response-size") == 0 && i + 1 < argc) {
      char* end = nullptr;
      response_size = std::strtol(argv[++i], &end, 10);
      if (*end || response_size < 0 || response_size > (64 << 20)) return usage();
    } else {
      return usage();
    }
  }
  if (addresses.empty()) return usage();

  sigset_t stopping;
  sigemptyset(&stopping);
  sigaddset(&stopping, SIGTERM);
  sigaddset(&stopping, SIGINT);
  sigprocmask(SIG_BLOCK, &stopping, nullptr);
  const int signals = ::signalfd(-1, &stopping, SFD_CLOEXEC);

  const Answer answer = build_answer(static_cast<std::size_t>(response_size));
  // What a connection is sent first: SETTINGS, then the connection's window
  // raised from the default 65535.
  std::string greeting;
  put_frame_header(greeting, 12, kSettings, 0, 0);
  greeting += std::string{0x00, 0x03};  // MAX_CONCURRENT_STREAMS
  put_u32(greeting, kMaxConcurrentStreams);
  greeting += std::string{0x00, 0x04};  // INITIAL_WINDOW_SIZE
  put_u32(greeting, kStreamWindow);
  put_window_update(greeting, 0, kConnectionWindow - kDefaultWindow);

  const int poller = ::epoll_create1(EPOLL_CLOEXEC);
  watch(poller, EPOLL_CTL_ADD, signals, EPOLLIN);
  std::vector<Listener> listeners;
  for (const std::string& address : addresses) {
    listeners.push_back(listen_on(address));
    watch(poller, EPOLL_CTL_ADD, listeners.back().fd, EPOLLIN);
  }
  std::fflush(stderr);

  // Connections by file descriptor.
  std::vector<std::unique_ptr<Connection>> connections;
  auto close_connection = [&connections](int fd) {
    ::close(fd);
    connections[static_cast<std::size_t>(fd)].reset();
  };
  epoll_event ready[64];
  for (bool running = true; running;) {
    const int count = ::epoll_wait(poller, ready, 64, -1);
    if (count < 0 && errno != EINTR) die("epoll_wait");
    for (int i = 0; i < count; ++i) {
      const int fd = ready[i].data.fd;
      if (fd == signals) {
        running = false;
        break;
      }
      bool is_listener = false;
      for (const Listener& listener : listeners) {
        if (fd != listener.fd) continue;
        is_listener = true;
        const int peer = ::accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (peer < 0) break;
        if (listener.unix_path.empty()) {
          const int one = 1;
          ::setsockopt(peer, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        if (connections.size() <= static_cast<std::size_t>(peer))
          connections.resize(static_cast<std::size_t>(peer) + 1);
        auto& connection = connections[static_cast<std::size_t>(peer)];
        connection = std::make_unique<Connection>();
        connection->fd = peer;
        connection->out = greeting;
        watch(poller, EPOLL_CTL_ADD, peer, EPOLLIN);
        if (!flush(poller, *connection)) close_connection(peer);
        break;
      }
      if (is_listener) continue;
      Connection* connection = connections[static_cast<std::size_t>(fd)].get();
      if (connection == nullptr) continue;
      if ((ready[i].events & EPOLLOUT) && !flush(poller, *connection)) {
        close_connection(fd);
        continue;
      }
      if (!(ready[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) continue;
      // One read, then one send of all it called for.
      const ssize_t n =
          ::recv(fd, connection->in.get() + connection->have, kReadBuffer - connection->have, 0);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n <= 0) {
        close_connection(fd);
        continue;
      }
      connection->have += static_cast<std::size_t>(n);
      if (!handle_frames(*connection, answer) || !flush(poller, *connection)) close_connection(fd);
    }
  }
  for (const Listener& listener : listeners)
    if (!listener.unix_path.empty()) ::unlink(listener.unix_path.c_str());
  return 0;
}
