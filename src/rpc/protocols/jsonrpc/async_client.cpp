#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "conduit/error.hpp"
#include "conduit/rpc/async_jsonrpc_client.hpp"
#include "rpc/protocols/jsonrpc/client_parts.hpp"
#include "rpc/protocols/jsonrpc/engine.hpp"
#include "rpc/transports/connect.hpp"

namespace conduit::rpc {

namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;

class AsyncJsonRpcClient::Impl {
 public:
  Impl(asio::any_io_executor executor, std::string_view uri, std::chrono::milliseconds timeout)
      : target_(jsonrpc::parse_target(uri)),
        timeout_(timeout),
        socket_(executor),
        timer_(executor) {
    if (target_.address.kind == transport::Kind::shm)
      throw InvalidUri(
          std::string(uri) +
          ": shm+unix: has no asynchronous client; use JsonRpcClient for shared memory");
  }

  // `self` keeps the client alive while the coroutine runs.
  static asio::awaitable<std::string> call(std::shared_ptr<Impl> self, std::string method,
                                           std::string params) {
    std::int64_t id = self->next_id_++;
    std::string request =
        jsonrpc::frame_request(self->target_, jsonrpc::make_request(method, params, id));
    std::string reply = co_await self->exchange(request);
    jsonrpc::Reply parsed = jsonrpc::parse_reply(std::move(reply), id);
    if (!parsed.ok) throw JsonRpcError(parsed.error_code, parsed.error_message, parsed.error_json);
    co_return std::move(parsed.result_json);
  }

  asio::any_io_executor executor() { return socket_.get_executor(); }

 private:
  // Sends one framed request and returns its reply. A connection kept from
  // an earlier call that the server has closed meanwhile is made again once.
  asio::awaitable<std::string> exchange(const std::string& framed) {
    bool reused = socket_.is_open();
    for (int attempt = 0;; ++attempt) {
      if (!socket_.is_open()) co_await connect();
      try {
        co_await asio::async_write(socket_, asio::buffer(framed), asio::use_awaitable);
        co_return co_await read_reply();
      } catch (const PeerGone&) {
        reset();
        if (!reused || attempt > 0) throw;
      } catch (const boost::system::system_error& error) {
        reset();
        if (!reused || attempt > 0) throw PeerGone(target_.text + ": " + error.code().message());
      }
    }
  }

  asio::awaitable<void> connect() {
    try {
      socket_ =
          co_await transport::async_connect(socket_.get_executor(), target_.address, timeout_);
    } catch (...) {
      reset();
      throw;
    }
  }

  asio::awaitable<std::string> read_reply() {
    jsonrpc::ReplyReader reader(target_.http);
    bool any = !buffer_.empty();
    timer_.expires_after(timeout_);
    char chunk[16384];
    while (!reader.take(buffer_)) {
      auto outcome = co_await (
          socket_.async_read_some(asio::buffer(chunk), asio::as_tuple(asio::use_awaitable)) ||
          timer_.async_wait(asio::use_awaitable));
      if (outcome.index() == 1) {
        reset();
        throw Timeout("no reply from " + target_.text + " within " +
                      std::to_string(timeout_.count()) + " ms");
      }
      auto [error, n] = std::get<0>(outcome);
      if (error == asio::error::eof || error == asio::error::connection_reset || n == 0) {
        if (!any) throw PeerGone(target_.text + " closed the connection");
        if (reader.finish_at_end_of_stream()) break;
        throw ProtocolError(target_.text + " closed the connection in the middle of a reply");
      }
      if (error) throw boost::system::system_error(error);
      buffer_.append(chunk, n);
      any = true;
    }
    if (!reader.keep_alive()) reset();
    co_return reader.reply(true, target_.text);
  }

  void reset() {
    boost::system::error_code ignored;
    socket_.close(ignored);
    buffer_.clear();
  }

  jsonrpc::Target target_;
  std::chrono::milliseconds timeout_;
  asio::generic::stream_protocol::socket socket_;
  asio::steady_timer timer_;
  std::string buffer_;
  std::int64_t next_id_ = 1;
};

AsyncJsonRpcClient::AsyncJsonRpcClient(asio::any_io_executor executor, std::string_view uri,
                                       std::chrono::milliseconds timeout)
    : impl_(std::make_shared<Impl>(executor, uri, timeout)) {}

AsyncJsonRpcClient::~AsyncJsonRpcClient() = default;

asio::awaitable<std::string> AsyncJsonRpcClient::call(std::string method, std::string params) {
  return Impl::call(impl_, std::move(method), std::move(params));
}

void AsyncJsonRpcClient::call(std::string method, std::string params,
                              std::function<void(std::exception_ptr, std::string)> done) {
  asio::co_spawn(impl_->executor(), Impl::call(impl_, std::move(method), std::move(params)),
                 std::move(done));
}

}  // namespace conduit::rpc
