// The gRPC client: one nghttp2 client session per connection, carrying
// every call of every thread at once as HTTP/2 streams, on an io_context run
// by the caller of a blocking call or by the channel's own I/O thread once
// it is used asynchronously (rpc/io_driver.hpp).
#include <nghttp2/nghttp2.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "conduit/error.hpp"
#include "conduit/rpc/grpc_channel.hpp"
#include "rpc/io_driver.hpp"
#include "rpc/protocols/grpc/status_mapping.hpp"
#include "rpc/protocols/grpc/wire.hpp"
#include "rpc/transports/address.hpp"
#include "rpc/transports/client_wire.hpp"
#include "rpc/waiter.hpp"

namespace conduit::rpc {

namespace asio = boost::asio;

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

class Connection;

// One call, from its start to its Status. Made on the caller's thread;
// from then on touched on the I/O thread only.
struct Call {
  Call() = default;

  // ---- what the call is ----
  std::string path;
  std::chrono::milliseconds timeout{0};
  Clock::time_point deadline;
  std::vector<std::pair<std::string, std::string>> metadata;  // as sent (-bin in base64)
  bool compress = false;                                      // grpc-encoding gzip announced
  bool all_requests = false;  // every request known at the start (may be sent again)
  std::size_t max_response = 0;
  std::shared_ptr<CallCanceller> canceller;

  // ---- its stream ----
  Connection* connection = nullptr;  // while the stream is open on one
  std::int32_t stream = -1;
  int attempt = 0;
  bool on_kept_connection = false;  // started on a connection made before it
  std::string outbound;             // framed requests; from `sent` on not yet taken
  std::size_t sent = 0;
  std::uint64_t queued_total = 0;     // bytes of requests ever queued
  std::uint64_t taken_total = 0;      // ... and taken by nghttp2
  bool half_closed = false;           // no request after those queued
  bool deferred = false;              // the data provider waits for a request
  std::vector<std::string> requests;  // when all_requests: for a second attempt
  int http_status = 0;
  std::multimap<std::string, std::string> received;  // headers, then trailers
  grpc::MessageDeframer deframer{0};
  std::size_t unconsumed = 0;  // received bytes not yet given back to flow control
  bool closed = false;         // the stream closed
  std::uint32_t reset_code = 0;
  // Its place among the channel's deadlines, until it ends.
  std::optional<std::multimap<Clock::time_point, std::weak_ptr<Call>>::iterator> deadline_entry;

  // ---- what the caller gets ----
  // Responses not yet read. What arrives while one waits here is not given
  // back to flow control (`unconsumed`) until the caller has read them all:
  // a caller that does not read stops the server.
  std::deque<std::string> inbox;
  std::optional<Status> status;
  bool given_up = false;  // ended here (deadline, cancel, a lost connection): no more reads
  std::multimap<std::string, std::string> received_seen;  // what the caller may look at
  std::deque<std::pair<std::uint64_t, std::function<void(bool)>>> writes;  // until taken
  std::string* read_into = nullptr;
  std::function<void(bool)> read_done;
  std::function<void(Status)> finish_done;
  std::function<void(Status)> all_done;  // all_requests: the whole call
};

// The channel's workings: its I/O thread, its connections, its calls.
class Core {
 public:
  Core(std::string_view target, std::chrono::milliseconds timeout)
      : target_(parse_target(target)), text_(target), timeout_(timeout) {}

  ~Core();

  asio::io_context& io() { return driver_.io(); }
  IoDriver& driver() { return driver_; }
  // For asynchronous use: the I/O thread runs from now on.
  asio::any_io_executor executor() {
    driver_.go_async();
    return io().get_executor();
  }
  std::chrono::milliseconds timeout() const { return timeout_; }
  const std::string& text() const { return text_; }
  const Target& target() const { return target_; }
  bool on_io_thread() const { return driver_.on_io_thread(); }
  void set_compress_requests(bool compress) { compress_requests_ = compress; }
  bool compress_requests() const { return compress_requests_; }
  void set_max_response_bytes(std::size_t bytes) { max_response_bytes_ = bytes; }

