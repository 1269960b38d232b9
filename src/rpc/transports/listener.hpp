// The server side of every transport but stdio: a listening socket that
// accepts connections. A UNIX socket's file is made with ipc's
// BoundUnixSocket, which decides what a stale socket is and removes the file
// when the listener goes.
#pragma once

#include <sys/types.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "conduit/ipc/file_descriptor.hpp"
#include "conduit/ipc/unix_socket.hpp"
#include "rpc/transports/address.hpp"
#include "rpc/transports/byte_stream.hpp"

namespace conduit::rpc::transport {

// Says one thing at most once per interval: the first time, then after the
// interval has passed, with how many times it happened in between. Value
// type; not thread-safe.
class Throttle {
 public:
  explicit Throttle(std::chrono::steady_clock::duration interval) : interval_(interval) {}
  // What to report now for `what` having happened once more: nothing while
  // the interval runs, else `what` (and the count of those held back).
  std::optional<std::string> note(std::string_view what);

 private:
  std::chrono::steady_clock::duration interval_;
  std::optional<std::chrono::steady_clock::time_point> last_;
  std::size_t held_back_ = 0;
};

class Listener {
 public:
  // A connection accepted on a tcp or unix_socket listener, as a stream
  // whose handlers run on `executor`.
  using StreamAccepted =
      std::function<void(std::unique_ptr<ByteStream> stream, asio::any_io_executor executor)>;
  // A connection accepted on a shm listener: its socket, for the
  // shared-memory handshake, and who is on the other end.
  using ShmAccepted = std::function<void(ipc::FileDescriptor socket, Peer peer)>;

  // What the listener hands its connections to, and asks of the server.
  struct Handlers {
    // The executor each accepted socket gets.
    std::function<asio::any_io_executor()> executor_for;
    StreamAccepted on_stream;  // tcp, unix_socket
    ShmAccepted on_shm;        // shm
    // The process is out of descriptors: closes a connection (the one idle
    // longest) so that one is freed; false when none may go.
    std::function<bool()> make_room;
    // One line about trouble the listener handled itself; each kind of
    // trouble at most once per kReportInterval.
    std::function<void(std::string_view)> report;
  };

  static constexpr std::chrono::seconds kReportInterval{10};

  // Binds and listens on `address` (tcp, unix_socket or shm). A UNIX
  // socket's file gets the permission bits `socket_mode`; an abstract
  // socket, which has none, admits peers by the same bits held against
  // their credentials (owner: the server's uid; group: its gid; others:
  // anyone). Throws InvalidUri (a tcp host that is not an IP address) or
  // SystemError naming the address (in use, a path that is not a socket, no
  // permission).
  Listener(asio::io_context& io, const Address& address, mode_t socket_mode);
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // The address clients use, with the port the kernel picked: the form
  // parse_address takes.
  const std::string& uri() const { return uri_; }
  Kind kind() const { return address_.kind; }

  // Accepts until close(), handing each connection to `handlers`. When the
  // process runs out of descriptors it neither spins nor leaves clients
  // hanging: it has the connection idle longest closed, or else accepts
  // and closes at once what waits (on a descriptor it keeps in reserve),
  // and waits a little longer each time before it tries again. Runs on the
  // io_context given to the constructor.
  asio::awaitable<void> accept(Handlers handlers);

  // Stops accepting. On the io_context's thread (or before it runs).
  void close();

 private:
  // Whether `peer` may connect: always through a socket file (its mode has
  // decided), by its credentials on an abstract socket.
  bool admits(const Peer& peer) const;
  // After an accept failed for want of descriptors: makes room, reports,
  // and waits before the next try (`backoff`, doubled up to a second).
  asio::awaitable<void> wait_for_descriptors(const Handlers& handlers,
                                             std::chrono::milliseconds& backoff);
  // Accepts and closes what waits in the backlog, on the reserve descriptor.
  std::size_t turn_away_waiting();
  int native_handle();

  Address address_;
  std::string uri_;
  mode_t socket_mode_;
  bool abstract_ = false;
  std::optional<asio::ip::tcp::acceptor> tcp_;
  std::optional<asio::local::stream_protocol::acceptor> local_;
  ipc::BoundUnixSocket bound_;  // owns the socket file
  ipc::FileDescriptor reserve_;
  Throttle out_of_descriptors_{kReportInterval};
  Throttle refused_{kReportInterval};
};

}  // namespace conduit::rpc::transport
