#include "conduit/rpc/server.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <condition_variable>
#include <cstring>
#include <future>
#include <filesystem>
#include <list>
#include <mutex>
#include <set>
#include <thread>

#include "conduit/error.hpp"
#include "conduit/ipc/uri.hpp"
#include "rpc/connection.hpp"
#include "rpc/transports/shm_transport.hpp"

namespace conduit::rpc {

namespace {

using boost::system::error_code;
using tcp = asio::ip::tcp;
using local = asio::local::stream_protocol;

// ---- byte streams ------------------------------------------------------------

template <typename Socket>
class SocketStream : public ByteStream {
 public:
  SocketStream(Socket socket, Peer peer) : socket_(std::move(socket)), peer_(std::move(peer)) {
    error_code ignored;
    socket_.non_blocking(true, ignored);  // write() tries a send that must not block
  }
  asio::awaitable<std::size_t> read_some(asio::mutable_buffer into) override {
    auto [error, n] = co_await socket_.async_read_some(
        into, asio::as_tuple(asio::use_awaitable));
    if (error == asio::error::eof) co_return 0;
    if (error) throw boost::system::system_error(error);
    co_return n;
  }
  asio::awaitable<void> write(asio::const_buffer bytes) override {
    // A reply usually fits in the socket's buffer: sent right here, it needs
    // no asynchronous operation, whose completion Asio would post (and then
    // poll the reactor once more before running it). What does not fit
    // goes the asynchronous way.
    error_code error;
    const std::size_t sent = socket_.write_some(bytes, error);
    if (!error && sent == bytes.size()) co_return;
    if (error && error != asio::error::would_block && error != asio::error::try_again)
      throw boost::system::system_error(error);
    co_await asio::async_write(socket_, bytes + (error ? 0 : sent), asio::use_awaitable);
  }
  void close() override {
    native_.store(-1);  // abort() must not reach a descriptor number reused after this
    error_code ignored;
    socket_.shutdown(Socket::shutdown_both, ignored);
    socket_.close(ignored);
  }
  void abort() noexcept override {
    int fd = native_.load();
    if (fd >= 0) ::shutdown(fd, SHUT_RDWR);
  }
  const Peer& peer() const override { return peer_; }

 private:
  Socket socket_;
  std::atomic<int> native_{socket_.native_handle()};
  Peer peer_;
};

// A child's stdin and stdout as one stream.
class StdioStream : public ByteStream {
 public:
  StdioStream(asio::any_io_executor executor, int in, int out)
      : in_(executor, ::dup(in)), out_(executor, ::dup(out)) {
    peer_.address = "stdio";
  }
  asio::awaitable<std::size_t> read_some(asio::mutable_buffer into) override {
    auto [error, n] = co_await in_.async_read_some(into, asio::as_tuple(asio::use_awaitable));
    if (error == asio::error::eof) co_return 0;
    if (error) throw boost::system::system_error(error);
    co_return n;
  }
  asio::awaitable<void> write(asio::const_buffer bytes) override {
    co_await asio::async_write(out_, bytes, asio::use_awaitable);
  }
  void close() override {
    error_code ignored;
    in_.close(ignored);
    out_.close(ignored);
  }
  void abort() noexcept override {}
  const Peer& peer() const override { return peer_; }

 private:
  asio::posix::stream_descriptor in_, out_;
  Peer peer_;
};

// A shared-memory link as a byte stream, for the protocols that speak one
// (gRPC's HTTP/2): each ring message is a piece of the stream. The session's
// thread waits in the ring and hands what arrives to the waiting read
// (deliver); writes go straight into the ring.
// Interrupts the session thread's wait in the ring (ShmRing::interrupt),
// until the session lets go of the link (detach()).
class ShmWaker : public Waker {
 public:
  explicit ShmWaker(shm::Link& link) : link_(&link) {}
  void wake() noexcept override {
    std::lock_guard lock(mutex_);
    if (link_) link_->interrupt();
  }
  void detach() {
    std::lock_guard lock(mutex_);
    link_ = nullptr;
  }