  // A call as it is given to the I/O thread (caller's thread).
  std::shared_ptr<Call> make_call(std::string_view path, std::chrono::milliseconds timeout,
                                  const std::multimap<std::string, std::string>& metadata,
                                  bool compress, std::shared_ptr<CallCanceller> canceller) {
    auto call = std::make_shared<Call>();
    call->path = path;
    call->timeout = timeout.count() > 0 ? timeout : timeout_;
    call->deadline = Clock::now() + call->timeout;
    for (const auto& [key, value] : metadata)
      call->metadata.emplace_back(key,
                                  grpc::is_binary_header(key) ? grpc::base64_encode(value) : value);
    call->compress = compress;
    call->max_response = max_response_bytes_;
    call->deframer = grpc::MessageDeframer(call->max_response);
    call->canceller = std::move(canceller);
    return call;
  }

  // Runs `work` on the io_context.
  template <typename Work>
  void post(Work work) {
    asio::post(io(), std::move(work));
  }

  // ---- on the io_context ----

  void start(const std::shared_ptr<Call>& call);
  void end(Call& call, Status status);
  // Sets the deadline timer to `when`; ends the calls whose deadline has
  // passed when it fires.
  void arm(Clock::time_point when);
  void expire();
  void settle(Call& call);
  void show_received(Call& call);
  void connection_lost(Connection& connection, const std::shared_ptr<Call>& call,
                       const Status& why);
  void forget(Connection& connection) {
    if (current_.get() == &connection) current_.reset();
  }
  // Gives what the call holds back to flow control.
  void give_back(Call& call);

  // Queues a framed request of `call`; `done` (may be null) once nghttp2
  // has taken it.
  void queue(Call& call, std::string framed, std::function<void(bool)> done);
  void writes_done(Call& call);

 private:
  Target target_;
  std::string text_;
  std::chrono::milliseconds timeout_;
  std::atomic<bool> compress_requests_{false};
  std::atomic<std::size_t> max_response_bytes_{4 << 20};  // gRPC's default receive limit
  IoDriver driver_;
  // Every call's deadline, and one timer set to the earliest (set again
  // only when an earlier one comes, not for each call).
  std::multimap<Clock::time_point, std::weak_ptr<Call>> deadlines_;
  asio::steady_timer deadline_timer_{driver_.io()};
  Clock::time_point armed_ = Clock::time_point::max();
  std::shared_ptr<Connection> current_;                 // where new calls go (I/O thread)
  std::vector<std::weak_ptr<Connection>> connections_;  // every one not yet closed
};

// One HTTP/2 connection and the calls open on it (I/O thread only). It
// keeps itself alive while its wire reads.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  explicit Connection(Core& channel) : channel_(channel) {}
  ~Connection() {
    if (session_ != nullptr) nghttp2_session_del(session_);
  }

