#include "rpc/transports/listener.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstdio>
#include <tuple>

#include "conduit/error.hpp"
#include "rpc/transports/streams.hpp"

namespace conduit::rpc::transport {

using boost::system::error_code;
using tcp = asio::ip::tcp;
using local = asio::local::stream_protocol;

namespace {

// Who is on the other end of an accepted TCP connection ("127.0.0.1:53412").
Peer tcp_peer(const tcp::socket& socket) {
  error_code error;
  auto endpoint = socket.remote_endpoint(error);
  Peer peer;
  if (!error) {
    auto address = endpoint.address();
    peer.address = (address.is_v6() ? "[" + address.to_string() + "]" : address.to_string()) + ":" +
                   std::to_string(endpoint.port());
  }
  return peer;
}

// ... of an accepted UNIX connection: the listener's address and the
// caller's credentials (SO_PEERCRED).
Peer unix_peer(int socket, const std::string& listener_uri) {
  Peer peer;
  peer.address = listener_uri;
  ipc::UnixSocket adopted(ipc::FileDescriptor(::dup(socket)), ipc::UnixSocketType::stream);
  try {
    peer.credentials = adopted.peer_credentials();
  } catch (const Error&) {
    // A peer already gone has no credentials to give; the connection ends
    // at its first read.
  }
  return peer;
}

// The accept failed for want of descriptors or kernel memory, not because
// of the connection it was taking.
bool out_of_descriptors(const error_code& error) {
  return error == asio::error::no_descriptors || error == asio::error::no_buffer_space ||
         error == asio::error::no_memory ||
         error == boost::system::errc::too_many_files_open_in_system;
}

std::string descriptor_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return "?";
  return std::to_string(limit.rlim_cur);
}

std::string octal(mode_t mode) {
  char text[16];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode));
  return text;
}

ipc::FileDescriptor open_reserve() {
  return ipc::FileDescriptor(::open("/dev/null", O_RDONLY | O_CLOEXEC));
}

}  // namespace

std::optional<std::string> Throttle::note(std::string_view what) {
  const auto now = std::chrono::steady_clock::now();
  if (last_ && now - *last_ < interval_) {
    ++held_back_;
    return std::nullopt;
  }
  std::string line(what);
  if (held_back_ > 0)
    line += " (and " + std::to_string(held_back_) + " more times since the last such report)";
  held_back_ = 0;
  last_ = now;
  return line;
}

Listener::Listener(asio::io_context& io, const Address& address, mode_t socket_mode)
    : address_(address), socket_mode_(socket_mode), reserve_(open_reserve()) {
  if (address.kind == Kind::tcp) {
    error_code error;
    auto ip = asio::ip::make_address(address.host, error);
    if (error)
      throw InvalidUri(address.uri() + ": a server's host must be an IP address (127.0.0.1, ::1)");
    tcp::endpoint endpoint(ip, address.port);
    tcp_.emplace(io);
    tcp_->open(endpoint.protocol(), error);
    if (!error) tcp_->set_option(tcp::acceptor::reuse_address(true), error);
    if (!error) tcp_->bind(endpoint, error);
    if (!error) tcp_->listen(asio::socket_base::max_listen_connections, error);
    if (error)
      throw SystemError(
          "listen", address.uri(), error.value(),
          error == asio::error::address_in_use ? "another process listens there" : "");
    Address bound = address;
    bound.port = tcp_->local_endpoint().port();
    uri_ = bound.uri();
    return;
  }
  if (address.kind != Kind::unix_socket && address.kind != Kind::shm)
    throw InvalidUri(address.uri() + ": not an address a server listens on with a socket");
  if ((socket_mode & ~mode_t{0777}) != 0 || (socket_mode & 0600) != 0600)
    throw Error(address.uri() + ": socket mode " + octal(socket_mode) +
                " is not permission bits that leave the owner read and write permission; give "
                "one such as 0600 (this user), 0660 (and its group) or 0666 (anyone)");
  const ipc::UnixAddress unix_address = ipc::UnixAddress::parse(address.path);
  abstract_ = unix_address.abstract();
  // The mode is set between bind and listen, before anyone can connect.
  bound_ = ipc::BoundUnixSocket::bind(unix_address, ipc::UnixSocketType::stream,
                                      asio::socket_base::max_listen_connections, socket_mode);
  local_.emplace(io);
  error_code error;
  local_->assign(local(), ::dup(bound_.fd()), error);
  if (error) throw SystemError("listen", address.uri(), error.value());
  uri_ = address.uri();
}

Listener::~Listener() = default;

