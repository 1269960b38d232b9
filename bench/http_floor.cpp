// The floor under any HTTP/1.1 JSON-RPC server on this machine: one thread,
// one epoll loop, and per request only what every server must do: read it,
// find its end (Content-Length), and write an answer as large as the request
// body (the body itself, after a fixed head). No JSON is read or written.
//
//   http_floor PORT   serves on 127.0.0.1:PORT (0: a port the kernel picks),
//                     prints "ready PORT", stops on SIGTERM or SIGINT
//
// bench/jsonrpc_http_bench.py runs it beside conduit and libjson-rpc-cpp: the
// CPU time it spends per call is what the kernel costs, which no server can
// go below with one read and one write per call.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <unordered_map>

namespace {

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "http_floor: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

// Answers every whole request in `pending` on `fd`; false when the
// connection must close (a request without Content-Length, a failed write).
bool answer(int fd, std::string& pending) {
  for (;;) {
    const std::size_t head_end = pending.find("\r\n\r\n");
    if (head_end == std::string::npos) return pending.size() < 65536;
    const std::string_view head(pending.data(), head_end);
    std::size_t field = head.find("Content-Length:");
    if (field == std::string_view::npos) field = head.find("content-length:");
    if (field == std::string_view::npos) return false;
    const std::size_t length = std::strtoul(pending.c_str() + field + 15, nullptr, 10);
    const std::size_t body = head_end + 4;
    if (pending.size() < body + length) return true;
    std::string reply = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                        std::to_string(length) + "\r\n\r\n";
    reply.append(pending, body, length);
    if (::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(reply.size()))
      return false;
    pending.erase(0, body + length);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: http_floor PORT\n");
    return 2;
  }
  sigset_t stopping;
  sigemptyset(&stopping);
  sigaddset(&stopping, SIGTERM);
  sigaddset(&stopping, SIGINT);
  sigprocmask(SIG_BLOCK, &stopping, nullptr);
  const int signals = ::signalfd(-1, &stopping, SFD_CLOEXEC);

  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  const int one = 1;
  ::setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(std::atoi(argv[1])));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) die("bind");
  if (::listen(listener, 128) != 0) die("listen");
  socklen_t length = sizeof address;
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length);

  const int poller = ::epoll_create1(EPOLL_CLOEXEC);
  for (int fd : {listener, signals}) {
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.fd = fd;
    ::epoll_ctl(poller, EPOLL_CTL_ADD, fd, &event);
  }
  std::printf("ready %d\n", ntohs(address.sin_port));
  std::fflush(stdout);

  std::unordered_map<int, std::string> pending;
  char chunk[65536];
  epoll_event ready[64];
  for (;;) {
    const int count = ::epoll_wait(poller, ready, 64, -1);
    if (count < 0 && errno != EINTR) die("epoll_wait");
    for (int i = 0; i < count; ++i) {
      const int fd = ready[i].data.fd;
      if (fd == signals) return 0;
      if (fd == listener) {
        const int peer = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (peer < 0) continue;
        ::setsockopt(peer, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        epoll_event event{};
        event.events = EPOLLIN;
        event.data.fd = peer;
        ::epoll_ctl(poller, EPOLL_CTL_ADD, peer, &event);
        continue;
      }
      const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
      if (n < 0 && errno == EAGAIN) continue;
      std::string& buffer = pending[fd];
      if (n > 0) buffer.append(chunk, static_cast<std::size_t>(n));
      if (n <= 0 || !answer(fd, buffer)) {
        ::close(fd);
        pending.erase(fd);
      }
    }
  }
}