  // Connects within `timeout`: false with `why` set when it cannot.
  bool open(std::chrono::milliseconds timeout, Status& why) {
    try {
      wire_ = transport::connect_wire(channel_.io(), channel_.target().address, timeout,
                                      channel_.text());
    } catch (const Error& error) {
      why = {StatusCode::unavailable, error.what()};
      return false;
    }
    nghttp2_session_callbacks* callbacks = nullptr;
    nghttp2_session_callbacks_new(&callbacks);
    nghttp2_session_callbacks_set_on_header_callback(callbacks, &on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, &on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, &on_stream_close);
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, &on_frame);
    nghttp2_option* option = nullptr;
    nghttp2_option_new(&option);
    // Flow control gives window back as the caller reads, not as bytes
    // arrive: a stream whose responses nobody reads stops its sender.
    nghttp2_option_set_no_auto_window_update(option, 1);
    const int created = nghttp2_session_client_new2(&session_, callbacks, this, option);
    nghttp2_option_del(option);
    nghttp2_session_callbacks_del(callbacks);
    if (created != 0) {
      why = {StatusCode::internal, "nghttp2 could not make a session"};
      return false;
    }
    const nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, kStreamWindow},
    };
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
    nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, kConnectionWindow);
    std::weak_ptr<Connection> weak = weak_from_this();
    wire_->start(
        [weak](std::string_view bytes) {
          if (auto self = weak.lock()) self->received(bytes);
        },
        [weak](Status why) {
          if (auto self = weak.lock()) self->lost(why);
        });
    keep_alive_ = shared_from_this();
    return true;
  }

  // Submits the call's headers; its requests follow as they are queued.
  // False when this connection takes no more streams.
  bool submit(const std::shared_ptr<Call>& call) {
    const std::string grpc_timeout =
        grpc::format_timeout(std::max(call->deadline - Clock::now(), Clock::duration(1)));
    std::vector<nghttp2_nv> headers = {header(":method", "POST"),
                                       header(":scheme", "http"),
                                       header(":path", call->path),
                                       header(":authority", channel_.target().authority),
                                       header("content-type", "application/grpc"),
                                       header("te", "trailers"),
                                       header("grpc-timeout", grpc_timeout),
                                       header("user-agent", "conduit-grpc"),
                                       header("grpc-accept-encoding", "identity,gzip")};
    if (call->compress) headers.push_back(header("grpc-encoding", "gzip"));
    for (const auto& [key, value] : call->metadata) headers.push_back(header(key, value));
    nghttp2_data_provider body{};
    body.source.ptr = call.get();
    body.read_callback = &read_request;
    const std::int32_t stream =
        nghttp2_submit_request(session_, nullptr, headers.data(), headers.size(), &body, nullptr);
    if (stream < 0) return false;
    call->stream = stream;
    call->connection = this;
    calls_[stream] = call;
    flush();
    return true;
  }

  // The stream is no longer wanted: RST_STREAM (the server sees the call
  // cancelled).
  void reset(Call& call) {
    if (dead_ || call.closed) return;
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, call.stream, NGHTTP2_CANCEL);
    flush();
  }

  void resume(Call& call) {
    if (dead_ || !call.deferred) return;
    call.deferred = false;
    nghttp2_session_resume_data(session_, call.stream);
    flush();
  }

  void consume(Call& call, std::size_t bytes) {
    if (dead_ || bytes == 0) return;
    if (call.closed || call.status)  // the stream is gone, or going
      nghttp2_session_consume_connection(session_, bytes);
    else
      nghttp2_session_consume(session_, call.stream, bytes);
    flush();
  }

  // Closes the connection now: every call on it gets `why`.
  void close(const Status& why) {
    if (dead_) return;
    dead_ = true;
    channel_.forget(*this);
    wire_->close();
    auto calls = std::move(calls_);
    calls_.clear();
    for (auto& [stream, call] : calls) {
      call->connection = nullptr;
      channel_.connection_lost(*this, call, why);
    }
    keep_alive_.reset();  // last: may destroy this
  }

  bool dead() const { return dead_; }

 private:
  static constexpr std::uint32_t kStreamWindow = 1u << 20;
  static constexpr std::int32_t kConnectionWindow = 16 << 20;

  void received(std::string_view bytes) {
    if (dead_) return;
    auto self = shared_from_this();  // a callback may close it
    if (nghttp2_session_mem_recv(session_, reinterpret_cast<const std::uint8_t*>(bytes.data()),
                                 bytes.size()) < 0) {
      close({StatusCode::internal, channel_.text() + " broke the HTTP/2 protocol"});
      return;
    }
    flush();
    close_if_over();
  }

  // Once nghttp2 wants neither to read nor to write, the connection is over:
  // either the server said GOAWAY and its streams are done, or nghttp2 found
  // the server's bytes are not HTTP/2 and ended the session (its GOAWAY
  // sent).
  void close_if_over() {
    if (dead_ || writing_) return;
    if (nghttp2_session_want_read(session_) != 0 || nghttp2_session_want_write(session_) != 0)
      return;
    close(goaway_
              ? Status(StatusCode::unavailable, channel_.text() + " ended the connection (GOAWAY)")
              : Status(StatusCode::internal,
                       channel_.text() + " broke the HTTP/2 protocol (is it a gRPC server?)"));
  }

  void lost(const Status& why) { close(why); }

  // Sends what nghttp2 has queued, frames gathered into writes of up to
  // 64 KiB, one write at a time.
  void flush() {
    if (dead_ || writing_) return;
    batch_.clear();
    while (batch_.size() < 64 * 1024) {
      const std::uint8_t* data = nullptr;
      const ssize_t n = nghttp2_session_mem_send(session_, &data);
      if (n < 0) {
        close({StatusCode::internal, "nghttp2 failed to send"});
        return;
      }
      if (n == 0) break;
      batch_.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
    }
    if (batch_.empty()) return;
    writing_ = true;
    std::weak_ptr<Connection> weak = weak_from_this();
    wire_->send(batch_, [weak](bool sent) {
      auto self = weak.lock();
      if (!self || self->dead_) return;
      self->writing_ = false;
      if (!sent) {
        self->close({StatusCode::unavailable, self->channel_.text() + " closed the connection"});
        return;
      }
      self->flush();
      self->close_if_over();
    });
  }

  Call* find(std::int32_t stream) {
    const auto found = calls_.find(stream);
    return found == calls_.end() ? nullptr : found->second.get();
  }

  // ---- nghttp2 callbacks ----

  static Connection& self(void* user_data) { return *static_cast<Connection*>(user_data); }

  static ssize_t read_request(nghttp2_session*, std::int32_t, std::uint8_t* buffer,
                              std::size_t length, std::uint32_t* flags, nghttp2_data_source* source,
                              void*) {
    Call& call = *static_cast<Call*>(source->ptr);
    const std::size_t n = std::min(length, call.outbound.size() - call.sent);
    std::memcpy(buffer, call.outbound.data() + call.sent, n);
    call.sent += n;
    call.taken_total += n;
    while (!call.writes.empty() && call.writes.front().first <= call.taken_total) {
      if (call.writes.front().second) call.writes.front().second(true);
      call.writes.pop_front();
    }
    if (call.sent == call.outbound.size()) {
      call.outbound.clear();
      call.sent = 0;
      if (call.half_closed) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
      } else if (n == 0) {
        call.deferred = true;
        return NGHTTP2_ERR_DEFERRED;
      }
    }
    return static_cast<ssize_t>(n);
  }

  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const std::uint8_t* name,
                       std::size_t name_length, const std::uint8_t* value, std::size_t value_length,
                       std::uint8_t, void* user_data) {
    Call* call = self(user_data).find(frame->hd.stream_id);
    if (call == nullptr) return 0;
    const std::string key(reinterpret_cast<const char*>(name), name_length);
    std::string text(reinterpret_cast<const char*>(value), value_length);
    if (key == ":status") {
      call->http_status = std::atoi(text.c_str());
      return 0;
    }
    if (grpc::is_binary_header(key)) {
      if (auto bytes = grpc::base64_decode(text)) text = std::move(*bytes);
    }
    call->received.emplace(key, std::move(text));
    return 0;
  }

  static int on_data_chunk(nghttp2_session* session, std::uint8_t, std::int32_t stream_id,
                           const std::uint8_t* data, std::size_t length, void* user_data) {
    Connection& connection = self(user_data);
    Call* call = connection.find(stream_id);
    if (call == nullptr || call->status) {  // nobody reads it: give the window back
      nghttp2_session_consume(session, stream_id, length);
      return 0;
    }
    call->deframer.append(std::string_view(reinterpret_cast<const char*>(data), length));
    call->unconsumed += length;
    connection.take_messages(*call);
    if (call->all_requests || call->inbox.empty()) connection.channel_.give_back(*call);
    return 0;
  }

  // Moves the call's whole messages to its inbox (expanded).
  void take_messages(Call& call) {
    bool compressed = false;
    std::string message;
    for (;;) {
      const auto result = call.deframer.next(compressed, message);
      if (result == grpc::MessageDeframer::Result::need_more) break;
      if (result == grpc::MessageDeframer::Result::too_large) {
        channel_.end(call,
                     {StatusCode::resource_exhausted,
                      "a response message of " + std::to_string(call.deframer.announced()) +
                          " bytes is larger than the client's limit of " +
                          std::to_string(call.max_response) + " bytes (set_max_response_bytes)"});
        return;
      }
      if (compressed) {
        const auto encoding = call.received.find("grpc-encoding");
        if (encoding == call.received.end() || encoding->second != "gzip") {
          channel_.end(call,
                       {StatusCode::internal, "a response is compressed with no known encoding"});
          return;
        }
        bool expands_too_far = false;
        std::optional<std::string> plain =
            grpc::gzip_decompress(message, call.max_response, expands_too_far);
        if (expands_too_far) {
          channel_.end(call,
                       {StatusCode::resource_exhausted,
                        "a compressed response expands beyond the client's limit of " +
                            std::to_string(call.max_response) + " bytes (set_max_response_bytes)"});
          return;
        }
        if (!plain) {
          channel_.end(call, {StatusCode::internal, "a response's gzip data is malformed"});
          return;
        }
        message = std::move(*plain);
      }
      call.inbox.push_back(std::move(message));
    }
    channel_.settle(call);
  }

  static int on_frame(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
    Connection& connection = self(user_data);
    if (frame->hd.type == NGHTTP2_GOAWAY) {
      // New calls go to a new connection; this one ends with its streams.
      connection.goaway_ = true;
      connection.channel_.forget(connection);
    }
    return 0;
  }

  static int on_stream_close(nghttp2_session* session, std::int32_t stream_id,
                             std::uint32_t error_code, void* user_data) {
    Connection& connection = self(user_data);
    const auto found = connection.calls_.find(stream_id);
    if (found == connection.calls_.end()) return 0;
    std::shared_ptr<Call> call = std::move(found->second);
    connection.calls_.erase(found);
    call->closed = true;
    call->reset_code = error_code;
    call->connection = nullptr;
    // What arrived but was not read yet no longer counts against the
    // connection's window.
    if (call->unconsumed > 0) nghttp2_session_consume_connection(session, call->unconsumed);
    call->unconsumed = 0;
    if (call->status) return 0;
    if (error_code == NGHTTP2_REFUSED_STREAM && call->http_status == 0) {
      // Never processed (GOAWAY naming an earlier stream, or the server's
      // stream limit): it may go again on a new connection.
      connection.channel_.connection_lost(
          connection, call,
          {StatusCode::unavailable, connection.channel_.text() + " refused the call"});
      return 0;
    }
    Status status = grpc::status_from_trailers(call->received, call->http_status, call->reset_code);
    if (status.ok() && call->deframer.partial())
      status = {StatusCode::internal, "the last response message is cut short"};
    connection.channel_.end(*call, std::move(status));
    return 0;
  }

  Core& channel_;
  std::unique_ptr<transport::ClientWire> wire_;
  nghttp2_session* session_ = nullptr;
  std::unordered_map<std::int32_t, std::shared_ptr<Call>> calls_;
  std::string batch_;
  bool writing_ = false;
  bool dead_ = false;
  bool goaway_ = false;
  std::shared_ptr<Connection> keep_alive_;  // until close()
};

}  // namespace

