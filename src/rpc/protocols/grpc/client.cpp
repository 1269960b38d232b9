// The gRPC client: one nghttp2 client session over a wire (a blocking
// socket driven by poll() with the call's deadline, or a shared-memory link),
// driven by the call in progress.
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "conduit/error.hpp"
#include "conduit/ipc/file_descriptor.hpp"
#include "conduit/rpc/grpc_channel.hpp"
#include "rpc/protocols/grpc/status_mapping.hpp"
#include "rpc/protocols/grpc/wire.hpp"
#include "rpc/transports/address.hpp"
#include "rpc/transports/connect.hpp"
#include "rpc/transports/shm_transport.hpp"

namespace conduit::rpc {

namespace {

using Clock = std::chrono::steady_clock;

nghttp2_nv header(std::string_view name, std::string_view value) {
  return {reinterpret_cast<std::uint8_t*>(const_cast<char*>(name.data())),
          reinterpret_cast<std::uint8_t*>(const_cast<char*>(value.data())), name.size(),
          value.size(), NGHTTP2_NV_FLAG_NONE};
}

struct Target {
  transport::Address address;
  std::string authority;  // :authority, "HOST:PORT" or "localhost"
};

// gRPC's own target forms ("HOST:PORT", "[::1]:PORT", "grpc://HOST:PORT",
// "unix:/path", "unix:@name") and conduit's shared memory (shm+unix:/path),
// through the transport layer's parser.
Target parse_target(std::string_view text) {
  Target target;
  std::string_view rest = text;
  if (rest.starts_with("grpc://")) rest.remove_prefix(7);
  const bool has_scheme = rest.starts_with("unix:") || rest.starts_with("shm+unix:") ||
                          rest.starts_with("shm:") || rest.find("://") != std::string_view::npos;
  try {
    target.address = transport::parse_address(
        has_scheme ? std::string(rest) : "tcp://" + std::string(rest), transport::Role::client);
  } catch (const InvalidUri& error) {
    throw InvalidUri(std::string(error.what()) +
                     "(a gRPC channel also takes HOST:PORT and grpc://HOST:PORT)");
  }
  target.authority =
      target.address.kind == transport::Kind::tcp ? std::string(rest) : std::string("localhost");
  return target;
}

// One call in flight: its requests as they go, what came back as it comes.
struct Exchange {
  std::int32_t stream = -1;
  std::string outbound;  // framed requests, from `sent` on not yet taken by nghttp2
  std::size_t sent = 0;
  bool half_closed = false;  // no request after those in `outbound`
  bool deferred = false;     // the data provider waits for a request
  bool compress = false;     // the call announced grpc-encoding gzip
  int http_status = 0;
  std::multimap<std::string, std::string> received;  // headers and trailers
  grpc::MessageDeframer responses{std::size_t{1} << 31};
  bool closed = false;
  std::uint32_t reset_code = 0;
  std::optional<Status> ended;  // given up on here (deadline, cancel, a broken connection)
};

// Where the session's bytes go: a socket, or a conduit server's
// shared-memory link.
class Wire {
 public:
  enum class Got { bytes, timed_out, closed };
  virtual ~Wire() = default;
  // Sends all of `bytes`; false when the peer is gone.
  virtual bool send(std::string_view bytes) = 0;
  // Waits until `deadline` for bytes; `bytes` stays valid until the next
  // call.
  virtual Got receive(Clock::time_point deadline, std::string_view& bytes) = 0;
};

class SocketWire final : public Wire {
 public:
  explicit SocketWire(ipc::FileDescriptor fd) : fd_(std::move(fd)) {}
  bool send(std::string_view bytes) override {
    std::size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t wrote =
          ::send(fd_.get(), bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
      if (wrote < 0 && errno == EINTR) continue;
      if (wrote <= 0) return false;
      done += static_cast<std::size_t>(wrote);
    }
    return true;
  }
  Got receive(Clock::time_point deadline, std::string_view& bytes) override {
    for (;;) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      pollfd ready{fd_.get(), POLLIN, 0};
      const int polled = left.count() > 0 ? ::poll(&ready, 1, static_cast<int>(left.count())) : 0;
      if (polled < 0 && errno == EINTR) continue;
      if (polled <= 0) return Got::timed_out;
      const ssize_t n = ::recv(fd_.get(), chunk_, sizeof chunk_, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return Got::closed;
      bytes = std::string_view(chunk_, static_cast<std::size_t>(n));
      return Got::bytes;
    }
  }

