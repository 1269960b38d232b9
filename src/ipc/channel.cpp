#include "conduit/ipc/channel.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <thread>

#include "conduit/error.hpp"
#include "conduit/ipc/fifo.hpp"
#include "conduit/ipc/pipe.hpp"
#include "conduit/ipc/tcp_socket.hpp"
#include "conduit/ipc/uri.hpp"
#include "datagram_transport.hpp"
#include "deadline.hpp"
#include "fifo_transport.hpp"
#include "queue_transport.hpp"
#include "shm_transport.hpp"
#include "stream_transport.hpp"
#include "sys.hpp"

namespace conduit::ipc {

// ---- Cancellation, Deadline, waiting ------------------------------------

Cancellation::Cancellation() : fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  if (!fd_) throw SystemError("eventfd", "", errno);
}

void Cancellation::cancel() noexcept {
  std::uint64_t one = 1;
  (void)!::write(fd_.get(), &one, sizeof one);
}

bool Cancellation::cancelled() const noexcept {
  pollfd ready{fd_.get(), POLLIN, 0};
  return ::poll(&ready, 1, 0) == 1;
}

Deadline::Deadline(std::chrono::nanoseconds timeout) : never_(timeout == kWaitForever) {
  if (!never_)
    at_ = std::chrono::steady_clock::now() + std::max(timeout, std::chrono::nanoseconds(0));
}

int Deadline::poll_timeout_ms() const {
  if (never_) return -1;
  auto left = at_ - std::chrono::steady_clock::now();
  if (left <= std::chrono::nanoseconds(0)) return 0;
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
  return static_cast<int>(std::min<long long>(ms, 1 << 30));
}

Deadline Deadline::sooner(std::chrono::milliseconds interval) const {
  int left = poll_timeout_ms();
  if (left >= 0 && left < interval.count()) return Deadline(std::chrono::milliseconds(left));
  return Deadline(std::max(interval, std::chrono::milliseconds(0)));
}

bool wait_for_fd(int fd, short events, const Deadline& deadline, const Cancellation* cancellation,
                 const std::string& uri) {
  pollfd fds[2] = {{fd, events, 0}, {cancellation ? cancellation->fd() : -1, POLLIN, 0}};
  for (;;) {
    int n = sys::calls().poll(fds, cancellation ? 2 : 1, deadline.poll_timeout_ms());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw SystemError("poll", uri, errno);
    }
    if (cancellation && (fds[1].revents & POLLIN))
      throw Cancelled("operation on " + uri + " was cancelled");
    if (n > 0 && fds[0].revents != 0) return true;
    if (deadline.poll_timeout_ms() == 0) return false;
  }
}

void pause_or_cancel(std::chrono::nanoseconds pause, const Cancellation* cancellation,
                     const std::string& uri) {
  if (pause == std::chrono::nanoseconds::zero()) {
    if (cancellation != nullptr && cancellation->cancelled())
      throw Cancelled("operation on " + uri + " was cancelled");
    std::this_thread::yield();
    return;
  }
  if (cancellation == nullptr) {
    std::this_thread::sleep_for(pause);
    return;
  }
  pollfd ready{cancellation->fd(), POLLIN, 0};
  timespec duration = detail::to_timespec(pause);
  if (::ppoll(&ready, 1, &duration, nullptr) > 0)
    throw Cancelled("operation on " + uri + " was cancelled");
}

void Transport::check_send_size(std::size_t size) const {
  if (size > max_message_size())
    throw MessageTooLarge("send(" + uri_ + "): a message of " + std::to_string(size) +
                          " bytes exceeds the maximum of " + std::to_string(max_message_size()) +
                          " bytes (raise it with ?max=, within the mechanism's limit)");
}

// ---- Channel ---------------------------------------------------------------

Channel::Channel(std::unique_ptr<Transport> transport) : transport_(std::move(transport)) {}
Channel::Channel(Channel&&) noexcept = default;
Channel& Channel::operator=(Channel&&) noexcept = default;
Channel::~Channel() = default;

void Channel::send(std::span<const std::byte> message) {
  transport_->send(message);
}
Received Channel::receive(std::chrono::nanoseconds timeout) {
  return transport_->receive(timeout);
}
std::size_t Channel::max_message_size() const {
  return transport_->max_message_size();
}
const std::string& Channel::uri() const {
  return transport_->uri();
}
std::optional<PeerCredentials> Channel::peer_credentials() const {
  return transport_->peer_credentials();
}
std::uint64_t Channel::dropped_replies() const {
  return transport_->dropped_replies();
}

Settings settings_for(const Uri& uri, const ChannelOptions& options) {
  Settings settings{options.max_message_size, uri.has_option("raw"), 0600};
  if (auto max = uri.size_option("max")) settings.max_message_size = *max;
  if (uri.has_option("mode"))
    settings.mode = static_cast<mode_t>(std::stoul(uri.options.at("mode"), nullptr, 8));
  return settings;
}