class GrpcChannel::Impl : public Core {
 public:
  using Core::Core;
};

Core::~Core() {
  driver_.shut_down([this] {
    current_.reset();
    for (auto& weak : connections_)
      if (auto connection = weak.lock())
        connection->close({StatusCode::cancelled, "the channel was destroyed"});
    connections_.clear();
    // A timer still set would keep the I/O thread running until it fires.
    deadline_timer_.cancel();
    armed_ = Clock::time_point::max();
  });
}

void Core::arm(Clock::time_point when) {
  armed_ = when;
  deadline_timer_.expires_at(when);
  deadline_timer_.async_wait([this](boost::system::error_code error) {
    if (!error) expire();
  });
}

void Core::expire() {
  armed_ = Clock::time_point::max();
  const auto now = Clock::now();
  while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
    std::shared_ptr<Call> call = deadlines_.begin()->second.lock();
    deadlines_.erase(deadlines_.begin());
    if (!call) continue;
    call->deadline_entry.reset();
    end(*call, {StatusCode::deadline_exceeded, "no answer from " + text_ + " within " +
                                                   std::to_string(call->timeout.count()) + " ms"});
  }
  if (!deadlines_.empty()) arm(deadlines_.begin()->first);
}

void Core::start(const std::shared_ptr<Call>& call) {
  if (call->status) return;  // cancelled before it started
  if (Clock::now() >= call->deadline) {
    end(*call, {StatusCode::deadline_exceeded, "the call's deadline passed before it started"});
    return;
  }
  if (call->attempt == 0) {
    call->deadline_entry = deadlines_.emplace(call->deadline, call);
    if (call->deadline < armed_) arm(call->deadline);
    if (call->canceller) {
      std::weak_ptr<Call> weak_call = call;
      const bool armed = call->canceller->set_hook([this, weak_call] {
        post([this, weak_call] {
          if (auto call = weak_call.lock())
            end(*call, {StatusCode::cancelled, "the call was cancelled by the client"});
        });
      });
      if (!armed) {
        end(*call, {StatusCode::cancelled, "the call was cancelled by the client"});
        return;
      }
    }
  }
  for (int tries = 0; tries < 2; ++tries) {
    call->on_kept_connection = current_ != nullptr;
    if (!current_) {
      auto connection = std::make_shared<Connection>(*this);
      Status why;
      if (!connection->open(
              std::chrono::duration_cast<std::chrono::milliseconds>(call->deadline - Clock::now()),
              why)) {
        end(*call, why);
        return;
      }
      current_ = connection;
      std::erase_if(connections_, [](const auto& weak) { return weak.expired(); });
      connections_.push_back(connection);
    }
    if (current_->submit(call)) return;
    current_.reset();  // out of stream ids: the next call opens a new connection
  }
  end(*call, {StatusCode::internal, "nghttp2 refused the request"});
}

