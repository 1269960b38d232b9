#include "conduit/rpc/server.hpp"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <condition_variable>
#include <cstdio>
#include <future>
#include <list>
#include <mutex>
#include <set>
#include <thread>

#include "conduit/error.hpp"
#include "rpc/call_runner.hpp"
#include "rpc/connection.hpp"
#include "rpc/protocol.hpp"
#include "rpc/transports/address.hpp"
#include "rpc/transports/listener.hpp"
#include "rpc/transports/shm_transport.hpp"
#include "rpc/transports/streams.hpp"

namespace conduit::rpc {

// ---- Connection ---------------------------------------------------------------

Connection::Connection(std::unique_ptr<ByteStream> stream, asio::any_io_executor executor,
                       asio::any_io_executor calls, const ServiceTable& services,
                       const ServerOptions& options, const std::atomic<bool>& stopping,
                       CallThreads& call_threads)
    : stream_(std::move(stream)),
      executor_(executor),
      call_executor_(calls),
      timer_(executor),
      services_(services),
      options_(options),
      stopping_(stopping),
      call_threads_(call_threads) {
  if (options.handshake_timeout.count() > 0)
    handshake_deadline_ = std::chrono::steady_clock::now() + options.handshake_timeout;
}

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
  const auto expiry = deadline_in_force();
  if (!timer_set_ || expiry < timer_expiry_) set_timer(expiry);
  std::size_t n = 0;
  try {
    n = co_await stream_->read_some(into);
  } catch (const boost::system::system_error&) {
    deadline_ = kNoDeadline;
    if (timed_out_) {
      if (timed_out_in_handshake_)
        throw TimedOut("no whole call within " +
                       std::to_string(options_.handshake_timeout.count()) +
                       " ms of connecting (handshake timeout)");
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

// The first call may come while a read waits (calls run on other threads),
// so whether the handshake bounds the read is asked each time the timer
// fires.
std::chrono::steady_clock::time_point Connection::deadline_in_force() const {
  if (deadline_ != kNoDeadline && handshaking() && handshake_deadline_ < deadline_)
    return handshake_deadline_;
  return deadline_;
}

void Connection::set_timer(std::chrono::steady_clock::time_point expiry) {
  timer_set_ = true;
  timer_expiry_ = expiry;
  timer_.expires_at(expiry);  // a wait already set ends with operation_aborted
  // A wait that has fired is not cancelled by close(): the handler may run
  // after the connection is gone, so it holds a weak reference.
  timer_.async_wait([self = weak_from_this()](boost::system::error_code error) {
    auto connection = self.lock();
    if (error || !connection) return;  // set again, or the connection closed
    connection->on_timer();
  });
}

void Connection::on_timer() {
  timer_set_ = false;
  const auto expiry = deadline_in_force();
  if (expiry == kNoDeadline) return;
  if (std::chrono::steady_clock::now() < expiry) {
    set_timer(expiry);
    return;
  }
  timed_out_ = true;
  timed_out_in_handshake_ = expiry != deadline_;
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
    const transport::Address address = transport::parse_address(text, transport::Role::server);
    if (address.kind == transport::Kind::stdio)
      throw InvalidUri(
          "stdio: a server serves its stdin and stdout with serve_stdio(), not listen()");
    auto listener = std::make_shared<transport::Listener>(io_, address, options_.unix_socket_mode);
    transport::Listener::Handlers handlers;
    handlers.executor_for = [this] { return connection_executor(); };
    handlers.on_stream = [this](std::unique_ptr<ByteStream> stream,
                                asio::any_io_executor executor) {
      admit(std::move(stream), executor);
    };
    handlers.on_shm = [this](ipc::FileDescriptor socket, Peer peer) {
      start_shm_session(std::move(socket), std::move(peer));
    };
    handlers.make_room = [this] {
      std::lock_guard lock(mutex_);
      return close_idle_longest_locked();
    };
    handlers.report = [this](std::string_view line) { report(line); };
    std::lock_guard lock(mutex_);
    listeners_.push_back(listener);
    asio::co_spawn(io_, listener->accept(std::move(handlers)), asio::detached);
    return listener->uri();
  }

  void start() {
    std::lock_guard lock(mutex_);
    if (!threads_.empty()) return;
    for (std::size_t i = 0; i < options_.threads; ++i) threads_.emplace_back([this] { io_.run(); });
  }

  void serve_stdio(int in, int out) {
    auto executor = connection_executor();
    auto connection = std::make_shared<Connection>(
        std::make_unique<transport::StdioStream>(executor, in, out), executor, io_.get_executor(),
        services_, options_, stopping_, call_threads_);
    // The parent that spawned the server is its one peer here: neither
    // bounded by the handshake time nor closed to make room for others.
    connection->end_handshake();
    connection->keep_open_for_room();
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
      std::lock_guard lock(mutex_);
      for (auto& listener : listeners_) listener->close();
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
    {
      std::lock_guard lock(mutex_);
      listeners_.clear();  // and with them the socket files
    }
    std::lock_guard lock(mutex_);
    stopped_ = true;
    changed_.notify_all();
  }

  void wait() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [this] { return stopped_; });
  }

 private:
  void start_shm_session(ipc::FileDescriptor fd, Peer peer) {
    std::lock_guard lock(mutex_);
    if (stopping_ || shm_sessions_.size() >= options_.max_connections) return;
    auto session = std::make_shared<ShmSession>();
    shm_sessions_.push_back(session);
    session->thread = std::thread(&Impl::serve_shm, this, session, std::move(fd), std::move(peer));
  }