namespace {

UnixSocketType unix_type(const std::string& scheme) {
  if (scheme == "unix+seqpacket") return UnixSocketType::seqpacket;
  if (scheme == "unix+dgram") return UnixSocketType::datagram;
  return UnixSocketType::stream;
}

std::unique_ptr<Transport> stream_transport(StreamEnds ends, const std::string& uri,
                                            const Settings& settings,
                                            const ChannelOptions& options) {
  return std::make_unique<StreamTransport>(std::move(ends), uri, settings.max_message_size,
                                           settings.raw, options.cancellation);
}

// `pipe:` moves this process's stdin and stdout into the channel and points
// descriptors 0 and 1 at /dev/null, so stray output cannot corrupt the stream
// and closing the channel is seen by the peer as end of file.
StreamEnds pipe_ends(const Uri& uri) {
  ignore_sigpipe();
  StreamEnds ends;
  if (!uri.path.empty()) {
    auto comma = uri.path.find(',');
    ends.read.reset(std::stoi(uri.path.substr(0, comma)));
    ends.write.reset(std::stoi(uri.path.substr(comma + 1)));
    for (int fd : {ends.read.get(), ends.write.get()}) {
      if (::fcntl(fd, F_GETFD) < 0)
        throw SystemError("fcntl", uri.str(), errno, "that descriptor is not open in this process");
      set_close_on_exec(fd, true);
    }
    return ends;
  }
  ends.read.reset(::fcntl(0, F_DUPFD_CLOEXEC, 3));
  ends.write.reset(::fcntl(1, F_DUPFD_CLOEXEC, 3));
  if (!ends.read || !ends.write) throw SystemError("dup(stdin/stdout)", "pipe:", errno);
  FileDescriptor null(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (null) {
    ::dup2(null.get(), 0);
    ::dup2(null.get(), 1);
  }
  return ends;
}

}  // namespace

Channel Channel::connect(std::string_view text, const ChannelOptions& options) {
  Uri uri = Uri::parse(text);
  Settings settings = settings_for(uri, options);
  if (uri.scheme == "pipe")
    return Channel(stream_transport(pipe_ends(uri), uri.str(), settings, options));
  if (uri.scheme == "fifo") return Channel(connect_fifo(uri, settings, options));
  if (uri.scheme == "mq") return Channel(connect_posix_queue(uri, settings, options));
  if (uri.scheme == "sysvmq") return Channel(connect_sysv_queue(uri, settings, options));
  if (uri.scheme == "shm") return Channel(connect_shm(uri, settings, options));
  if (uri.scheme == "tcp") {
    TcpSocket socket = TcpSocket::connect(uri.host, uri.port, options.connect_timeout);
    StreamEnds ends;
    ends.read = socket.release();
    ends.socket = true;
    return Channel(stream_transport(std::move(ends), uri.str(), settings, options));
  }
  // unix, unix+seqpacket, unix+dgram
  UnixSocketType type = unix_type(uri.scheme);
  UnixSocket socket = UnixSocket::connect(UnixAddress::parse(uri.path), type);
  if (type == UnixSocketType::stream) {
    StreamEnds ends;
    ends.peer = socket.peer_credentials();
    ends.read = socket.release();
    ends.socket = true;
    return Channel(stream_transport(std::move(ends), uri.str(), settings, options));
  }
  prepare_datagram_socket(socket.fd(), settings.max_message_size, uri.str());
  return Channel(std::make_unique<DatagramTransport>(
      socket.release(), type, false, uri.str(), settings.max_message_size, options.cancellation));
}

std::pair<Channel, Process> Channel::spawn(const std::vector<std::string>& argv,
                                           const ChannelOptions& options, bool raw) {
  ignore_sigpipe();
  PipePair to_child = PipePair::create();
  PipePair from_child = PipePair::create();
  SpawnOptions spawn_options;
  spawn_options.argv = argv;
  spawn_options.stdin_fd = to_child.read_end.get();
  spawn_options.stdout_fd = from_child.write_end.get();
  Process child = Process::spawn(spawn_options);
  StreamEnds ends;
  ends.read = std::move(from_child.read_end);
  ends.write = std::move(to_child.write_end);
  std::string uri = raw ? "pipe:?raw" : "pipe:";
  Settings settings{options.max_message_size, raw, 0600};
  return {Channel(stream_transport(std::move(ends), uri, settings, options)), std::move(child)};
}

// ---- Listeners ---------------------------------------------------------------

namespace {

class PipeListener final : public ListenerImpl {
 public:
  PipeListener(Uri uri, Settings settings, ChannelOptions options)
      : uri_(std::move(uri)), settings_(settings), options_(options) {}