 private:
  ipc::FileDescriptor fd_;
  char chunk_[16384];
};

class ShmWire final : public Wire {
 public:
  explicit ShmWire(shm::Link link) : link_(std::move(link)) {}
  bool send(std::string_view bytes) override {
    try {
      link_.send_bytes(bytes);
      return true;
    } catch (const Error&) {
      return false;
    }
  }
  Got receive(Clock::time_point deadline, std::string_view& bytes) override {
    try {
      const auto left = std::max(deadline - Clock::now(), Clock::duration::zero());
      bool timed_out = false;
      std::optional<std::string_view> message = link_.receive(left, &timed_out);
      if (!message) return timed_out ? Got::timed_out : Got::closed;
      bytes = *message;
      return Got::bytes;
    } catch (const Error&) {  // the server died or broke the ring
      return Got::closed;
    }
  }

 private:
  shm::Link link_;
};

}  // namespace

class GrpcChannel::Impl {
 public:
  Impl(std::string_view target, std::chrono::milliseconds timeout)
      : target_(parse_target(target)), text_(target), timeout_(timeout) {}

  ~Impl() { disconnect(); }

  // ---- whose turn the connection is ----
  //
  // The connection carries one call at a time; calls of other threads wait
  // for their turn, up to their own deadline. A thread whose stream holds
  // the turn gets FAILED_PRECONDITION for another call, rather than waiting
  // for itself.

  Status take_turn(Clock::time_point deadline) {
    std::unique_lock lock(turn_mutex_);
    if (busy_ && holder_ == std::this_thread::get_id())
      return {StatusCode::failed_precondition,
              "a streaming call of this thread is still open on this channel; finish() it first"};
    if (!turn_free_.wait_until(lock, deadline, [this] { return !busy_; }))
      return {StatusCode::deadline_exceeded,
              "the call's deadline passed while the channel's other calls ran"};
    busy_ = true;
    holder_ = std::this_thread::get_id();
    return {};
  }

  void give_turn() {
    {
      std::lock_guard lock(turn_mutex_);
      busy_ = false;
      holder_ = {};
    }
    turn_free_.notify_one();
  }

  // Sends every request (then the end of the stream) and collects every
  // response message, in its turn.
  Status call(std::string_view path, const std::vector<std::string>& requests,
              std::vector<std::string>& responses, std::chrono::milliseconds timeout,
              const std::multimap<std::string, std::string>& metadata,
              std::multimap<std::string, std::string>* received) {
    if (Status turn = take_turn(Clock::now() + timeout); !turn.ok()) return turn;
    struct GiveBack {
      Impl& impl;
      ~GiveBack() { impl.give_turn(); }
    } give_back{*this};
    return call_in_turn(path, requests, responses, timeout, metadata, received);
  }

  Status call_in_turn(std::string_view path, const std::vector<std::string>& requests,
                      std::vector<std::string>& responses, std::chrono::milliseconds timeout,
                      const std::multimap<std::string, std::string>& metadata,
                      std::multimap<std::string, std::string>* received) {
    // A kept connection may have been closed by the server meanwhile: then
    // the call is made once more on a new one.
    for (int attempt = 0; attempt < 2; ++attempt) {
      const bool reused = session_ != nullptr;
      Exchange exchange;
      Status status = start(path, timeout, metadata, compress_requests_, exchange);
      if (status.ok()) {
        for (const std::string& request : requests) queue(exchange, request, compress_requests_);
        exchange.half_closed = true;
        status = drive(exchange, [&] { return exchange.closed; });
      }
      // A kept connection the server closed, or a stream it refused (GOAWAY
      // naming an earlier stream, or REFUSED_STREAM): the server never
      // processed the call, so it is made again on a new connection.
      const bool refused = exchange.reset_code == NGHTTP2_REFUSED_STREAM;
      if (((status.code() == StatusCode::unavailable && reused) || refused) &&
          exchange.http_status == 0 && attempt == 0) {
        end(exchange);
        disconnect();
        continue;
      }
      if (received) *received = exchange.received;
      if (status.ok()) {
        for (std::string message; read(exchange, message);) responses.push_back(std::move(message));
        status = exchange.ended ? *exchange.ended : answer(exchange);
      }
      end(exchange);
      return status;
    }
    return {StatusCode::unavailable, text_ + " closed the connection"};
  }