 private:
  std::mutex mutex_;
  shm::Link* link_;
};

class ShmStream : public ByteStream {
 public:
  ShmStream(asio::any_io_executor executor, shm::Link& link, std::shared_ptr<ShmWaker> waker,
            Peer peer, std::string first)
      : link_(link),
        waker_(std::move(waker)),
        peer_(std::move(peer)),
        readable_(executor),
        buffer_(std::move(first)) {}

  asio::awaitable<std::size_t> read_some(asio::mutable_buffer into) override {
    for (;;) {
      if (closed_) throw boost::system::system_error(asio::error::operation_aborted);
      if (offset_ < buffer_.size()) {
        const std::size_t n = std::min(into.size(), buffer_.size() - offset_);
        std::memcpy(into.data(), buffer_.data() + offset_, n);
        offset_ += n;
        co_return n;
      }
      if (ended_) co_return 0;
      reading_ = true;
      readable_.expires_at(asio::steady_timer::time_point::max());
      co_await readable_.async_wait(asio::as_tuple(asio::use_awaitable));  // ended by deliver()
      reading_ = false;
    }
  }
  asio::awaitable<void> write(asio::const_buffer bytes) override {
    if (closed_) throw boost::system::system_error(asio::error::operation_aborted);
    try {
      link_.send_bytes(std::string_view(static_cast<const char*>(bytes.data()), bytes.size()));
    } catch (const Error&) {  // the peer is gone, or the server cancelled the link
      throw boost::system::system_error(asio::error::broken_pipe);
    }
    co_return;
  }
  void close() override {
    closed_ = true;
    readable_.cancel();
  }
  void abort() noexcept override { link_.cancel(); }
  const Peer& peer() const override { return peer_; }
  std::shared_ptr<Waker> waker() const override { return waker_; }

  // ---- the session thread's side (on the connection's executor) ----

  // A read waits and every byte delivered has been read.
  bool wants_bytes() const { return reading_ && offset_ == buffer_.size() && !ended_ && !closed_; }
  void deliver(std::string_view bytes) {
    buffer_.assign(bytes);
    offset_ = 0;
    readable_.cancel();
  }
  // The peer closed the link, died, or the server cut it off.
  void end() {
    ended_ = true;
    readable_.cancel();
  }

 private:
  shm::Link& link_;
  std::shared_ptr<ShmWaker> waker_;
  Peer peer_;
  asio::steady_timer readable_;
  std::string buffer_;
  std::size_t offset_ = 0;
  bool reading_ = false;
  bool ended_ = false;
  bool closed_ = false;
};

Peer tcp_peer(const tcp::socket& socket) {
  error_code error;
  auto endpoint = socket.remote_endpoint(error);
  Peer peer;
  if (!error) {
    auto address = endpoint.address();
    peer.address = (address.is_v6() ? "[" + address.to_string() + "]" : address.to_string()) +
                   ":" + std::to_string(endpoint.port());
  }
  return peer;
}

Peer unix_peer(local::socket& socket, const std::string& listener) {
  Peer peer;
  peer.address = listener;
  ucred credentials{};
  socklen_t length = sizeof credentials;
  if (::getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &credentials, &length) == 0)
    peer.credentials = ipc::PeerCredentials{credentials.pid, credentials.uid, credentials.gid};
  return peer;
}

}  // namespace

// ---- Connection ---------------------------------------------------------------

Connection::Connection(std::unique_ptr<ByteStream> stream,
                       asio::any_io_executor executor, asio::any_io_executor calls,
                       const ServiceTable& services,
                       const ServerOptions& options, const std::atomic<bool>& stopping,
                       CallThreads& call_threads)
    : stream_(std::move(stream)),
      executor_(executor),
      call_executor_(calls),
      timer_(executor),
      services_(services),
      options_(options),
      stopping_(stopping),
      call_threads_(call_threads) {}