// A connection ended under a call: it is made again on a new connection when
// the server never processed it and its requests are all known, once.
void Core::connection_lost(Connection&, const std::shared_ptr<Call>& call, const Status& why) {
  if (call->status) return;
  const bool refused = call->reset_code == NGHTTP2_REFUSED_STREAM;
  if (call->all_requests && call->http_status == 0 && call->attempt == 0 &&
      (call->on_kept_connection || refused)) {
    call->attempt = 1;
    call->stream = -1;
    call->closed = false;
    call->reset_code = 0;
    call->received.clear();
    call->deframer = grpc::MessageDeframer(call->max_response);
    call->unconsumed = 0;
    call->inbox.clear();
    call->outbound.clear();
    call->sent = 0;
    call->deferred = false;
    for (const std::string& request : call->requests) call->outbound += request;
    start(call);
    return;
  }
  call->closed = true;
  end(*call, why);
}

void Core::end(Call& call, Status status) {
  if (call.status) return;
  const bool from_server = call.closed && !call.connection;
  call.status = std::move(status);
  call.given_up = !from_server;
  if (call.deadline_entry) {  // the timer is left as it is: it finds nothing due
    deadlines_.erase(*call.deadline_entry);
    call.deadline_entry.reset();
  }
  if (call.canceller) call.canceller->clear_hook();
  if (call.connection) call.connection->reset(call);
  if (call.given_up) {
    // Nothing more is read: what was held goes back to flow control.
    call.inbox.clear();
    give_back(call);
  }
  settle(call);
}