  // ---- a call whose messages go and come as they are written and read ----

  // Opens the call, in its turn (kept until finish() or the stream's end):
  // its headers go out at once. An error is kept in `exchange.ended`;
  // false when the turn was not taken.
  bool open(std::string_view path, std::chrono::milliseconds timeout,
            const std::multimap<std::string, std::string>& metadata, bool compress,
            Exchange& exchange) {
    if (Status turn = take_turn(Clock::now() + timeout); !turn.ok()) {
      exchange.ended = turn;
      return false;
    }
    Status status = start(path, timeout, metadata, compress, exchange);
    if (status.ok()) status = send_pending();
    if (!status.ok()) exchange.ended = status;
    return true;
  }

  bool write(Exchange& exchange, std::string_view message, bool compress) {
    if (exchange.ended || exchange.closed || exchange.half_closed) return false;
    queue(exchange, message, compress && exchange.compress);
    // Back pressure: the write returns once nghttp2 has taken the message,
    // which flow control may hold back until the server reads.
    Status status = drive(exchange, [&] { return exchange.sent == exchange.outbound.size(); });
    return status.ok() && !exchange.closed;
  }

  void writes_done(Exchange& exchange) {
    if (exchange.ended || exchange.half_closed) return;
    exchange.half_closed = true;
    resume(exchange);
    (void)send_pending();
  }

  // The next response message; false at the end of the responses.
  bool read(Exchange& exchange, std::string& message) {
    if (exchange.ended) return false;
    bool ended = false;
    Status status = next_message(exchange, message, ended);
    if (!status.ok()) exchange.ended = status;
    return status.ok() && !ended;
  }

  Status finish(Exchange& exchange) {
    if (!exchange.ended) {
      Status status = drive(exchange, [&] { return exchange.closed; });
      if (!status.ok()) exchange.ended = status;
    }
    Status status = exchange.ended ? *exchange.ended : answer(exchange);
    end(exchange);
    return status;
  }

  void cancel(Exchange& exchange) {
    if (exchange.ended || exchange.closed) return;
    reset(exchange);
    exchange.ended = Status(StatusCode::cancelled, "the call was cancelled by the client");
  }

  // Leaves a call: a stream still open is reset, so that nothing more of it
  // arrives for a later call.
  void end(Exchange& exchange) {
    if (exchange_ == &exchange) {
      if (!exchange.closed && !exchange.ended && session_) reset(exchange);
      exchange_ = nullptr;
    }
  }

  void set_compress_requests(bool compress) { compress_requests_ = compress; }
  void set_max_response_bytes(std::size_t bytes) { max_response_bytes_ = bytes; }
  std::chrono::milliseconds timeout() const { return timeout_; }

