// The client side of every transport for the asynchronous clients: a
// connection whose bytes are read and written on one io_context thread.
// The protocols' asynchronous clients frame what goes over it.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "conduit/rpc/status.hpp"
#include "rpc/transports/address.hpp"

namespace conduit::rpc::transport {

// Used on the io_context's thread only.
class ClientWire {
 public:
  using OnBytes = std::function<void(std::string_view)>;
  using OnEnd = std::function<void(Status)>;
  virtual ~ClientWire() = default;
  // Reads until the end, handing each piece to `on_bytes` and the end (the
  // peer closed: UNAVAILABLE naming it) to `on_end`, on the io_context's
  // thread.
  virtual void start(OnBytes on_bytes, OnEnd on_end) = 0;
  // Sends all of `bytes` (kept alive by the caller until `done`); one send
  // at a time.
  virtual void send(std::string_view bytes, std::function<void(bool)> done) = 0;
  // Ends reading and writing; no callback runs afterwards.
  virtual void close() = 0;
};

// How a shared-memory link carries what is sent: as the pieces of one byte
// stream (a protocol framed on bytes, such as HTTP/2), or each send() as one
// message, each piece on_bytes gets then being one whole message of the
// peer's. Sockets are byte streams either way.
enum class Pieces { stream, messages };

// Connects to `address` (tcp, unix_socket or shm) within `timeout`. `peer`
// names it in messages. Throws what connect_socket and connect_shm throw.
std::unique_ptr<ClientWire> connect_wire(boost::asio::io_context& io, const Address& address,
                                         std::chrono::milliseconds timeout, std::string peer,
                                         Pieces pieces = Pieces::stream);

}  // namespace conduit::rpc::transport