asio::awaitable<std::size_t> Connection::read_some(asio::mutable_buffer into, Awaiting awaiting) {
  // Setting a timer is a system call, and this runs for every request: the
  // timer is set again only when the new deadline comes before the one it is
  // set for. When it fires early (the deadline moved later), it is set for
  // the deadline then in force; with no read waiting, it stops until the
  // next read. The timer's handler and this coroutine both run on the connection's executor.
  const auto now = std::chrono::steady_clock::now();
  std::chrono::milliseconds timeout;
  if (awaiting == Awaiting::next_request) {
    timeout = options_.idle_timeout;
    request_deadline_ = kNoDeadline;
    deadline_ = now + timeout;
  } else {
    timeout = options_.request_timeout;
    if (request_deadline_ == kNoDeadline) request_deadline_ = now + timeout;
    deadline_ = request_deadline_;
  }
  if (!timer_set_ || deadline_ < timer_expiry_) set_timer(deadline_);
  std::size_t n = 0;
  try {
    n = co_await stream_->read_some(into);
  } catch (const boost::system::system_error&) {
    deadline_ = kNoDeadline;
    if (timed_out_) {
      throw TimedOut(awaiting == Awaiting::next_request
                         ? "idle for " + std::to_string(timeout.count()) + " ms (idle timeout)"
                         : "the request was not whole within " + std::to_string(timeout.count()) +
                               " ms (request timeout)");
    }
    throw;
  }
  deadline_ = kNoDeadline;
  co_return n;
}

void Connection::set_timer(std::chrono::steady_clock::time_point expiry) {
  timer_set_ = true;
  timer_expiry_ = expiry;
  timer_.expires_at(expiry);  // a wait already set ends with operation_aborted
  // A wait that has fired is not cancelled by close(): the handler may run
  // after the connection is gone, so it holds a weak reference.
  timer_.async_wait([self = weak_from_this()](error_code error) {
    auto connection = self.lock();
    if (error || !connection) return;  // set again, or the connection closed
    connection->on_timer();
  });
}

void Connection::on_timer() {
  timer_set_ = false;
  if (deadline_ == kNoDeadline) return;
  if (std::chrono::steady_clock::now() < deadline_) {
    set_timer(deadline_);
    return;
  }
  timed_out_ = true;
  stream_->close();
}

asio::awaitable<void> Connection::write(std::string_view bytes) {
  co_await stream_->write(asio::buffer(bytes.data(), bytes.size()));
}

void Connection::close() {
  timer_.cancel();
  timer_set_ = false;
  stream_->close();
}

void Connection::abort() noexcept {
  cancelled_->store(true);
  stream_->abort();
}

// ---- Server -------------------------------------------------------------------

class Server::Impl {
 public:
  Impl(const ServiceTable& services, ServerOptions options)
      : services_(services),
        options_(with_threads_counted(options)),
        io_(options_.threads == 1 ? 1 : BOOST_ASIO_CONCURRENCY_HINT_DEFAULT),
        work_(asio::make_work_guard(io_)) {}

  static ServerOptions with_threads_counted(ServerOptions options) {
    if (options.threads == 0) options.threads = std::max(1u, std::thread::hardware_concurrency());
    return options;
  }

  // Where a connection's handlers run: each on a strand of its own when
  // several threads serve; with one thread, the io_context itself, which
  // saves a post (and a poll of the reactor) on every completion.
  asio::any_io_executor connection_executor() {
    if (options_.threads == 1) return io_.get_executor();
    return asio::make_strand(io_.get_executor());
  }