 private:
  Status connect(Clock::time_point deadline) {
    try {
      const auto left =
          std::max(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()),
                   std::chrono::milliseconds(1));
      if (target_.address.kind == transport::Kind::shm)
        wire_ = std::make_unique<ShmWire>(transport::connect_shm(target_.address, left));
      else
        wire_ = std::make_unique<SocketWire>(transport::connect_socket(target_.address, left));
    } catch (const Error& error) {
      return {StatusCode::unavailable, error.what()};
    }
    nghttp2_session_callbacks* callbacks = nullptr;
    nghttp2_session_callbacks_new(&callbacks);
    nghttp2_session_callbacks_set_on_header_callback(callbacks, &on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, &on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, &on_stream_close);
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, &on_frame);
    const int created = nghttp2_session_client_new(&session_, callbacks, this);
    nghttp2_session_callbacks_del(callbacks);
    if (created != 0) {
      disconnect();
      return {StatusCode::internal, "nghttp2 could not make a session"};
    }
    const nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1u << 20},
    };
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
    nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, 8 << 20);
    return {};
  }

  void disconnect() {
    if (session_ != nullptr) nghttp2_session_del(session_);
    session_ = nullptr;
    wire_.reset();
    goaway_received_ = false;
  }

  // Connects when needed and submits the call's headers; requests follow
  // as they are queued.
  Status start(std::string_view path, std::chrono::milliseconds timeout,
               const std::multimap<std::string, std::string>& metadata, bool compress,
               Exchange& exchange) {
    if (exchange_ != nullptr)
      return {StatusCode::failed_precondition,
              "a streaming call is still open on this channel; finish() it first"};
    deadline_ = Clock::now() + timeout;
    call_timeout_ = timeout;
    if (!session_) {
      if (Status connected = connect(deadline_); !connected.ok()) return connected;
    }
    exchange.compress = compress;
    exchange.responses = grpc::MessageDeframer(max_response_bytes_);
    const std::string path_text(path);
    const std::string grpc_timeout = grpc::format_timeout(timeout);
    std::vector<std::pair<std::string, std::string>> extra;
    for (const auto& [key, value] : metadata)
      extra.emplace_back(key, grpc::is_binary_header(key) ? grpc::base64_encode(value) : value);
    std::vector<nghttp2_nv> headers = {header(":method", "POST"),
                                       header(":scheme", "http"),
                                       header(":path", path_text),
                                       header(":authority", target_.authority),
                                       header("content-type", "application/grpc"),
                                       header("te", "trailers"),
                                       header("grpc-timeout", grpc_timeout),
                                       header("user-agent", "conduit-grpc"),
                                       header("grpc-accept-encoding", "identity,gzip")};
    if (compress) headers.push_back(header("grpc-encoding", "gzip"));
    for (const auto& [key, value] : extra) headers.push_back(header(key, value));
    nghttp2_data_provider body{};
    body.source.ptr = &exchange;
    body.read_callback = &read_request;
    exchange.stream =
        nghttp2_submit_request(session_, nullptr, headers.data(), headers.size(), &body, nullptr);
    if (exchange.stream < 0) {
      disconnect();
      return {StatusCode::internal, "nghttp2 refused the request"};
    }
    exchange_ = &exchange;
    return {};
  }

  // A request message, framed, for the data provider.
  void queue(Exchange& exchange, std::string_view message, bool compress) {
    exchange.outbound += compress ? grpc::frame_message(grpc::gzip_compress(message), true)
                                  : grpc::frame_message(message);
    resume(exchange);
  }

  void resume(Exchange& exchange) {
    if (exchange.deferred && session_) {
      exchange.deferred = false;
      nghttp2_session_resume_data(session_, exchange.stream);
    }
  }

  // Sends and receives until `done()` or the stream closes. Past the
  // call's deadline the stream is reset (the server hears of it) and the
  // connection stays.
  template <typename Done>
  Status drive(Exchange& exchange, Done done) {
    for (;;) {
      if (Status sent = send_pending(); !sent.ok()) return sent;
      if (done() || exchange.closed) return {};
      if (nghttp2_session_want_read(session_) == 0) {
        // Either the server said GOAWAY, or nghttp2 found the server's bytes
        // are not HTTP/2 and ended the connection itself.
        const bool server_left = goaway_received_;
        disconnect();
        if (server_left) return {StatusCode::unavailable, text_ + " ended the connection (GOAWAY)"};
        return {StatusCode::internal, text_ + " broke the HTTP/2 protocol (is it a gRPC server?)"};
      }
      std::string_view bytes;
      const Wire::Got got = wire_->receive(deadline_, bytes);
      if (got == Wire::Got::timed_out) {
        reset(exchange);
        return {StatusCode::deadline_exceeded, "no answer from " + text_ + " within " +
                                                   std::to_string(call_timeout_.count()) + " ms"};
      }
      if (got == Wire::Got::closed) {
        disconnect();
        return {StatusCode::unavailable, text_ + " closed the connection"};
      }
      if (nghttp2_session_mem_recv(session_, reinterpret_cast<const std::uint8_t*>(bytes.data()),
                                   bytes.size()) < 0) {
        disconnect();
        return {StatusCode::internal, text_ + " broke the HTTP/2 protocol"};
      }
    }
  }

  void reset(Exchange& exchange) {
    if (!session_ || exchange.closed) return;
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, exchange.stream, NGHTTP2_CANCEL);
    (void)send_pending();
    exchange.closed = true;
  }

  // The next whole response message (expanded), reading as needed; sets
  // `ended` instead when the responses have ended.
  Status next_message(Exchange& exchange, std::string& message, bool& ended) {
    bool compressed = false;
    for (;;) {
      const auto result = exchange.responses.next(compressed, message);
      if (result == grpc::MessageDeframer::Result::message) break;
      if (result == grpc::MessageDeframer::Result::too_large) {
        reset(exchange);  // the rest of it is not wanted
        return too_large(exchange.responses.announced());
      }
      if (exchange.closed) {
        if (exchange.responses.partial() && answer(exchange).ok())
          return {StatusCode::internal, "the last response message is cut short"};
        ended = true;
        return {};
      }
      if (Status status = drive(exchange, [&] { return exchange.responses.whole(); }); !status.ok())
        return status;
    }
    if (compressed) {
      const auto encoding = exchange.received.find("grpc-encoding");
      if (encoding == exchange.received.end() || encoding->second != "gzip")
        return {StatusCode::internal, "a response is compressed with no known encoding"};
      bool expands_too_far = false;
      std::optional<std::string> plain =
          grpc::gzip_decompress(message, max_response_bytes_, expands_too_far);
      if (expands_too_far) {
        reset(exchange);
        return {StatusCode::resource_exhausted,
                "a compressed response expands beyond the client's limit of " +
                    std::to_string(max_response_bytes_) + " bytes (set_max_response_bytes)"};
      }
      if (!plain) return {StatusCode::internal, "a response's gzip data is malformed"};
      message = std::move(*plain);
    }
    return {};
  }

  Status too_large(std::uint64_t length) const {
    return {StatusCode::resource_exhausted, "a response message of " + std::to_string(length) +
                                                " bytes is larger than the client's limit of " +
                                                std::to_string(max_response_bytes_) +
                                                " bytes (set_max_response_bytes)"};
  }

  // Sends what nghttp2 has queued, frames gathered into writes of up to
  // 64 KiB.
  Status send_pending() {
    for (;;) {
      batch_.clear();
      while (batch_.size() < 64 * 1024) {
        const std::uint8_t* data = nullptr;
        const ssize_t n = nghttp2_session_mem_send(session_, &data);
        if (n < 0) {
          disconnect();
          return {StatusCode::internal, "nghttp2 failed to send"};
        }
        if (n == 0) break;
        batch_.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
      }
      if (batch_.empty()) return {};
      if (!wire_->send(batch_)) {
        disconnect();
        return {StatusCode::unavailable, text_ + " closed the connection"};
      }
    }
  }

  // The call's status as the server sent it.
  static Status answer(const Exchange& exchange) {
    return grpc::status_from_trailers(exchange.received, exchange.http_status, exchange.reset_code);
  }

  // ---- nghttp2 callbacks ----

  static Impl& self(void* user_data) { return *static_cast<Impl*>(user_data); }

  static ssize_t read_request(nghttp2_session*, std::int32_t, std::uint8_t* buffer,
                              std::size_t length, std::uint32_t* flags, nghttp2_data_source* source,
                              void*) {
    Exchange& exchange = *static_cast<Exchange*>(source->ptr);
    const std::size_t n = std::min(length, exchange.outbound.size() - exchange.sent);
    std::memcpy(buffer, exchange.outbound.data() + exchange.sent, n);
    exchange.sent += n;
    if (exchange.sent == exchange.outbound.size()) {
      exchange.outbound.clear();
      exchange.sent = 0;
      if (exchange.half_closed) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
      } else if (n == 0) {
        exchange.deferred = true;
        return NGHTTP2_ERR_DEFERRED;
      }
    }
    return static_cast<ssize_t>(n);
  }

  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const std::uint8_t* name,
                       std::size_t name_length, const std::uint8_t* value, std::size_t value_length,
                       std::uint8_t, void* user_data) {
    Exchange* exchange = self(user_data).exchange_;
    if (exchange == nullptr || frame->hd.stream_id != exchange->stream) return 0;
    const std::string key(reinterpret_cast<const char*>(name), name_length);
    std::string text(reinterpret_cast<const char*>(value), value_length);
    if (key == ":status") {
      exchange->http_status = std::atoi(text.c_str());
      return 0;
    }
    if (grpc::is_binary_header(key)) {
      if (auto bytes = grpc::base64_decode(text)) text = std::move(*bytes);
    }
    exchange->received.emplace(key, std::move(text));
    return 0;
  }

  static int on_data_chunk(nghttp2_session*, std::uint8_t, std::int32_t stream_id,
                           const std::uint8_t* data, std::size_t length, void* user_data) {
    Exchange* exchange = self(user_data).exchange_;
    if (exchange != nullptr && stream_id == exchange->stream)
      exchange->responses.append(std::string_view(reinterpret_cast<const char*>(data), length));
    return 0;
  }

  static int on_frame(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
    if (frame->hd.type == NGHTTP2_GOAWAY) self(user_data).goaway_received_ = true;
    return 0;
  }

  static int on_stream_close(nghttp2_session*, std::int32_t stream_id, std::uint32_t error_code,
                             void* user_data) {
    Exchange* exchange = self(user_data).exchange_;
    if (exchange != nullptr && stream_id == exchange->stream) {
      exchange->closed = true;
      exchange->reset_code = error_code;
    }
    return 0;
  }

  Target target_;
  std::string text_;
  std::chrono::milliseconds timeout_;
  std::unique_ptr<Wire> wire_;
  std::string batch_;
  nghttp2_session* session_ = nullptr;
  Exchange* exchange_ = nullptr;  // the call in flight
  Clock::time_point deadline_;    // its deadline
  std::chrono::milliseconds call_timeout_{0};
  bool goaway_received_ = false;  // the server said GOAWAY on this connection
  // Settings any thread may change; a call reads them as it starts.
  std::atomic<bool> compress_requests_{false};
  std::atomic<std::size_t> max_response_bytes_{4 << 20};  // gRPC's default receive limit
  std::mutex turn_mutex_;
  std::condition_variable turn_free_;
  bool busy_ = false;       // a call or a stream holds the connection
  std::thread::id holder_;  // the thread that took it
};

