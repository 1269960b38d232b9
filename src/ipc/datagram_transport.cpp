#include "datagram_transport.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include "conduit/error.hpp"
#include "retry_backoff.hpp"
#include "sys.hpp"

namespace conduit::ipc {
namespace {

// The kernel refuses a datagram larger than the send buffer less this much
// (net/unix/af_unix.c: "len > sk->sk_sndbuf - 32").
constexpr std::size_t kKernelReserve = 32;
// Most of a datagram sits in one physically contiguous kernel buffer, and the
// kernel's allocator hands out at most 4 MiB (KMALLOC_MAX_SIZE) in one piece;
// beyond it sendmsg fails with ENOBUFS whatever the socket buffer says.
constexpr std::size_t kLargestContiguousBuffer = 4 * 1024 * 1024;

}  // namespace

std::size_t datagram_limit(int fd) {
  int sndbuf = 0;
  socklen_t length = sizeof sndbuf;
  if (::getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &length) < 0 || sndbuf <= 0) return 0;
  return std::min(static_cast<std::size_t>(sndbuf) - kKernelReserve, kLargestContiguousBuffer);
}

void prepare_datagram_socket(int fd, std::size_t max_message_size, const std::string& uri) {
  int one = 1;
  if (::setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) < 0)
    throw SystemError("setsockopt(SO_PASSCRED)", uri, errno);
  if (datagram_limit(fd) < max_message_size) {
    // The kernel doubles the request and caps it at net.core.wmem_max * 2.
    int wanted = static_cast<int>(std::min<std::size_t>(max_message_size + 1024, 1u << 30) / 2 + 1);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &wanted, sizeof wanted);
  }
}

DatagramTransport::DatagramTransport(FileDescriptor fd, UnixSocketType type, bool reply_to_sender,
                                     std::string uri, std::size_t max_message_size,
                                     const Cancellation* cancellation,
                                     std::chrono::milliseconds reply_timeout)
    : Transport(std::move(uri), std::min(max_message_size, datagram_limit(fd.get())), cancellation),
      fd_(std::move(fd)),
      type_(type),
      reply_to_sender_(reply_to_sender),
      slow_readers_(reply_timeout) {
  if (!reply_to_sender_) {
    ucred credentials{};
    socklen_t length = sizeof credentials;
    if (::getsockopt(fd_.get(), SOL_SOCKET, SO_PEERCRED, &credentials, &length) == 0 &&
        credentials.pid > 0)
      peer_ = PeerCredentials{credentials.pid, credentials.uid, credentials.gid};
  }
}

void DatagramTransport::send(std::span<const std::byte> message) {
  check_send_size(message.size());
  if (reply_to_sender_ && last_sender_length_ == 0)
    throw Error("send(" + uri_ +
                "): no peer has sent a message yet, so there is nobody to reply to");
  iovec iov{const_cast<std::byte*>(message.data()), message.size()};
  msghdr header{};
  header.msg_iov = &iov;
  header.msg_iovlen = 1;
  if (reply_to_sender_) {
    header.msg_name = &last_sender_;
    header.msg_namelen = last_sender_length_;
    std::string client(reinterpret_cast<const char*>(&last_sender_), last_sender_length_);
    if (reply(header, client))
      slow_readers_.delivered(client);
    else
      slow_readers_.dropped(client);
    return;
  }
  int flags = MSG_NOSIGNAL | (cancellation_ ? MSG_DONTWAIT : 0);
  for (;;) {
    ssize_t n = sys::calls().sendmsg(fd_.get(), &header, flags);
    if (n >= 0) return;
    int code = errno;
    if (code == EINTR) continue;
    if (code != EAGAIN && code != EWOULDBLOCK) throw_send_error(code, message.size());
    wait_for_fd(fd_.get(), POLLOUT, Deadline(kWaitForever), cancellation_, uri_);
  }
}

