#include "stream_transport.hpp"

#include <fcntl.h>

#include <algorithm>
#include <cstring>

#include "conduit/error.hpp"
#include "sys.hpp"

namespace conduit::ipc {
namespace {

constexpr std::size_t kHeaderSize = 4;
constexpr std::size_t kInitialBuffer = 64 * 1024;
constexpr std::size_t kLargePipe = 1024 * 1024;

std::uint32_t decode_length(const std::byte* header) {
  return (std::to_integer<std::uint32_t>(header[0]) << 24) |
         (std::to_integer<std::uint32_t>(header[1]) << 16) |
         (std::to_integer<std::uint32_t>(header[2]) << 8) |
         std::to_integer<std::uint32_t>(header[3]);
}

std::string_view write_hint(int code) {
  if (code == EPIPE || code == ECONNRESET) return "the peer closed the channel or exited";
  return {};
}

}  // namespace

StreamTransport::StreamTransport(StreamEnds ends, std::string uri, std::size_t max_message_size,
                                 bool raw, const Cancellation* cancellation)
    : Transport(std::move(uri), max_message_size, cancellation), ends_(std::move(ends)), raw_(raw) {
  if (!ends_.socket) {
    // A pipe holds 64 KiB by default, so a 64 KiB message plus its header
    // would need two wake-ups of the reader. Ask for room for a whole large
    // message (up to the unprivileged ceiling, fs.pipe-max-size, 1 MiB by
    // default); a refusal (not a pipe, or over the per-user quota) only costs
    // speed.
    std::size_t wanted = std::min<std::size_t>(max_message_size + kHeaderSize, kLargePipe);
    for (int fd : {read_fd(), write_fd()}) {
      if (::fcntl(fd, F_GETPIPE_SZ) < static_cast<int>(wanted))
        ::fcntl(fd, F_SETPIPE_SZ, static_cast<int>(wanted));
    }
  }
}

void StreamTransport::write_all(iovec* iov, int count) {
  while (count > 0) {
    ssize_t n;
    if (ends_.socket) {
      msghdr message{};
      message.msg_iov = iov;
      message.msg_iovlen = static_cast<std::size_t>(count);
      int flags = MSG_NOSIGNAL | (cancellation_ ? MSG_DONTWAIT : 0);
      n = sys::calls().sendmsg(write_fd(), &message, flags);
    } else {
      n = sys::calls().writev(write_fd(), iov, count);
    }
    if (n < 0) {
      int code = errno;
      if (code == EINTR) continue;
      if (code == EAGAIN || code == EWOULDBLOCK) {
        wait_for_fd(write_fd(), POLLOUT, Deadline(kWaitForever), cancellation_, uri_);
        continue;
      }
      throw SystemError("write", uri_, code, write_hint(code));
    }
    auto written = static_cast<std::size_t>(n);
    while (count > 0 && written >= iov->iov_len) {
      written -= iov->iov_len;
      ++iov;
      --count;
    }
    if (count > 0) {
      iov->iov_base = static_cast<char*>(iov->iov_base) + written;
      iov->iov_len -= written;
    }
  }
}

void StreamTransport::send(std::span<const std::byte> message) {
  check_send_size(message.size());
  if (raw_) {
    if (message.empty()) return;  // raw streams cannot carry an empty message
    iovec iov{const_cast<std::byte*>(message.data()), message.size()};
    write_all(&iov, 1);
    return;
  }
  auto size = static_cast<std::uint32_t>(message.size());
  unsigned char header[kHeaderSize] = {
      static_cast<unsigned char>(size >> 24), static_cast<unsigned char>(size >> 16),
      static_cast<unsigned char>(size >> 8), static_cast<unsigned char>(size)};
  iovec iov[2] = {{header, kHeaderSize}, {const_cast<std::byte*>(message.data()), message.size()}};
  write_all(iov, message.empty() ? 1 : 2);
}

void StreamTransport::reserve(std::size_t needed) {
  if (capacity_ - begin_ >= needed) return;
  std::size_t pending = end_ - begin_;
  if (capacity_ >= needed) {
    std::memmove(buffer_.get(), buffer_.get() + begin_, pending);
  } else {
    std::size_t capacity = std::max({needed, kInitialBuffer, capacity_ * 2});
    auto bigger = std::make_unique_for_overwrite<std::byte[]>(capacity);
    if (pending) std::memcpy(bigger.get(), buffer_.get() + begin_, pending);
    buffer_ = std::move(bigger);
    capacity_ = capacity;
  }
  begin_ = 0;
  end_ = pending;
}

Received StreamTransport::receive(std::chrono::nanoseconds timeout) {
  begin_ += std::exchange(consumed_, 0);
  if (begin_ == end_) begin_ = end_ = 0;
  if (broken_) return Received{ReceiveStatus::closed, {}};
  Deadline deadline(timeout);
  bool must_poll = ends_.poll_before_read || !deadline.never() || cancellation_ != nullptr;
  for (;;) {
    std::size_t available = end_ - begin_;
    std::size_t needed;
    if (raw_) {
      if (available > 0) {
        consumed_ = std::min(available, max_message_size_);
        return Received{ReceiveStatus::message, {buffer_.get() + begin_, consumed_}};
      }
      needed = std::min(kInitialBuffer, std::max<std::size_t>(max_message_size_, 1));
    } else if (available >= kHeaderSize) {
      std::size_t length = decode_length(buffer_.get() + begin_);
      if (length > max_message_size_) {
        broken_ = true;
        throw MessageTooLarge("receive(" + uri_ + "): the peer announced a message of " +
                              std::to_string(length) + " bytes; the maximum is " +
                              std::to_string(max_message_size_) +
                              " (raise it with ?max=); the channel is now closed");
      }
      if (available >= kHeaderSize + length) {
        consumed_ = kHeaderSize + length;
        return Received{ReceiveStatus::message, {buffer_.get() + begin_ + kHeaderSize, length}};
      }
      needed = kHeaderSize + length;
    } else {
      needed = kHeaderSize;
    }
    reserve(needed);

    if (must_poll && !wait_for_fd(read_fd(), POLLIN, deadline, cancellation_, uri_))
      return Received{ReceiveStatus::timed_out, {}};
    std::size_t room = capacity_ - end_;
    // A large message is read up to its end and no further: bytes of the
    // next message read with it would have to be moved to the front of the
    // buffer afterwards, a second copy of up to the whole buffer.
    if (needed > kInitialBuffer) room = std::min(room, begin_ + needed - end_);
    ssize_t n = sys::calls().read(read_fd(), buffer_.get() + end_, room);
    if (n > 0) {
      end_ += static_cast<std::size_t>(n);
      if (ends_.poll_before_read) {
        // A writer has connected, so end of file now means what it says:
        // from here on, read (and wait) in one system call.
        ends_.poll_before_read = false;
        set_nonblocking(read_fd(), false);
        must_poll = !deadline.never() || cancellation_ != nullptr;
      }
      continue;
    }
    if (n == 0) {
      if (available == 0) return Received{ReceiveStatus::closed, {}};
      broken_ = true;
      std::string expected =
          available >= kHeaderSize
              ? std::to_string(decode_length(buffer_.get() + begin_) + kHeaderSize)
              : std::to_string(kHeaderSize) + "-byte header";
      throw ProtocolError("receive(" + uri_ +
                          "): the peer closed the channel in the middle of a "
                          "message (received " +
                          std::to_string(available) + " bytes of " + expected + ")");
    }
    int code = errno;
    if (code == EINTR) continue;
    if (code == EAGAIN || code == EWOULDBLOCK) {
      must_poll = true;  // a borrowed descriptor in non-blocking mode
      continue;
    }
    throw SystemError(
        "read", uri_, code,
        code == ECONNRESET ? "the peer reset the connection (it may have crashed)" : "");
  }
}

}  // namespace conduit::ipc