// ---- GrpcChannel::Stream ----

struct GrpcChannel::Stream::State {
  GrpcChannel::Impl* impl;
  Exchange exchange;
  bool finished = false;
  bool holds_turn = false;  // gives the connection back when the call ends

  void give_turn_back() {
    if (holds_turn) impl->give_turn();
    holds_turn = false;
  }
};

GrpcChannel::Stream::Stream(std::unique_ptr<State> state) : state_(std::move(state)) {}
GrpcChannel::Stream::Stream(Stream&&) noexcept = default;
GrpcChannel::Stream& GrpcChannel::Stream::operator=(Stream&&) noexcept = default;

GrpcChannel::Stream::~Stream() {
  if (state_ && !state_->finished) {
    state_->impl->cancel(state_->exchange);
    state_->impl->end(state_->exchange);
  }
  if (state_) state_->give_turn_back();
}

bool GrpcChannel::Stream::write(std::string_view message, bool compress) {
  return !state_->finished && state_->impl->write(state_->exchange, message, compress);
}

void GrpcChannel::Stream::writes_done() {
  if (!state_->finished) state_->impl->writes_done(state_->exchange);
}

bool GrpcChannel::Stream::read(std::string& message) {
  return !state_->finished && state_->impl->read(state_->exchange, message);
}