// The receiver's queue being full (net.unix.max_dgram_qlen) is not something
// poll() reports on an unconnected socket, so a reply is retried with pauses
// until the sender's patience runs out.
bool DatagramTransport::reply(msghdr& header, const std::string& client) {
  Deadline deadline(slow_readers_.patience_for(client));
  detail::RetryBackoff backoff;
  for (;;) {
    ssize_t n = sys::calls().sendmsg(fd_.get(), &header, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) return true;
    int code = errno;
    if (code == EINTR) continue;
    if (code != EAGAIN && code != EWOULDBLOCK) throw_send_error(code, header.msg_iov->iov_len);
    int left = deadline.poll_timeout_ms();
    if (left == 0) return false;
    pause_or_cancel(backoff.next(std::chrono::milliseconds(left)), cancellation_, uri_);
  }
}

void DatagramTransport::throw_send_error(int code, std::size_t size) const {
  if (code == EMSGSIZE || code == ENOBUFS)
    throw MessageTooLarge("send(" + uri_ + "): the kernel refused a " + std::to_string(size) +
                          "-byte message (" + (code == EMSGSIZE ? "EMSGSIZE" : "ENOBUFS") +
                          "): datagrams are bounded by the socket buffer (net.core.wmem_max) "
                          "and by the kernel's largest contiguous allocation (4 MiB)");
  throw SystemError("sendmsg", uri_, code,
                    code == ECONNREFUSED || code == EPIPE || code == ECONNRESET
                        ? "the peer's socket is gone"
                        : "");
}

Received DatagramTransport::receive(std::chrono::nanoseconds timeout) {
  if (!buffer_) buffer_ = std::make_unique_for_overwrite<std::byte[]>(max_message_size_ + 1);
  Deadline deadline(timeout);
  bool must_poll = !deadline.never() || cancellation_ != nullptr;
  for (;;) {
    if (must_poll && !wait_for_fd(fd_.get(), POLLIN, deadline, cancellation_, uri_))
      return Received{ReceiveStatus::timed_out, {}};
    iovec iov{buffer_.get(), max_message_size_ + 1};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
    sockaddr_un sender{};
    msghdr header{};
    header.msg_iov = &iov;
    header.msg_iovlen = 1;
    header.msg_control = control;
    header.msg_controllen = sizeof control;
    if (reply_to_sender_) {
      header.msg_name = &sender;
      header.msg_namelen = sizeof sender;
    }
    ssize_t n = sys::calls().recvmsg(fd_.get(), &header, MSG_TRUNC | MSG_CMSG_CLOEXEC);
    if (n < 0) {
      int code = errno;
      if (code == EINTR) continue;
      if (code == EAGAIN || code == EWOULDBLOCK) {
        must_poll = true;
        continue;
      }
      throw SystemError("recvmsg", uri_, code);
    }
    bool has_credentials = false;
    for (cmsghdr* c = CMSG_FIRSTHDR(&header); c != nullptr; c = CMSG_NXTHDR(&header, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
        ucred credentials;
        std::memcpy(&credentials, CMSG_DATA(c), sizeof credentials);
        peer_ = PeerCredentials{credentials.pid, credentials.uid, credentials.gid};
        has_credentials = true;
      }
    }
    // A seqpacket end of stream reads as 0 bytes without credentials; an
    // empty message carries them.
    if (n == 0 && type_ == UnixSocketType::seqpacket && !has_credentials)
      return Received{ReceiveStatus::closed, {}};
    if (reply_to_sender_) {
      last_sender_ = sender;
      last_sender_length_ = header.msg_namelen;
    }
    auto size = static_cast<std::size_t>(n);
    if (size > max_message_size_)
      throw MessageTooLarge("receive(" + uri_ + "): discarded a " + std::to_string(size) +
                            "-byte message; the maximum is " + std::to_string(max_message_size_) +
                            " (raise it with ?max=)");
    return Received{ReceiveStatus::message, {buffer_.get(), size}};
  }
}

}  // namespace conduit::ipc
