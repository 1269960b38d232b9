// Channel: whole messages over any IPC mechanism, chosen by URI (uri.hpp).
//
// Framing:
// - Stream mechanisms (pipe, fifo, unix, tcp) put a 4-byte big-endian length
//   before each message, so message boundaries survive the byte stream. With
//   the `raw` option no prefix is written, and receive() returns whatever
//   bytes have arrived (at least one; an empty message cannot be sent).
// - Message mechanisms (unix+seqpacket, unix+dgram) keep the kernel's own
//   boundaries; their maximum size is also bounded by the kernel: the socket
//   buffer limit (net.core.wmem_max) and the 4 MiB the kernel allocates for one
//   datagram at most. See max_message_size().
// - Message queues (mq, sysvmq) keep boundaries too, and the kernel bounds a
//   message: fs.mqueue.msgsize_max and kernel.msgmax, both 8192 bytes by
//   default, less a 16-byte header that names the client. Without ?max= a
//   queue channel takes what the default limits allow (a POSIX queue of 10
//   messages of 8192 bytes); a larger ?max= fails with an error naming the
//   limit and the sysctl that raises it. System V queues cannot be polled,
//   so a timed or cancellable wait on sysvmq: retries, yielding at first and
//   then sleeping from 20 us up to 2 ms between attempts (a Cancellation
//   still ends it at once).
//
// Threads: one thread may send while another receives; two threads must not
// send (or receive) on the same Channel at once.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "conduit/ipc/file_descriptor.hpp"
#include "conduit/ipc/process.hpp"
#include "conduit/ipc/unix_socket.hpp"

namespace conduit::ipc {

inline constexpr std::chrono::nanoseconds kWaitForever = std::chrono::nanoseconds::max();

// Lets another thread or a signal handler stop blocking Channel and
// ChannelListener operations, which then throw Cancelled. Backed by an
// eventfd. Cancellation is permanent.
class Cancellation {
 public:
  Cancellation();
  // Async-signal-safe.
  void cancel() noexcept;
  bool cancelled() const noexcept;
  int fd() const { return fd_.get(); }

 private:
  FileDescriptor fd_;
};

struct ChannelOptions {
  // Largest message sent or received; the URI option max= overrides it.
  std::size_t max_message_size = 16 * 1024 * 1024;
  // How long connect() retries a FIFO server or waits for a TCP handshake.
  std::chrono::milliseconds connect_timeout{5000};
  // When set, blocking operations also wait on it and throw Cancelled.
  const Cancellation* cancellation = nullptr;
  // A listener's shared channel answers every client: on unix+dgram and
  // mq, its send() waits at most this long for room in the client's queue, then drops the reply and
  // counts it (Channel::dropped_replies()), so a client that sends without reading cannot hold up
  // the others. Replies to a client whose last reply was dropped are dropped without waiting, until
  // one gets through again. Other channels ignore it.
  std::chrono::milliseconds reply_timeout{100};
};

enum class ReceiveStatus {
  message,    // a whole message arrived
  timed_out,  // nothing complete within the timeout
  closed,     // the peer closed the channel at a message boundary
};

struct Received {
  ReceiveStatus status = ReceiveStatus::closed;
  // The message; valid until the next receive on the same Channel.
  std::span<const std::byte> message;

  explicit operator bool() const { return status == ReceiveStatus::message; }
};

class Transport;  // one per mechanism, defined in the library

// A connected, bidirectional message channel. Move-only.
class Channel {
 public:
  // Connects to a server listening on uri (see ChannelListener). For `pipe:`
  // it adopts stdin/stdout (or the descriptors named in the URI).
  // Throws InvalidUri, SystemError (naming the call, URI and errno text).
  static Channel connect(std::string_view uri, const ChannelOptions& options = {});

  // Spawns argv with pipes as its stdin and stdout and returns a channel to
  // it together with the child. The child sees `pipe:`.
  static std::pair<Channel, Process> spawn(const std::vector<std::string>& argv,
                                           const ChannelOptions& options = {}, bool raw = false);

  Channel(Channel&&) noexcept;
  Channel& operator=(Channel&&) noexcept;
  ~Channel();

  // Sends one whole message, blocking until the kernel has taken all of it.
  // On a listener's shared unix+dgram or mq channel, a reply the client does
  // not make room for within ChannelOptions::reply_timeout is dropped instead
  // (see dropped_replies()).
  // Throws MessageTooLarge above max_message_size(), SystemError when the
  // peer is gone (EPIPE, ECONNRESET), Cancelled.
  void send(std::span<const std::byte> message);
  void send(std::string_view message) {
    send(std::as_bytes(std::span(message.data(), message.size())));
  }

  // Waits at most `timeout` for a whole message (0: do not wait). A message
  // partly received when the timeout expires is kept for the next call.
  // Throws MessageTooLarge when the peer announces or sends more than
  // max_message_size() (a stream channel cannot resynchronise afterwards and
  // reports closed from then on), ProtocolError when the peer closes in the
  // middle of a message, SystemError, Cancelled.
  Received receive(std::chrono::nanoseconds timeout = kWaitForever);
  Received try_receive() { return receive(std::chrono::nanoseconds::zero()); }

  // Replies this channel dropped because their client did not make room for
  // them in time (ChannelOptions::reply_timeout); always 0 but on a
  // listener's shared unix+dgram or mq channel.
  std::uint64_t dropped_replies() const;

  // The largest message this channel sends or accepts.
  std::size_t max_message_size() const;

  // The URI this channel was made from (for accepted channels, the listener's
  // URI).
  const std::string& uri() const;

  // The peer's credentials: for UNIX sockets as recorded by the kernel
  // (SO_PEERCRED, or SCM_CREDENTIALS of the last datagram); std::nullopt for
  // other mechanisms.
  std::optional<PeerCredentials> peer_credentials() const;

  explicit Channel(std::unique_ptr<Transport> transport);

 private:
  std::unique_ptr<Transport> transport_;
};

// How the peers of a listener are served.
enum class PeerModel {
  single,      // one channel ever (pipe:), or one shared channel that
               // answers every sender (unix+dgram: send() replies to the
               // sender of the last message received; mq and sysvmq
               // likewise)
  sequential,  // one peer at a time (shm:)
  concurrent,  // any number of peers at once (fifo, unix, seqpacket, tcp)
};

class ListenerImpl;

// The server side of a URI: binds or creates what the URI names, and removes
// it on destruction.
class ChannelListener {
 public:
  static ChannelListener listen(std::string_view uri, const ChannelOptions& options = {});

  ChannelListener(ChannelListener&&) noexcept;
  ChannelListener& operator=(ChannelListener&&) noexcept;
  ~ChannelListener();

  // Waits at most timeout for the next peer; std::nullopt on timeout.
  // For PeerModel::single, the second call throws Error.
  std::optional<Channel> accept(std::chrono::nanoseconds timeout = kWaitForever);

  PeerModel peer_model() const;

  // The address peers connect to, with the real port for tcp://HOST:0.
  std::string uri() const;

  explicit ChannelListener(std::unique_ptr<ListenerImpl> impl);

 private:
  std::unique_ptr<ListenerImpl> impl_;
};

}  // namespace conduit::ipc