  std::optional<Channel> accept(std::chrono::nanoseconds) override {
    if (accepted_) throw Error("accept(" + uri_.str() + "): a pipe has only one peer");
    accepted_ = true;
    return Channel(stream_transport(pipe_ends(uri_), uri_.str(), settings_, options_));
  }
  PeerModel peer_model() const override { return PeerModel::single; }
  std::string uri() const override { return uri_.str(); }

 private:
  Uri uri_;
  Settings settings_;
  ChannelOptions options_;
  bool accepted_ = false;
};

class SocketListener final : public ListenerImpl {
 public:
  SocketListener(Uri uri, Settings settings, ChannelOptions options)
      : uri_(std::move(uri)), settings_(settings), options_(options) {
    if (uri_.scheme == "tcp") {
      tcp_.emplace(TcpListener::bind(uri_.host, uri_.port));
      uri_.port = tcp_->port();
    } else {
      type_ = unix_type(uri_.scheme);
      unix_ = BoundUnixSocket::bind(UnixAddress::parse(uri_.path), type_, 128, settings_.mode);
      if (type_ != UnixSocketType::stream)
        prepare_datagram_socket(unix_.fd(), settings_.max_message_size, uri_.str());
    }
  }

  std::optional<Channel> accept(std::chrono::nanoseconds timeout) override {
    if (type_ == UnixSocketType::datagram) {
      if (accepted_) throw Error("accept(" + uri_.str() + "): a datagram socket has one channel");
      accepted_ = true;
      int fd = ::fcntl(unix_.fd(), F_DUPFD_CLOEXEC, 3);
      if (fd < 0) throw SystemError("dup", uri_.str(), errno);
      return Channel(std::make_unique<DatagramTransport>(
          FileDescriptor(fd), type_, true, uri_.str(), settings_.max_message_size,
          options_.cancellation, options_.reply_timeout));
    }
    int listen_fd = tcp_ ? tcp_->fd() : unix_.fd();
    if (!wait_for_fd(listen_fd, POLLIN, Deadline(timeout), options_.cancellation, uri_.str()))
      return std::nullopt;
    if (tcp_) {
      StreamEnds ends;
      ends.read = tcp_->accept().release();
      ends.socket = true;
      return Channel(stream_transport(std::move(ends), uri_.str(), settings_, options_));
    }
    UnixSocket socket = unix_.accept();
    if (type_ == UnixSocketType::stream) {
      StreamEnds ends;
      ends.peer = socket.peer_credentials();
      ends.read = socket.release();
      ends.socket = true;
      return Channel(stream_transport(std::move(ends), uri_.str(), settings_, options_));
    }
    prepare_datagram_socket(socket.fd(), settings_.max_message_size, uri_.str());
    return Channel(std::make_unique<DatagramTransport>(socket.release(), type_, false, uri_.str(),
                                                       settings_.max_message_size,
                                                       options_.cancellation));
  }

  PeerModel peer_model() const override {
    return type_ == UnixSocketType::datagram ? PeerModel::single : PeerModel::concurrent;
  }
  std::string uri() const override { return uri_.str(); }

 private:
  Uri uri_;
  Settings settings_;
  ChannelOptions options_;
  UnixSocketType type_ = UnixSocketType::stream;
  std::optional<TcpListener> tcp_;
  BoundUnixSocket unix_;
  bool accepted_ = false;
};

}  // namespace

ChannelListener ChannelListener::listen(std::string_view text, const ChannelOptions& options) {
  Uri uri = Uri::parse(text);
  Settings settings = settings_for(uri, options);
  if (uri.scheme == "pipe")
    return ChannelListener(std::make_unique<PipeListener>(uri, settings, options));
  if (uri.scheme == "fifo") return ChannelListener(listen_fifo(uri, settings, options));
  if (uri.scheme == "mq") return ChannelListener(listen_posix_queue(uri, settings, options));
  if (uri.scheme == "sysvmq") return ChannelListener(listen_sysv_queue(uri, settings, options));
  if (uri.scheme == "shm") return ChannelListener(listen_shm(uri, settings, options));
  return ChannelListener(std::make_unique<SocketListener>(uri, settings, options));
}

ChannelListener::ChannelListener(std::unique_ptr<ListenerImpl> impl) : impl_(std::move(impl)) {}
ChannelListener::ChannelListener(ChannelListener&&) noexcept = default;
ChannelListener& ChannelListener::operator=(ChannelListener&&) noexcept = default;
ChannelListener::~ChannelListener() = default;

std::optional<Channel> ChannelListener::accept(std::chrono::nanoseconds timeout) {
  return impl_->accept(timeout);
}
PeerModel ChannelListener::peer_model() const {
  return impl_->peer_model();
}
std::string ChannelListener::uri() const {
  return impl_->uri();
}

}  // namespace conduit::ipc