  std::string listen(std::string_view text) {
    // shm:PATH names the handshake socket's path, which may have any number
    // of slashes (ipc's shm: is a POSIX segment name, which may not).
    if (text.rfind("shm:", 0) == 0) return listen_shm(std::string(text.substr(4)), text);
    ipc::Uri uri = ipc::Uri::parse(text);
    if (uri.scheme == "tcp") {
      error_code parse_error;
      auto ip = asio::ip::make_address(uri.host, parse_error);
      if (parse_error)
        throw InvalidUri(std::string(text) + ": the host must be an IP address (127.0.0.1, ::1)");
      tcp::endpoint endpoint(ip, uri.port);
      auto acceptor = std::make_shared<tcp::acceptor>(io_);
      error_code error;
      acceptor->open(endpoint.protocol(), error);
      if (!error) acceptor->set_option(tcp::acceptor::reuse_address(true), error);
      if (!error) acceptor->bind(endpoint, error);
      if (!error) acceptor->listen(asio::socket_base::max_listen_connections, error);
      if (error)
        throw SystemError("listen", std::string(text), error.value(),
                          error == asio::error::address_in_use ? "another process listens there"
                                                               : "");
      auto bound = acceptor->local_endpoint();
      std::string address = bound.address().is_v6() ? "[" + bound.address().to_string() + "]"
                                                     : bound.address().to_string();
      std::string result = "tcp://" + address + ":" + std::to_string(bound.port());
      tcp_acceptors_.push_back(acceptor);
      asio::co_spawn(io_, accept_tcp(acceptor), asio::detached);
      return result;
    }
    if (uri.scheme == "unix") {
      std::string path = uri.path;
      std::string result = "unix:" + path;
      asio::co_spawn(io_, accept_unix(local_acceptor(path, text), result), asio::detached);
      return result;
    }
    throw InvalidUri(std::string(text) +
                     ": a server listens on tcp://HOST:PORT, unix:/path or shm:/path");
  }

  std::string listen_shm(const std::string& path, std::string_view text) {
    if (path.empty() || path[0] != '/')
      throw InvalidUri(std::string(text) + ": shm: takes the absolute path of the handshake socket");
    std::string result = "shm:" + path;
    asio::co_spawn(io_, accept_shm(local_acceptor(path, text), result), asio::detached);
    return result;
  }

  // A UNIX stream socket listening on `path` ("/path", or "@name" for an
  // abstract one), its file removed at shutdown.
  std::shared_ptr<local::acceptor> local_acceptor(const std::string& path, std::string_view text) {
    const bool abstract = !path.empty() && path[0] == '@';
    if (!abstract) remove_stale_socket(path, text);
    auto acceptor = std::make_shared<local::acceptor>(io_);
    error_code error;
    local::endpoint endpoint(abstract ? std::string(1, '\0') + path.substr(1) : path);
    acceptor->open(endpoint.protocol(), error);
    if (!error) acceptor->bind(endpoint, error);
    if (!error) acceptor->listen(asio::socket_base::max_listen_connections, error);
    if (error) throw SystemError("listen", std::string(text), error.value());
    if (!abstract) socket_files_.push_back(path);
    unix_acceptors_.push_back(acceptor);
    return acceptor;
  }

  void start() {
    std::lock_guard lock(mutex_);
    if (!threads_.empty()) return;
    for (std::size_t i = 0; i < options_.threads; ++i) threads_.emplace_back([this] { io_.run(); });
  }

  void serve_stdio(int in, int out) {
    auto executor = connection_executor();
    auto connection = std::make_shared<Connection>(
        std::make_unique<StdioStream>(executor, in, out), executor, io_.get_executor(), services_,
        options_, stopping_, call_threads_);
    std::promise<void> done;
    auto finished = done.get_future();
    track(connection);
    asio::co_spawn(executor, serve(connection), [&done](std::exception_ptr) { done.set_value(); });
    start();
    finished.wait();
  }

