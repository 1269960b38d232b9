#include "rpc/transports/streams.hpp"

#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cstring>

#include "conduit/error.hpp"

namespace conduit::rpc::transport {

using boost::system::error_code;

template <typename Socket>
SocketStream<Socket>::SocketStream(Socket socket, Peer peer)
    : socket_(std::move(socket)), peer_(std::move(peer)) {
  error_code ignored;
  socket_.non_blocking(true, ignored);  // write() tries a send that must not block
}

template <typename Socket>
asio::awaitable<std::size_t> SocketStream<Socket>::read_some(asio::mutable_buffer into) {
  auto [error, n] = co_await socket_.async_read_some(into, asio::as_tuple(asio::use_awaitable));
  if (error == asio::error::eof) co_return 0;
  if (error) throw boost::system::system_error(error);
  co_return n;
}

template <typename Socket>
asio::awaitable<void> SocketStream<Socket>::write(asio::const_buffer bytes) {
  // A reply usually fits in the socket's buffer: sent right here, it needs
  // no asynchronous operation, whose completion Asio would post (and then
  // poll the reactor once more before running it). What does not fit goes
  // the asynchronous way.
  error_code error;
  const std::size_t sent = socket_.write_some(bytes, error);
  if (!error && sent == bytes.size()) co_return;
  if (error && error != asio::error::would_block && error != asio::error::try_again)
    throw boost::system::system_error(error);
  co_await asio::async_write(socket_, bytes + (error ? 0 : sent), asio::use_awaitable);
}

template <typename Socket>
void SocketStream<Socket>::close() {
  native_.store(-1);  // abort() must not reach a descriptor number reused after this
  error_code ignored;
  socket_.shutdown(Socket::shutdown_both, ignored);
  socket_.close(ignored);
}

template <typename Socket>
void SocketStream<Socket>::abort() noexcept {
  int fd = native_.load();
  if (fd >= 0) ::shutdown(fd, SHUT_RDWR);
}

template <typename Socket>
bool SocketStream<Socket>::peer_gone() const noexcept {
  const int fd = native_.load();
  if (fd < 0) return true;
  char byte;
  const ssize_t n = ::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

template class SocketStream<asio::ip::tcp::socket>;
template class SocketStream<asio::local::stream_protocol::socket>;

StdioStream::StdioStream(asio::any_io_executor executor, int in, int out)
    : in_(executor, ::dup(in)), out_(executor, ::dup(out)) {
  peer_.address = "stdio";
}

asio::awaitable<std::size_t> StdioStream::read_some(asio::mutable_buffer into) {
  auto [error, n] = co_await in_.async_read_some(into, asio::as_tuple(asio::use_awaitable));
  if (error == asio::error::eof) co_return 0;
  if (error) throw boost::system::system_error(error);
  co_return n;
}

asio::awaitable<void> StdioStream::write(asio::const_buffer bytes) {
  co_await asio::async_write(out_, bytes, asio::use_awaitable);
}

void StdioStream::close() {
  error_code ignored;
  in_.close(ignored);
  out_.close(ignored);
}

void ShmWaker::wake() noexcept {
  std::lock_guard lock(mutex_);
  if (link_) link_->interrupt();
}

void ShmWaker::detach() {
  std::lock_guard lock(mutex_);
  link_ = nullptr;
}

ShmStream::ShmStream(asio::any_io_executor executor, shm::Link& link,
                     std::shared_ptr<ShmWaker> waker, Peer peer, std::string first)
    : link_(link),
      waker_(std::move(waker)),
      peer_(std::move(peer)),
      readable_(executor),
      buffer_(std::move(first)) {}

asio::awaitable<std::size_t> ShmStream::read_some(asio::mutable_buffer into) {
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

asio::awaitable<void> ShmStream::write(asio::const_buffer bytes) {
  if (closed_) throw boost::system::system_error(asio::error::operation_aborted);
  try {
    link_.send_bytes(std::string_view(static_cast<const char*>(bytes.data()), bytes.size()));
  } catch (const Error&) {  // the peer is gone, or the server cancelled the link
    throw boost::system::system_error(asio::error::broken_pipe);
  }
  co_return;
}

void ShmStream::close() {
  closed_ = true;
  readable_.cancel();
}

void ShmStream::deliver(std::string_view bytes) {
  buffer_.assign(bytes);
  offset_ = 0;
  readable_.cancel();
}

void ShmStream::end() {
  ended_ = true;
  readable_.cancel();
}

}  // namespace conduit::rpc::transport