void Core::give_back(Call& call) {
  if (call.connection && call.unconsumed > 0) call.connection->consume(call, call.unconsumed);
  call.unconsumed = 0;
}

// What the caller may look at of the headers and trailers: they only grow,
// so a copy is made only when more came.
void Core::show_received(Call& call) {
  if (call.received_seen.size() != call.received.size()) call.received_seen = call.received;
}

// Completes whatever the caller waits for that can complete now.
void Core::settle(Call& call) {
  if (call.status) {
    for (auto& [target, done] : call.writes)
      if (done) post([done = std::move(done)] { done(false); });
    call.writes.clear();
  }
  if (call.read_done && (!call.inbox.empty() || call.status)) {
    const bool got = !call.inbox.empty();
    if (got) {
      *call.read_into = std::move(call.inbox.front());
      call.inbox.pop_front();
      if (call.inbox.empty()) give_back(call);
    }
    show_received(call);
    call.read_into = nullptr;
    post([done = std::move(call.read_done), got] { done(got); });
    call.read_done = nullptr;
  }
  if (!call.status) return;
  if (call.finish_done) {
    call.inbox.clear();
    show_received(call);
    post([done = std::move(call.finish_done), status = *call.status] { done(status); });
    call.finish_done = nullptr;
  }
  if (call.all_done) {
    show_received(call);
    post([done = std::move(call.all_done), status = *call.status] { done(status); });
    call.all_done = nullptr;
  }
}

void Core::queue(Call& call, std::string framed, std::function<void(bool)> done) {
  if (call.status || call.half_closed) {
    if (done) post([done = std::move(done)] { done(false); });
    return;
  }
  call.queued_total += framed.size();
  call.outbound += framed;
  call.writes.emplace_back(call.queued_total, std::move(done));
  if (call.connection) call.connection->resume(call);
}

void Core::writes_done(Call& call) {
  if (call.status || call.half_closed) return;
  call.half_closed = true;
  if (call.connection) call.connection->resume(call);
}

// ---- GrpcChannel::Stream ----

struct GrpcChannel::Stream::State {
  GrpcChannel::Impl* impl;
  std::shared_ptr<Call> call;
  bool finished = false;
  bool writes_ended = false;
};

GrpcChannel::Stream::Stream(std::unique_ptr<State> state) : state_(std::move(state)) {}
GrpcChannel::Stream::Stream(Stream&&) noexcept = default;
GrpcChannel::Stream& GrpcChannel::Stream::operator=(Stream&&) noexcept = default;

GrpcChannel::Stream::~Stream() {
  if (state_ && !state_->finished) cancel();
}

void GrpcChannel::Stream::start_write(std::string_view message, bool compress,
                                      std::function<void(bool)> done) {
  State& state = *state_;
  if (state.finished || state.writes_ended) {
    state.impl->post([done = std::move(done)] { done(false); });
    return;
  }
  std::string framed = compress && state.call->compress
                           ? grpc::frame_message(grpc::gzip_compress(message), true)
                           : grpc::frame_message(message);
  state.impl->post([impl = state.impl, call = state.call, framed = std::move(framed),
                    done = std::move(done)]() mutable {
    impl->queue(*call, std::move(framed), std::move(done));
  });
}