  void shutdown(std::chrono::milliseconds grace) {
    {
      std::lock_guard lock(mutex_);
      if (stopped_) return;
      stopping_.store(true);
    }
    asio::post(io_, [this] {
      error_code ignored;
      for (auto& acceptor : tcp_acceptors_) acceptor->close(ignored);
      for (auto& acceptor : unix_acceptors_) acceptor->close(ignored);
    });
    close_connections(/*only_idle=*/true);
    {
      std::unique_lock lock(mutex_);
      changed_.wait_for(lock, grace, [this] { return connections_.empty(); });
    }
    close_connections(/*only_idle=*/false);
    stop_shm_sessions();
    work_.reset();
    {
      std::unique_lock lock(mutex_);
      changed_.wait_for(lock, std::chrono::seconds(2), [this] { return connections_.empty(); });
    }
    // Calls on threads of their own have been cancelled with their
    // connections; their last post must land before the executors go.
    call_threads_.wait_until_none();
    io_.stop();
    std::list<std::thread> threads;
    {
      std::lock_guard lock(mutex_);
      threads.swap(threads_);
    }
    for (auto& thread : threads)
      if (thread.get_id() != std::this_thread::get_id()) thread.join();
    for (const auto& path : socket_files_) ::unlink(path.c_str());
    std::lock_guard lock(mutex_);
    stopped_ = true;
    changed_.notify_all();
  }

