// Whole messages over a byte stream: pipes, FIFOs, UNIX stream sockets, TCP
// (internal). Messages carry a 4-byte big-endian length prefix unless raw.
#pragma once

#include <sys/uio.h>

#include <memory>
#include <optional>
#include <vector>

#include "conduit/ipc/fifo.hpp"
#include "transport.hpp"

namespace conduit::ipc {

struct StreamEnds {
  FileDescriptor read;
  FileDescriptor write;  // empty: the read descriptor is used for both
  bool socket = false;   // use sendmsg(MSG_NOSIGNAL) rather than writev
  // The read end may report end of file before any writer has connected (a
  // FIFO opened with O_NONBLOCK), so reads wait in poll() first, until the
  // first bytes arrive.
  bool poll_before_read = false;
  // FIFO nodes that exist for this channel only, removed with it.
  std::vector<Fifo> nodes;
  std::optional<PeerCredentials> peer;
};

class StreamTransport final : public Transport {
 public:
  StreamTransport(StreamEnds ends, std::string uri, std::size_t max_message_size, bool raw,
                  const Cancellation* cancellation);

  void send(std::span<const std::byte> message) override;
  Received receive(std::chrono::nanoseconds timeout) override;
  std::optional<PeerCredentials> peer_credentials() const override { return ends_.peer; }

 private:
  int read_fd() const { return ends_.read.get(); }
  int write_fd() const { return ends_.write ? ends_.write.get() : ends_.read.get(); }
  void write_all(iovec* iov, int count);
  // Makes room for `needed` bytes from begin_, moving or growing the buffer.
  void reserve(std::size_t needed);

  StreamEnds ends_;
  bool raw_;
  std::unique_ptr<std::byte[]> buffer_;
  std::size_t capacity_ = 0;
  std::size_t begin_ = 0;     // first unconsumed byte
  std::size_t end_ = 0;       // one past the last received byte
  std::size_t consumed_ = 0;  // bytes of the message handed out last time
  bool broken_ = false;       // the stream lost framing; nothing more is read
};

}  // namespace conduit::ipc