Status GrpcChannel::Stream::finish() {
  if (state_->finished)
    return {StatusCode::failed_precondition, "finish() was called before on this stream"};
  state_->finished = true;
  Status status = state_->impl->finish(state_->exchange);
  state_->give_turn_back();
  return status;
}

void GrpcChannel::Stream::cancel() {
  if (!state_->finished) state_->impl->cancel(state_->exchange);
}

const std::multimap<std::string, std::string>& GrpcChannel::Stream::received() const {
  return state_->exchange.received;
}

GrpcChannel::Stream GrpcChannel::open(std::string_view path, std::chrono::milliseconds timeout,
                                      const std::multimap<std::string, std::string>& metadata,
                                      bool compress) {
  auto state = std::make_unique<Stream::State>();
  state->impl = impl_.get();
  state->holds_turn = impl_->open(path, timeout, metadata, compress, state->exchange);
  return Stream(std::move(state));
}

namespace {

// A Stream as the protocol-neutral ClientStream.
class GrpcClientStream final : public ClientStream {
 public:
  GrpcClientStream(GrpcChannel::Stream stream, std::multimap<std::string, std::string>* received)
      : stream_(std::move(stream)), received_(received) {}
  bool write(std::string_view message) override { return stream_.write(message); }
  void writes_done() override { stream_.writes_done(); }
  bool read(std::string& message) override { return stream_.read(message); }
  Status finish() override {
    Status status = stream_.finish();
    if (received_) *received_ = stream_.received();
    return status;
  }
  void cancel() override { stream_.cancel(); }