  void wait() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [this] { return stopped_; });
  }

 private:
  static void remove_stale_socket(const std::string& path, std::string_view uri) {
    std::error_code error;
    if (!std::filesystem::is_socket(path, error)) {
      if (std::filesystem::exists(path, error))
        throw SystemError("listen", std::string(uri), EEXIST,
                          "the path exists and is not a socket; remove it or choose another");
      return;
    }
    // A socket file nobody accepts on is left from a process that died.
    int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
    bool live = ::connect(probe, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
    ::close(probe);
    if (live)
      throw SystemError("listen", std::string(uri), EADDRINUSE, "another server listens there");
    ::unlink(path.c_str());
  }

  asio::awaitable<void> accept_tcp(std::shared_ptr<tcp::acceptor> acceptor) {
    for (;;) {
      auto executor = connection_executor();
      tcp::socket socket(executor);
      auto [error] = co_await acceptor->async_accept(socket, asio::as_tuple(asio::use_awaitable));
      if (error == asio::error::operation_aborted || !acceptor->is_open()) co_return;
      if (error) continue;
      socket.set_option(tcp::no_delay(true), error);
      Peer peer = tcp_peer(socket);
      admit(std::make_unique<SocketStream<tcp::socket>>(std::move(socket), std::move(peer)),
            executor);
    }
  }

  asio::awaitable<void> accept_unix(std::shared_ptr<local::acceptor> acceptor, std::string uri) {
    for (;;) {
      auto executor = connection_executor();
      local::socket socket(executor);
      auto [error] = co_await acceptor->async_accept(socket, asio::as_tuple(asio::use_awaitable));
      if (error == asio::error::operation_aborted || !acceptor->is_open()) co_return;
      if (error) continue;
      Peer peer = unix_peer(socket, uri);
      admit(std::make_unique<SocketStream<local::socket>>(std::move(socket), std::move(peer)),
            executor);
    }
  }

  asio::awaitable<void> accept_shm(std::shared_ptr<local::acceptor> acceptor, std::string uri) {
    for (;;) {
      local::socket socket(io_);
      auto [error] = co_await acceptor->async_accept(socket, asio::as_tuple(asio::use_awaitable));
      if (error == asio::error::operation_aborted || !acceptor->is_open()) co_return;
      if (error) continue;
      Peer peer = unix_peer(socket, uri);
      ipc::FileDescriptor fd(socket.release());
      std::lock_guard lock(mutex_);
      for (auto it = shm_sessions_.begin(); it != shm_sessions_.end();) {
        if ((*it)->done) {
          (*it)->thread.join();
          it = shm_sessions_.erase(it);
        } else {
          ++it;
        }
      }
      if (stopping_ || shm_sessions_.size() >= options_.max_connections) continue;
      auto session = std::make_shared<ShmSession>();
      shm_sessions_.push_back(session);
      session->thread = std::thread(&Impl::serve_shm, this, session, std::move(fd), std::move(peer));
    }
  }

  // A shared-memory peer is served by a thread of its own, blocked in the
  // ring between messages (spinning briefly first, as ShmRing does).
  struct ShmSession {
    std::thread thread;
    std::mutex mutex;
    shm::Link* link = nullptr;
    std::atomic<bool> done{false};
  };

  void serve_shm(std::shared_ptr<ShmSession> session, ipc::FileDescriptor fd, Peer peer) {
    try {
      shm::Link link = shm::accept_link(std::move(fd), options_.shm_ring_bytes);
      {
        std::lock_guard lock(session->mutex);
        session->link = &link;
      }
      if (stopping_) link.cancel();
      const MessageProtocol* protocol = nullptr;
      while (auto message = link.receive()) {
        if (!protocol) {
          for (const auto& candidate : message_protocols())
            if (candidate->match(*message)) protocol = candidate.get();
          if (!protocol) {
            // Not a message protocol: a byte stream one (gRPC), perhaps.
            serve_shm_stream(link, peer, std::string(*message));
            break;
          }
        }
        CallContext context;
        context.peer = peer;
        std::optional<std::string> reply = protocol->handle(*message, context, services_, options_);
        if (reply) link.send(*reply);
      }
      std::lock_guard lock(session->mutex);
      session->link = nullptr;
    } catch (const std::exception&) {
      std::lock_guard lock(session->mutex);
      session->link = nullptr;
      // The peer died, closed, sent garbage, or the server is stopping.
    }
    session->done = true;
  }

  // Serves a stream protocol over a shared-memory link on this thread, which
  // runs the connection's executor (an io_context of its own) between waits
  // in the ring; the calls of the connection run here too, so a call costs
  // no wake-up of another thread (tens of microseconds on a VM). Work posted
  // from other threads (streaming handlers, shutdown) interrupts the wait.
  // `first`: the first message, which no message protocol took.
  void serve_shm_stream(shm::Link& link, const Peer& peer, std::string first) {
    // How long the ring is waited on before the executor's timers are looked
    // at (idle and request timeouts fire this much late at most).
    constexpr auto kTimerSlice = std::chrono::milliseconds(50);
    asio::io_context io(1);
    auto waker = std::make_shared<ShmWaker>(link);
    auto owned =
        std::make_unique<ShmStream>(io.get_executor(), link, waker, peer, std::move(first));
    ShmStream& stream = *owned;
    auto connection = std::make_shared<Connection>(std::move(owned), io.get_executor(),
                                                   io.get_executor(), services_, options_,
                                                   stopping_, call_threads_);
    track(connection);
    bool done = false;
    bool link_open = true;
    asio::co_spawn(io, serve(connection), [&done](std::exception_ptr) { done = true; });
    for (;;) {
      io.restart();
      io.poll();
      if (done) break;
      if (link_open && stream.wants_bytes()) {
        try {
          bool timed_out = false;
          if (auto message = link.receive(kTimerSlice, &timed_out))
            stream.deliver(*message);
          else if (!timed_out)
            stream.end();  // the client closed the link
        } catch (const std::exception&) {
          // The client died or broke the ring, or the server cut the link.
          link_open = false;
          connection->abort();
          stream.end();
        }
      } else {
        io.run_one_for(kTimerSlice);
      }
    }
    // Handlers still queued (a shutdown's post) go before the executor, and
    // a thread that posted late finds no link to wake.
    io.restart();
    io.poll();
    waker->detach();
  }

  void stop_shm_sessions() {
    std::list<std::shared_ptr<ShmSession>> sessions;
    {
      std::lock_guard lock(mutex_);
      sessions.swap(shm_sessions_);
    }
    for (auto& session : sessions) {
      {
        std::lock_guard lock(session->mutex);
        if (session->link) session->link->cancel();
      }
      if (session->thread.joinable()) session->thread.join();
    }
  }

  void admit(std::unique_ptr<ByteStream> stream, asio::any_io_executor executor) {
    {
      std::lock_guard lock(mutex_);
      if (connections_.size() >= options_.max_connections || stopping_) {
        stream->close();
        return;
      }
    }
    auto connection =
        std::make_shared<Connection>(std::move(stream), executor, io_.get_executor(), services_,
                                     options_, stopping_, call_threads_);
    track(connection);
    asio::co_spawn(executor, serve(connection), asio::detached);
  }

  void track(const std::shared_ptr<Connection>& connection) {
    std::lock_guard lock(mutex_);
    connections_.insert(connection);
  }

  void forget(const std::shared_ptr<Connection>& connection) {
    std::lock_guard lock(mutex_);
    connections_.erase(connection);
    changed_.notify_all();
  }

  // Idle connections are closed on their executors; once the grace is over,
  // busy ones are also cut off at once (their handlers see cancelled()).
  void close_connections(bool only_idle) {
    std::lock_guard lock(mutex_);
    for (const auto& connection : connections_) {
      if (only_idle && !connection->idle()) continue;
      if (!only_idle) {
        connection->abort();
        connection->post([connection] { connection->close(); });
      } else {
        connection->post([connection] { connection->shut_down_idle(); });
      }
    }
  }

  // Reads until a protocol recognises the first bytes, then hands over.
  asio::awaitable<void> serve(std::shared_ptr<Connection> connection) {
    try {
      std::string pending;
      char chunk[4096];
      const ServerProtocol* chosen = nullptr;
      while (!chosen) {
        std::size_t n = co_await connection->read_some(
            asio::buffer(chunk), pending.empty() ? Connection::Awaiting::next_request
                                                 : Connection::Awaiting::rest_of_request);
        if (n == 0) break;
        pending.append(chunk, n);
        bool undecided = false;
        for (const auto& protocol : server_protocols()) {
          auto match = protocol->match(pending);
          if (match == ServerProtocol::Match::yes) {
            chosen = protocol.get();
            break;
          }
          if (match == ServerProtocol::Match::need_more) undecided = true;
        }
        if (!chosen && (!undecided || pending.size() > 64)) break;  // nobody speaks this
      }
      if (chosen) {
        connection->set_idle(false);
        co_await chosen->serve(*connection, std::move(pending));
      }
    } catch (const std::exception&) {
      // The peer went away, timed out or sent what no protocol accepts: this
      // connection ends, the server goes on.
    }
    connection->close();
    forget(connection);
  }

  const ServiceTable& services_;
  ServerOptions options_;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::vector<std::shared_ptr<tcp::acceptor>> tcp_acceptors_;
  std::vector<std::shared_ptr<local::acceptor>> unix_acceptors_;
  std::vector<std::string> socket_files_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::set<std::shared_ptr<Connection>> connections_;
  std::list<std::shared_ptr<ShmSession>> shm_sessions_;
  std::list<std::thread> threads_;
  std::atomic<bool> stopping_{false};
  CallThreads call_threads_;
  bool stopped_ = false;
};

Server::Server(const ServiceTable& services, ServerOptions options)
    : impl_(std::make_unique<Impl>(services, options)) {}

Server::~Server() {
  impl_->shutdown(std::chrono::milliseconds(0));
}

std::string Server::listen(std::string_view uri) {
  return impl_->listen(uri);
}

void Server::start() {
  impl_->start();
}

void Server::serve_stdio(int in, int out) {
  impl_->serve_stdio(in, out);
}

void Server::shutdown(std::chrono::milliseconds grace) {
  impl_->shutdown(grace);
}

void Server::wait() {
  impl_->wait();
}

}  // namespace conduit::rpc