asio::awaitable<void> Listener::accept(Handlers handlers) {
  std::chrono::milliseconds backoff{0};
  for (;;) {
    error_code error;
    if (tcp_) {
      auto executor = handlers.executor_for();
      tcp::socket socket(executor);
      std::tie(error) = co_await tcp_->async_accept(socket, asio::as_tuple(asio::use_awaitable));
      if (error == asio::error::operation_aborted || !tcp_->is_open()) co_return;
      if (!error) {
        backoff = std::chrono::milliseconds(0);
        socket.set_option(tcp::no_delay(true), error);
        Peer peer = tcp_peer(socket);
        handlers.on_stream(
            std::make_unique<SocketStream<tcp::socket>>(std::move(socket), std::move(peer)),
            executor);
        continue;
      }
    } else {
      auto executor = address_.kind == Kind::shm ? local_->get_executor() : handlers.executor_for();
      local::socket socket(executor);
      std::tie(error) = co_await local_->async_accept(socket, asio::as_tuple(asio::use_awaitable));
      if (error == asio::error::operation_aborted || !local_->is_open()) co_return;
      if (!error) {
        backoff = std::chrono::milliseconds(0);
        Peer peer = unix_peer(socket.native_handle(), uri_);
        if (!admits(peer)) {
          const std::string who = peer.credentials
                                      ? "uid " + std::to_string(peer.credentials->uid) + " (pid " +
                                            std::to_string(peer.credentials->pid) + ")"
                                      : "a peer whose credentials could not be read";
          const std::string admitted =
              (socket_mode_ & 0020) != 0
                  ? "uid " + std::to_string(::geteuid()) + " and gid " +
                        std::to_string(::getegid()) + " only; socket mode 0666 admits anyone"
                  : "uid " + std::to_string(::geteuid()) +
                        " only; socket mode 0660 admits its group too, 0666 anyone";
          if (auto line = refused_.note(uri_ + ": refused a connection from " + who +
                                        ": this abstract socket admits " + admitted))
            if (handlers.report) handlers.report(*line);
          socket.close(error);  // after the report: a peer that saw it closed finds it made
          continue;
        }
        if (address_.kind == Kind::shm) {
          handlers.on_shm(ipc::FileDescriptor(socket.release()), std::move(peer));
        } else {
          handlers.on_stream(
              std::make_unique<SocketStream<local::socket>>(std::move(socket), std::move(peer)),
              executor);
        }
        continue;
      }
    }
    // A connection that failed before it was taken (ECONNABORTED) leaves
    // the next one to take; running out of descriptors does not go away by
    // trying again at once.
    if (out_of_descriptors(error)) co_await wait_for_descriptors(handlers, backoff);
  }
}

asio::awaitable<void> Listener::wait_for_descriptors(const Handlers& handlers,
                                                     std::chrono::milliseconds& backoff) {
  const bool made_room = handlers.make_room && handlers.make_room();
  const std::size_t turned_away = made_room ? 0 : turn_away_waiting();
  const std::string action = made_room
                                 ? "closing the connection idle longest to make room"
                                 : "every connection is busy: " + std::to_string(turned_away) +
                                       " waiting connections were closed at once";
  if (auto line =
          out_of_descriptors_.note(uri_ + ": out of file descriptors (the limit is " +
                                   descriptor_limit() + ", RLIMIT_NOFILE); " + action +
                                   ". Raise the limit (ulimit -n) or lower the connection limit"))
    if (handlers.report) handlers.report(*line);
  constexpr std::chrono::milliseconds kLongestPause{1000};
  backoff = std::min(kLongestPause, std::max(std::chrono::milliseconds(1), backoff * 2));
  asio::steady_timer pause(co_await asio::this_coro::executor, backoff);
  co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
}

std::size_t Listener::turn_away_waiting() {
  // The reserve is given up for as long as it takes to accept and close
  // what waits; another thread may take the descriptor meanwhile, and then
  // the reserve comes back on a later try.
  if (!reserve_) {
    reserve_ = open_reserve();
    return 0;
  }
  reserve_.reset();
  const int listening = native_handle();
  std::size_t turned_away = 0;
  constexpr std::size_t kAtOnce = 64;
  for (; turned_away < kAtOnce; ++turned_away) {
    pollfd waiting{listening, POLLIN, 0};
    if (::poll(&waiting, 1, 0) != 1) break;
    const int fd = ::accept4(listening, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) break;
    ::close(fd);
  }
  reserve_ = open_reserve();
  return turned_away;
}

int Listener::native_handle() {
  return tcp_ ? tcp_->native_handle() : local_->native_handle();
}

bool Listener::admits(const Peer& peer) const {
  if (!abstract_) return true;
  if (!peer.credentials) return false;
  if (socket_mode_ & 0002) return true;
  if (peer.credentials->uid == ::geteuid()) return true;
  return (socket_mode_ & 0020) != 0 && peer.credentials->gid == ::getegid();
}

void Listener::close() {
  error_code ignored;
  if (tcp_) tcp_->close(ignored);
  if (local_) local_->close(ignored);
}

}  // namespace conduit::rpc::transport