void GrpcChannel::Stream::start_read(std::string& message, std::function<void(bool)> done) {
  State& state = *state_;
  if (state.finished) {
    state.impl->post([done = std::move(done)] { done(false); });
    return;
  }
  state.impl->post([impl = state.impl, call = state.call, &message, done = std::move(done)] {
    call->read_into = &message;
    call->read_done = std::move(done);
    impl->settle(*call);
  });
}

void GrpcChannel::Stream::start_finish(std::function<void(Status)> done) {
  State& state = *state_;
  if (state.finished) {
    state.impl->post([done = std::move(done)] {
      done({StatusCode::failed_precondition, "finish() was called before on this stream"});
    });
    return;
  }
  state.finished = true;
  state.impl->post([impl = state.impl, call = state.call, done = std::move(done)] {
    call->finish_done = std::move(done);
    impl->settle(*call);
  });
}

bool GrpcChannel::Stream::write(std::string_view message, bool compress) {
  if (state_->impl->on_io_thread()) return false;
  Waiter<bool> waiter;
  start_write(message, compress, waiter.setter());
  return waiter.wait();
}

void GrpcChannel::Stream::writes_done() {
  if (state_->finished || state_->writes_ended) return;
  state_->writes_ended = true;
  state_->impl->post([impl = state_->impl, call = state_->call] { impl->writes_done(*call); });
}

bool GrpcChannel::Stream::read(std::string& message) {
  if (state_->impl->on_io_thread()) return false;
  Waiter<bool> waiter;
  start_read(message, waiter.setter());
  return waiter.wait();
}

Status GrpcChannel::Stream::finish() {
  if (state_->impl->on_io_thread()) return blocking_call_on_channel_thread();
  Waiter<Status> waiter;
  start_finish(waiter.setter());
  return waiter.wait();
}

void GrpcChannel::Stream::cancel() {
  state_->impl->post([impl = state_->impl, call = state_->call] {
    impl->end(*call, {StatusCode::cancelled, "the call was cancelled by the client"});
  });
}

const std::multimap<std::string, std::string>& GrpcChannel::Stream::received() const {
  return state_->call->received_seen;
}

asio::any_io_executor GrpcChannel::Stream::executor() const {
  return state_->impl->executor();
}

GrpcChannel::Stream GrpcChannel::open(std::string_view path, std::chrono::milliseconds timeout,
                                      const std::multimap<std::string, std::string>& metadata,
                                      bool compress) {
  return open(path, timeout, metadata, compress, nullptr);
}

GrpcChannel::Stream GrpcChannel::open(std::string_view path, std::chrono::milliseconds timeout,
                                      const std::multimap<std::string, std::string>& metadata,
                                      bool compress, std::shared_ptr<CallCanceller> canceller) {
  impl_->driver().go_async();
  auto state = std::make_unique<Stream::State>();
  state->impl = impl_.get();
  state->call = impl_->make_call(path, timeout, metadata, compress, std::move(canceller));
  impl_->post([impl = impl_.get(), call = state->call] { impl->start(call); });
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
  void start_write(std::string message, std::function<void(bool)> done) override {
    stream_.start_write(message, false, std::move(done));
  }
  void start_read(std::string& message, std::function<void(bool)> done) override {
    stream_.start_read(message, std::move(done));
  }
  void start_finish(std::function<void(Status)> done) override {
    stream_.start_finish([this, done = std::move(done)](Status status) {
      if (received_) *received_ = stream_.received();
      done(std::move(status));
    });
  }
  asio::any_io_executor executor() const override { return stream_.executor(); }

 private:
  GrpcChannel::Stream stream_;
  std::multimap<std::string, std::string>* received_;
};

std::string path_of(const google::protobuf::MethodDescriptor& method) {
  return "/" + method.service()->full_name() + "/" + method.name();
}

}  // namespace