 private:
  GrpcChannel::Stream stream_;
  std::multimap<std::string, std::string>* received_;
};

}  // namespace

std::unique_ptr<ClientStream> GrpcChannel::open(const google::protobuf::MethodDescriptor& method,
                                                const CallOptions& options) {
  return std::make_unique<GrpcClientStream>(
      open("/" + method.service()->full_name() + "/" + method.name(),
           options.timeout.count() > 0 ? options.timeout : impl_->timeout(), options.metadata),
      options.received);
}

void GrpcChannel::set_compress_requests(bool compress) {
  impl_->set_compress_requests(compress);
}

void GrpcChannel::set_max_response_bytes(std::size_t bytes) {
  impl_->set_max_response_bytes(bytes);
}

// ---- GrpcChannel ----

GrpcChannel::GrpcChannel(std::string_view target, std::chrono::milliseconds timeout)
    : impl_(std::make_unique<Impl>(target, timeout)) {}

GrpcChannel::~GrpcChannel() = default;

Status GrpcChannel::call(const google::protobuf::MethodDescriptor& method,
                         const google::protobuf::Message& request,
                         google::protobuf::Message& response, const CallOptions& options) {
  if (method.client_streaming() || method.server_streaming())
    return {StatusCode::unimplemented,
            "GrpcChannel makes unary calls; " + method.full_name() + " streams"};
  std::string bytes;
  const Status status = call_raw("/" + method.service()->full_name() + "/" + method.name(),
                                 request.SerializeAsString(), bytes,
                                 options.timeout.count() > 0 ? options.timeout : impl_->timeout(),
                                 options.metadata, options.received);
  if (!status.ok()) return status;
  if (!response.ParseFromString(bytes))
    return {StatusCode::internal, "the response is not a valid " + response.GetTypeName()};
  return {};
}

Status GrpcChannel::call_raw(std::string_view path, std::string_view request, std::string& response,
                             std::chrono::milliseconds timeout,
                             const std::multimap<std::string, std::string>& metadata,
                             std::multimap<std::string, std::string>* received) {
  std::vector<std::string> responses;
  Status status = impl_->call(path, {std::string(request)}, responses, timeout, metadata, received);
  if (!status.ok()) return status;
  if (responses.size() != 1) {
    return {StatusCode::internal,
            "a unary call answered with " + std::to_string(responses.size()) + " messages"};
  }
  response = std::move(responses.front());
  return {};
}

Status GrpcChannel::call_stream_raw(std::string_view path, const std::vector<std::string>& requests,
                                    std::vector<std::string>& responses,
                                    std::chrono::milliseconds timeout,
                                    const std::multimap<std::string, std::string>& metadata,
                                    std::multimap<std::string, std::string>* received) {
  return impl_->call(path, requests, responses, timeout, metadata, received);
}

}  // namespace conduit::rpc