  // A shared-memory peer is served by a thread of its own, blocked in the
  // ring between messages (spinning briefly first, as ShmRing does). The
  // session lasts as long as the kernel says the peer does: the link's
  // socket hangs up when the peer closes or dies, whatever it wrote into the
  // shared memory. Whoever takes a session out of shm_sessions_ joins its
  // thread.
  struct ShmSession {
    std::thread thread;
    std::mutex mutex;
    shm::Link* link = nullptr;
  };

  void serve_shm(std::shared_ptr<ShmSession> session, ipc::FileDescriptor fd, Peer peer) {
    try {
      shm::Link link = shm::accept_link(std::move(fd), options_.shm_ring_bytes);
      {
        std::lock_guard lock(session->mutex);
        session->link = &link;
      }
      if (stopping_) link.cancel();
      link.wait_until_attached(options_.shm_attach_timeout);
      const MessageProtocol* protocol = nullptr;
      // The first message, which must come within the handshake time.
      auto message = link.receive(options_.handshake_timeout.count() > 0
                                      ? std::chrono::nanoseconds(options_.handshake_timeout)
                                      : ipc::kWaitForever);
      for (; message; message = link.receive()) {
        if (!protocol) {
          for (const auto& candidate : message_protocols())
            if (candidate->match(*message)) protocol = candidate.get();
          if (!protocol) {
            // Not a message protocol: one spoken as a byte stream, perhaps.
            serve_shm_stream(link, peer, std::string(*message));
            break;
          }
        }
        CallContext context = make_call_context(options_, protocol->name(), peer);
        std::optional<std::string> reply = protocol->handle(*message, context, services_, options_);
        if (reply) link.send(*reply);
      }
      std::lock_guard lock(session->mutex);
      session->link = nullptr;
    } catch (const std::exception&) {
      std::lock_guard lock(session->mutex);
      session->link = nullptr;
      // The peer died, closed, did not attach in time, sent garbage, or the
      // server is stopping.
    }
    // The thread is joined on the server's threads as soon as it has ended
    // (or by shutdown, if that comes first).
    asio::post(io_, [this, session] { end_shm_session(session); });
  }

  void end_shm_session(const std::shared_ptr<ShmSession>& session) {
    {
      std::lock_guard lock(mutex_);
      auto it = std::find(shm_sessions_.begin(), shm_sessions_.end(), session);
      if (it == shm_sessions_.end()) return;  // shutdown has taken it
      shm_sessions_.erase(it);
    }
    session->thread.join();
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
    auto waker = std::make_shared<transport::ShmWaker>(link);
    auto owned = std::make_unique<transport::ShmStream>(io.get_executor(), link, waker, peer,
                                                        std::move(first));
    transport::ShmStream& stream = *owned;
    auto connection =
        std::make_shared<Connection>(std::move(owned), io.get_executor(), io.get_executor(),
                                     services_, options_, stopping_, call_threads_);
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

  // Every session is cancelled before any is waited for, so that shutdown
  // takes one session's reaction time, however many there are.
  void stop_shm_sessions() {
    std::list<std::shared_ptr<ShmSession>> sessions;
    {
      std::lock_guard lock(mutex_);
      sessions.swap(shm_sessions_);
    }
    for (auto& session : sessions) {
      std::lock_guard lock(session->mutex);
      if (session->link) session->link->cancel();
    }
    for (auto& session : sessions)
      if (session->thread.joinable()) session->thread.join();
  }

  // At the connection limit a new connection takes the slot of the one
  // idle longest; it is turned away only when every other one is busy.
  void admit(std::unique_ptr<ByteStream> stream, asio::any_io_executor executor) {
    {
      std::lock_guard lock(mutex_);
      if (stopping_ ||
          (connections_.size() >= options_.max_connections && !close_idle_longest_locked())) {
        stream->close();
        return;
      }
    }
    auto connection = std::make_shared<Connection>(std::move(stream), executor, io_.get_executor(),
                                                   services_, options_, stopping_, call_threads_);
    track(connection);
    asio::co_spawn(executor, serve(connection), asio::detached);
  }

  // Closes the connection idle longest, on its executor: one between
  // requests, or one that has not yet brought its first call (idle since it
  // was accepted). False when there is none. REQUIRES: mutex_ held.
  bool close_idle_longest_locked() {
    std::shared_ptr<Connection> chosen;
    for (const auto& connection : connections_) {
      if (!connection->may_make_room() || connection->closing_for_room() ||
          !(connection->idle() || connection->handshaking()))
        continue;
      if (!chosen || connection->idle_since() < chosen->idle_since()) chosen = connection;
    }
    if (!chosen) return false;
    chosen->close_for_room();
    chosen->post([chosen] {
      if (chosen->idle())
        chosen->shut_down_idle();  // a protocol's goodbye, such as GOAWAY
      else
        chosen->close();
    });
    return true;
  }

  void report(std::string_view line) {
    if (options_.log) {
      options_.log(line);
      return;
    }
    std::fprintf(stderr, "conduit: %.*s\n", static_cast<int>(line.size()), line.data());
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
      const StreamProtocol* chosen = nullptr;
      while (!chosen) {
        std::size_t n = co_await connection->read_some(
            asio::buffer(chunk), pending.empty() ? Connection::Awaiting::next_request
                                                 : Connection::Awaiting::rest_of_request);
        if (n == 0) break;
        pending.append(chunk, n);
        bool undecided = false;
        for (const auto& protocol : stream_protocols()) {
          auto match = protocol->match(pending);
          if (match == StreamProtocol::Match::yes) {
            chosen = protocol.get();
            break;
          }
          if (match == StreamProtocol::Match::need_more) undecided = true;
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
  std::vector<std::shared_ptr<transport::Listener>> listeners_;
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