std::unique_ptr<ClientStream> GrpcChannel::open(const google::protobuf::MethodDescriptor& method,
                                                const CallOptions& options) {
  return std::make_unique<GrpcClientStream>(
      open(path_of(method), options.timeout, options.metadata, false, options.canceller),
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

asio::any_io_executor GrpcChannel::executor() {
  return impl_->executor();
}

namespace {

// Starts a call whose requests are all known; `done` runs on the io_context.
void begin_raw(Core& core, std::string_view path, std::vector<std::string> requests,
               std::vector<std::string>& responses, const CallOptions& options,
               std::function<void(Status)> done) {
  const bool compress = core.compress_requests();
  auto call = core.make_call(path, options.timeout, options.metadata, compress, options.canceller);
  call->all_requests = true;
  call->half_closed = true;
  for (const std::string& request : requests) {
    call->requests.push_back(compress ? grpc::frame_message(grpc::gzip_compress(request), true)
                                      : grpc::frame_message(request));
    call->outbound += call->requests.back();
  }
  // Runs on the io_context (through post()); it holds the call, and is
  // dropped once it has run.
  call->all_done = [call, &responses, received = options.received,
                    done = std::move(done)](Status status) {
    if (received) *received = call->received_seen;
    for (auto& message : call->inbox) responses.push_back(std::move(message));
    call->inbox.clear();
    done(std::move(status));
  };
  core.post([&core, call] { core.start(call); });
}

// A unary call of `method`; `done` runs on the io_context.
void begin_unary(Core& core, const google::protobuf::MethodDescriptor& method,
                 const google::protobuf::Message& request, google::protobuf::Message& response,
                 const CallOptions& options, std::function<void(Status)> done) {
  if (method.client_streaming() || method.server_streaming()) {
    core.post([done = std::move(done), name = method.full_name()] {
      done({StatusCode::unimplemented,
            "a unary call was asked of " + name + ", which streams: open() it"});
    });
    return;
  }
  auto responses = std::make_shared<std::vector<std::string>>();
  begin_raw(
      core, path_of(method), {request.SerializeAsString()}, *responses, options,
      [responses, &response, done = std::move(done)](Status status) {
        if (status.ok() && responses->size() != 1)
          status = {StatusCode::internal, "a unary call answered with " +
                                              std::to_string(responses->size()) + " messages"};
        if (status.ok() && !response.ParseFromString(responses->front()))
          status = {StatusCode::internal, "the response is not a valid " + response.GetTypeName()};
        done(std::move(status));
      });
}

}  // namespace

void GrpcChannel::start_raw(std::string_view path, std::vector<std::string> requests,
                            std::vector<std::string>& responses, const CallOptions& options,
                            std::function<void(Status)> done) {
  impl_->driver().go_async();
  begin_raw(*impl_, path, std::move(requests), responses, options, std::move(done));
}

Status GrpcChannel::call_stream_raw(std::string_view path, const std::vector<std::string>& requests,
                                    std::vector<std::string>& responses,
                                    std::chrono::milliseconds timeout,
                                    const std::multimap<std::string, std::string>& metadata,
                                    std::multimap<std::string, std::string>* received) {
  if (impl_->on_io_thread()) return blocking_call_on_channel_thread();
  CallOptions options;
  options.timeout = timeout;
  options.metadata = metadata;
  options.received = received;
  return impl_->driver().block([&](std::function<void(Status)> done) {
    begin_raw(*impl_, path, requests, responses, options, std::move(done));
  });
}

Status GrpcChannel::call_raw(std::string_view path, std::string_view request, std::string& response,
                             std::chrono::milliseconds timeout,
                             const std::multimap<std::string, std::string>& metadata,
                             std::multimap<std::string, std::string>* received) {
  std::vector<std::string> responses;
  Status status =
      call_stream_raw(path, {std::string(request)}, responses, timeout, metadata, received);
  if (!status.ok()) return status;
  if (responses.size() != 1) {
    return {StatusCode::internal,
            "a unary call answered with " + std::to_string(responses.size()) + " messages"};
  }
  response = std::move(responses.front());
  return {};
}

void GrpcChannel::start(const google::protobuf::MethodDescriptor& method,
                        const google::protobuf::Message& request,
                        google::protobuf::Message& response, const CallOptions& options,
                        std::function<void(Status)> done) {
  impl_->driver().go_async();
  begin_unary(*impl_, method, request, response, options, std::move(done));
}

Status GrpcChannel::call(const google::protobuf::MethodDescriptor& method,
                         const google::protobuf::Message& request,
                         google::protobuf::Message& response, const CallOptions& options) {
  if (impl_->on_io_thread()) return blocking_call_on_channel_thread();
  return impl_->driver().block([&](std::function<void(Status)> done) {
    begin_unary(*impl_, method, request, response, options, std::move(done));
  });
}

}  // namespace conduit::rpc
