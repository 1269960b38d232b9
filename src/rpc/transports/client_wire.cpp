#include "rpc/transports/client_wire.hpp"

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <optional>
#include <thread>

#include "conduit/error.hpp"
#include "conduit/ipc/file_descriptor.hpp"
#include "rpc/transports/connect.hpp"
#include "rpc/transports/shm_transport.hpp"

namespace conduit::rpc::transport {

namespace asio = boost::asio;

namespace {

class SocketWire final : public ClientWire {
 public:
  SocketWire(asio::io_context& io, ipc::FileDescriptor fd, std::string peer)
      : socket_(io, fd.release()), peer_(std::move(peer)) {}
  // A completion queued before close() may still run after: it finds
  // `alive` false and touches nothing of the wire.
  ~SocketWire() override { *alive_ = false; }
  void start(OnBytes on_bytes, OnEnd on_end) override {
    on_bytes_ = std::move(on_bytes);
    on_end_ = std::move(on_end);
    read();
  }
  void send(std::string_view bytes, std::function<void(bool)> done) override {
    asio::async_write(
        socket_, asio::buffer(bytes),
        [alive = alive_, done = std::move(done)](boost::system::error_code error, std::size_t) {
          if (!*alive || error == asio::error::operation_aborted) return;
          done(!error);
        });
  }
  void close() override {
    *alive_ = false;
    boost::system::error_code ignored;
    socket_.close(ignored);
  }

 private:
  void read() {
    socket_.async_read_some(
        asio::buffer(chunk_),
        [this, alive = alive_](boost::system::error_code error, std::size_t n) {
          if (!*alive || error == asio::error::operation_aborted) return;
          if (error) {
            on_end_({StatusCode::unavailable,
                     peer_ + (error == asio::error::eof
                                  ? std::string(" closed the connection")
                                  : " broke the connection: " + error.message())});
            return;
          }
          on_bytes_(std::string_view(chunk_, n));
          if (*alive) read();
        });
  }

  asio::posix::stream_descriptor socket_;
  std::string peer_;
  OnBytes on_bytes_;
  OnEnd on_end_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // until close()
  char chunk_[16384];
};

// The link's rings are waited on by a thread of its own, which hands what
// arrives to the I/O thread.
class ShmWire final : public ClientWire {
 public:
  ShmWire(asio::io_context& io, shm::Link link, std::string peer, Pieces pieces)
      : io_(io), link_(std::move(link)), peer_(std::move(peer)), pieces_(pieces) {}
  ~ShmWire() override { close(); }

  void start(OnBytes on_bytes, OnEnd on_end) override {
    auto alive = alive_;
    reader_ =
        std::thread([this, alive, on_bytes = std::move(on_bytes), on_end = std::move(on_end)] {
          // Posted work runs only while the wire is open (`alive`), on the I/O
          // thread, where close() clears it.
          auto hand_over = [this, alive](auto work) {
            asio::post(io_, [alive, work = std::move(work)]() mutable {
              if (*alive) work();
            });
          };
          for (;;) {
            try {
              std::optional<std::string_view> message = link_.receive();
              if (!message) {
                hand_over([on_end, peer = peer_] {
                  on_end({StatusCode::unavailable, peer + " closed the connection"});
                });
                return;
              }
              hand_over([on_bytes, bytes = std::string(*message)] { on_bytes(bytes); });
            } catch (const Cancelled&) {
              return;
            } catch (const Error& error) {  // the server died or broke the ring
              hand_over([on_end, peer = peer_, what = std::string(error.what())] {
                on_end({StatusCode::unavailable, peer + " is gone: " + what});
              });
              return;
            }
          }
        });
  }
  void send(std::string_view bytes, std::function<void(bool)> done) override {
    bool sent = true;
    try {
      if (pieces_ == Pieces::messages)
        link_.send(bytes);
      else
        link_.send_bytes(bytes);
    } catch (const Error&) {
      sent = false;
    }
    asio::post(io_, [alive = alive_, done = std::move(done), sent] {
      if (*alive) done(sent);
    });
  }
  void close() override {
    *alive_ = false;
    if (reader_.joinable()) {
      link_.cancel();
      reader_.join();
    }
  }

 private:
  asio::io_context& io_;
  shm::Link link_;
  std::string peer_;
  Pieces pieces_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::thread reader_;
};

}  // namespace

std::unique_ptr<ClientWire> connect_wire(asio::io_context& io, const Address& address,
                                         std::chrono::milliseconds timeout, std::string peer,
                                         Pieces pieces) {
  timeout = std::max(timeout, std::chrono::milliseconds(1));
  if (address.kind == Kind::shm)
    return std::make_unique<ShmWire>(io, connect_shm(address, timeout), std::move(peer), pieces);
  return std::make_unique<SocketWire>(io, connect_socket(address, timeout), std::move(peer));
}

}  // namespace conduit::rpc::transport
