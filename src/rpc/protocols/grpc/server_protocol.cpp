// gRPC as a server speaks it: HTTP/2 with prior knowledge (h2c), recognised
// by the connection preface; nghttp2 does the framing, HPACK and flow
// control. Each call runs on the server's threads as soon as its request has
// arrived, so the streams of a connection run side by side.
//
// What a client can make a connection hold is bounded: the connection's
// window is given back as bytes arrive, but a streaming call's window only
// as its handler reads (past GrpcServerOptions::stream_buffer_bytes), and a
// call whose request bytes would take the connection beyond
// connection_buffer_bytes ends RESOURCE_EXHAUSTED.
#include "rpc/protocols/grpc/server_protocol.hpp"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cctype>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "rpc/call_runner.hpp"
#include "rpc/protocols/grpc/status_mapping.hpp"
#include "rpc/protocols/grpc/wire.hpp"

namespace conduit::rpc::grpc {

namespace {

constexpr std::uint32_t kMaxConcurrentStreams = 100;
// Large windows let a multi-megabyte message flow without waiting for a
// WINDOW_UPDATE every 64 KiB.
constexpr std::int32_t kStreamWindow = 1 << 20;
constexpr std::int32_t kConnectionWindow = 8 << 20;
constexpr std::uint32_t kMaxHeaderListBytes = 64 * 1024;
constexpr std::string_view kAcceptedEncodings = "identity,gzip";

nghttp2_nv header(std::string_view name, std::string_view value) {
  return {reinterpret_cast<std::uint8_t*>(const_cast<char*>(name.data())),
          reinterpret_cast<std::uint8_t*>(const_cast<char*>(value.data())), name.size(),
          value.size(), NGHTTP2_NV_FLAG_NONE};
}

// Header names conduit sets itself, or that belong to HTTP/2 and gRPC, and
// so are not a handler's metadata.
bool is_reserved_header(std::string_view name) {
  return name.empty() || name[0] == ':' || name == "content-type" || name == "te" ||
         name == "grpc-timeout" || name == "grpc-encoding" || name == "grpc-accept-encoding" ||
         name == "content-length" || name == "user-agent";
}

// Metadata as it goes on the wire: keys in lower case (HTTP/2 requires it),
// "-bin" values in base64; keys HTTP/2 or gRPC reserve are left out.
std::vector<std::pair<std::string, std::string>> wire_metadata(
    const std::multimap<std::string, std::string>& metadata) {
  std::vector<std::pair<std::string, std::string>> headers;
  for (const auto& [key, value] : metadata) {
    std::string name = key;
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (is_reserved_header(name) || name.rfind("grpc-", 0) == 0) continue;
    headers.emplace_back(name, is_binary_header(name) ? base64_encode(value) : value);
  }
  return headers;
}

// The trailers that end a call: its status, its message, the details of a
// rich status (grpc-status-details-bin, a serialized google.rpc.Status, as
// the handler set it), then the handler's own trailers.
std::vector<std::pair<std::string, std::string>> status_trailers(
    const Status& status, const std::multimap<std::string, std::string>& handler_trailers) {
  std::vector<std::pair<std::string, std::string>> trailers = status_to_trailers(status);
  for (auto& trailer : wire_metadata(handler_trailers)) trailers.push_back(std::move(trailer));
  return trailers;
}

// A streaming call, shared by its handler's thread (which reads and writes
// messages, blocking) and the connection (which feeds the requests in and
// takes the framed responses out).
class StreamCall final : public MessageReader, public MessageWriter {
 public:
  // `wake` asks the connection to send what was queued; called from the
  // handler's thread.
  // `client_accepts_gzip`: responses may be compressed when the handler
  // asks (CallContext::compress_response) before its first write.
  StreamCall(CallContext context, bool client_accepts_gzip, std::function<void()> wake)
      : context_(std::move(context)), wake_(std::move(wake)), accepts_gzip_(client_accepts_gzip) {}

  // Whether the responses go compressed (known once the first is written).
  bool compresses() {
    std::lock_guard lock(mutex_);
    return compress_;
  }

  CallContext& context() { return context_; }

  // ---- the handler's side ----

  bool read(google::protobuf::Message& message) override {
    std::unique_lock lock(mutex_);
    for (;;) {
      if (context_.cancelled()) return false;
      if (!inbound_.empty()) break;
      if (inbound_closed_) return false;
      if (context_.deadline) {
        if (changed_.wait_until(lock, *context_.deadline) == std::cv_status::timeout &&
            context_.expired()) {
          context_.cancel();
          return false;
        }
      } else {
        changed_.wait(lock);
      }
    }
    const std::string bytes = std::move(inbound_.front().bytes);
    context_.request_compressed = inbound_.front().compressed;
    taken_ += inbound_.front().wire_bytes;
    inbound_.pop_front();
    // The connection held the client's window back: room has been made.
    const bool room_made = std::exchange(withheld_, false);
    lock.unlock();
    if (room_made) wake_();
    if (message.ParseFromString(bytes)) return true;
    fail({StatusCode::internal, "a request is not a valid " + message.GetTypeName()});
    return false;
  }

  bool write(const google::protobuf::Message& message) override {
    {
      std::lock_guard lock(mutex_);
      if (!headers_taken_) compress_ = accepts_gzip_ && context_.compress_response;
    }
    const std::string framed = compress_
                                   ? frame_message(gzip_compress(message.SerializeAsString()), true)
                                   : frame_message(message.SerializeAsString());
    {
      std::unique_lock lock(mutex_);
      // Backpressure: a handler that writes faster than the client reads
      // waits here rather than filling memory.
      changed_.wait(lock, [&] { return context_.cancelled() || queued() < kMaxQueuedBytes; });
      if (context_.cancelled()) return false;
      if (!headers_taken_) headers_ = context_.response_metadata;
      headers_taken_ = true;
      outbound_ += framed;
      wrote_ = true;
    }
    wake_();
    return true;
  }

  // The handler returned `status`. A call whose deadline passed ends
  // DEADLINE_EXCEEDED, whatever its handler made of being cancelled for it.
  void finish(Status status) {
    if ((status.ok() || status.code() == StatusCode::cancelled) && context_.expired())
      status = {StatusCode::deadline_exceeded, "the deadline passed during the call"};
    {
      std::lock_guard lock(mutex_);
      if (!verdict_) verdict_ = std::move(status);
      if (!headers_taken_) headers_ = context_.response_metadata;
      headers_taken_ = true;
      trailers_ = context_.response_trailers;
      finished_ = true;
    }
    wake_();
  }

  // ---- the connection's side ----

  // `wire_bytes`: what the message took on the wire (framed, compressed).
  void push(std::string message, bool came_compressed, std::size_t wire_bytes) {
    std::lock_guard lock(mutex_);
    if (context_.cancelled()) return;  // no one will read it
    inbound_.push_back({std::move(message), came_compressed, wire_bytes});
    changed_.notify_all();
  }
  void close_inbound() {
    std::lock_guard lock(mutex_);
    inbound_closed_ = true;
    changed_.notify_all();
  }
  void cancel() {
    context_.cancel();
    std::lock_guard lock(mutex_);
    inbound_.clear();
    changed_.notify_all();
  }

  // Request bytes (as on the wire) of the messages the handler has read.
  std::uint64_t taken() {
    std::lock_guard lock(mutex_);
    return taken_;
  }

  // How many of `owed` request bytes (received, their window not given back
  // yet) the connection may give back now, `granted` having been given back
  // so far: all of them while no whole message waits (they are the message
  // the handler is to read next, at most the largest message); else as
  // many as keep what was given back and not read within `buffer`. When
  // some are held back, the handler's next read wakes the connection.
  std::uint64_t grantable(std::uint64_t granted, std::uint64_t owed, std::size_t buffer) {
    std::lock_guard lock(mutex_);
    std::uint64_t allowed = owed;
    if (!inbound_.empty()) {
      const std::uint64_t unread = granted > taken_ ? granted - taken_ : 0;
      allowed = unread >= buffer ? 0 : std::min<std::uint64_t>(owed, buffer - unread);
    }
    withheld_ = allowed < owed;
    return allowed;
  }
  // The connection's verdict (a message too large, compressed), which wins
  // over what the handler returns; the handler is cancelled.
  void fail(Status status) {
    {
      std::lock_guard lock(mutex_);
      if (!verdict_) verdict_ = std::move(status);
    }
    cancel();
  }

  struct Snapshot {
    bool has_data = false;
    bool finished = false;
    bool wrote = false;
    Status status;
    std::multimap<std::string, std::string> headers;
    std::multimap<std::string, std::string> trailers;
  };
  Snapshot snapshot() {
    std::lock_guard lock(mutex_);
    Snapshot now;
    now.has_data = queued() > 0;
    now.finished = finished_;
    now.wrote = wrote_;
    if (verdict_) now.status = *verdict_;
    now.headers = headers_;
    now.trailers = trailers_;
    return now;
  }

  // Copies queued response bytes into `into`; `done` when nothing is left
  // and the handler has returned.
  std::size_t take(std::uint8_t* into, std::size_t room, bool& done) {
    std::lock_guard lock(mutex_);
    const std::size_t n = std::min(room, queued());
    std::memcpy(into, outbound_.data() + sent_, n);
    sent_ += n;
    if (sent_ == outbound_.size()) {
      outbound_.clear();
      sent_ = 0;
    }
    done = finished_ && queued() == 0;
    changed_.notify_all();  // room for a waiting write
    return n;
  }

 private:
  static constexpr std::size_t kMaxQueuedBytes = 1 << 20;
  std::size_t queued() const { return outbound_.size() - sent_; }

  CallContext context_;  // the handler's; its cancellation flag is shared
  std::function<void()> wake_;
  std::mutex mutex_;
  std::condition_variable changed_;
  struct Inbound {
    std::string bytes;
    bool compressed = false;
    std::size_t wire_bytes = 0;
  };
  std::deque<Inbound> inbound_;
  std::uint64_t taken_ = 0;  // wire bytes of the messages read
  bool withheld_ = false;    // the connection holds the client's window back
  bool accepts_gzip_;
  bool compress_ = false;
  bool inbound_closed_ = false;
  std::string outbound_;
  std::size_t sent_ = 0;
  bool wrote_ = false;
  bool finished_ = false;
  bool headers_taken_ = false;
  std::optional<Status> verdict_;
  std::multimap<std::string, std::string> headers_;
  std::multimap<std::string, std::string> trailers_;
};

// One call: its request as it arrives, then its answer as it leaves.
struct Stream {
  std::int32_t id = 0;
  std::string method;  // :method
  std::string path;    // :path, "/package.Service/Method"
  std::string content_type;
  std::string encoding;         // grpc-encoding
  std::string accept_encoding;  // grpc-accept-encoding
  std::optional<std::chrono::nanoseconds> timeout;
  bool bad_timeout = false;
  std::multimap<std::string, std::string> metadata;
  std::size_t header_bytes = 0;  // as SETTINGS_MAX_HEADER_LIST_SIZE counts them
  std::string body;              // the request's DATA, still framed
  bool body_too_large = false;
  bool reset_after_answer = false;  // RST_STREAM once the answer's headers are sent
  std::shared_ptr<std::atomic<bool>> cancelled = std::make_shared<std::atomic<bool>>(false);
  bool started = false;  // handed to a handler

  // A streaming call: the requests are deframed as they arrive, and the
  // response goes out as the handler writes it.
  std::shared_ptr<StreamCall> call;
  std::unique_ptr<MessageDeframer> deframer;
  bool response_started = false;

  // Request bytes received and not yet taken by a handler, as counted in
  // the connection's total (GrpcConnection::held_).
  std::size_t held = 0;
  // A streaming call's request bytes: received, their window given back,
  // and read by the handler when last looked.
  std::uint64_t received = 0;
  std::uint64_t granted = 0;
  std::uint64_t taken_seen = 0;
  // The call has failed while its requests came: what more comes is let go.
  bool dropping = false;

  // The answer.
  std::string out;  // framed response message(s)
  std::size_t sent = 0;
  Status status;
  std::multimap<std::string, std::string> handler_trailers;
  std::vector<std::pair<std::string, std::string>> trailers;  // as sent
};

class GrpcConnection : public std::enable_shared_from_this<GrpcConnection> {
 public:
  explicit GrpcConnection(Connection& connection)
      : connection_(connection), wake_(connection.executor()), keepalive_(connection.executor()) {}

  ~GrpcConnection() {
    if (session_ != nullptr) nghttp2_session_del(session_);
  }

  asio::awaitable<void> run(std::string pending) {
    if (!start_session()) co_return;
    // A server shutting down says GOAWAY before it closes an idle connection.
    connection_.set_on_shutdown([weak = weak_from_this()] {
      if (auto self = weak.lock()) self->say_goodbye();
    });
    std::exception_ptr failure;
    arm_keepalive(connection_.options().grpc.keepalive_time);
    try {
      co_await serve(std::move(pending));
    } catch (...) {
      failure = std::current_exception();
    }
    keepalive_.cancel();  // a wait already fired finds closing_ set below
    // Calls still running are told to stop; their answers have no one to go
    // to. Wait for them: they hold this object, which holds the connection.
    for (auto& [id, stream] : streams_) {
      stream->cancelled->store(true);
      if (stream->call) stream->call->cancel();
    }
    closing_ = true;
    while (running_ > 0 || writing_) co_await changed();
    if (failure) std::rethrow_exception(failure);
  }

 private:
  bool start_session() {
    nghttp2_session_callbacks* callbacks = nullptr;
    if (nghttp2_session_callbacks_new(&callbacks) != 0) return false;
    nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, &on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(callbacks, &on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, &on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, &on_frame);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, &on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, &on_frame_sent);
    nghttp2_option* option = nullptr;
    if (nghttp2_option_new(&option) != 0) {
      nghttp2_session_callbacks_del(callbacks);
      return false;
    }
    // Streams opened and reset in a loop (CVE-2023-44487): past a burst of
    // 1000, at most 33 resets a second, then GOAWAY. A header block split
    // into endless CONTINUATION frames stops after 8.
    nghttp2_option_set_stream_reset_rate_limit(option, 1000, 33);
    nghttp2_option_set_max_continuations(option, 8);
    // Windows are given back as this connection decides (see the top).
    nghttp2_option_set_no_auto_window_update(option, 1);
    const int created = nghttp2_session_server_new2(&session_, callbacks, this, option);
    nghttp2_option_del(option);
    nghttp2_session_callbacks_del(callbacks);
    if (created != 0) return false;
    const nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, kMaxConcurrentStreams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<std::uint32_t>(kStreamWindow)},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, kMaxHeaderListBytes},
    };
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
    nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, kConnectionWindow);
    return true;
  }

  asio::awaitable<void> serve(std::string pending) {
    if (!receive(pending)) co_return;
    char chunk[16384];
    for (;;) {
      // Nothing more to read (nghttp2 said GOAWAY): what is queued is sent
      // below, then the connection ends.
      if (nghttp2_session_want_read(session_) == 0) break;
      connection_.set_idle(streams_.empty());
      if (connection_.stopping() && streams_.empty()) {
        nghttp2_session_terminate_session(session_, NGHTTP2_NO_ERROR);
        flush();
        break;
      }
      std::size_t n =
          co_await connection_.read_some(asio::buffer(chunk), Connection::Awaiting::next_request);
      connection_.set_idle(false);
      if (n == 0) break;
      heard_ = true;
      if (!receive(std::string_view(chunk, n))) break;
    }
    while (writing_) co_await changed();
  }

  // ---- keepalive ----

  // The keepalive timer fires after `after`: a PING goes out when nothing
  // arrived since it was set; a PING whose ACK has not come ends the
  // connection. Reads only raise a flag, so a busy connection costs no
  // timer system call per frame.
  void arm_keepalive(std::chrono::milliseconds after) {
    keepalive_.expires_after(after);
    keepalive_.async_wait([weak = weak_from_this()](boost::system::error_code error) {
      auto self = weak.lock();
      if (!self || error) return;
      self->on_keepalive();
    });
  }

  void on_keepalive() {
    const ServerOptions& options = connection_.options();
    if (closing_ || goodbye_) return;
    if (awaiting_ping_ack_) {
      // The client is gone without a word (or hung): the connection ends,
      // and its calls are cancelled.
      connection_.abort();
      connection_.close();
      return;
    }
    if (heard_) {
      heard_ = false;
      arm_keepalive(options.grpc.keepalive_time);
      return;
    }
    static constexpr std::uint8_t kOpaque[8] = {'k', 'e', 'e', 'p', 'a', 'l', 'v', 'e'};
    nghttp2_submit_ping(session_, NGHTTP2_FLAG_NONE, kOpaque);
    awaiting_ping_ack_ = true;
    flush();
    arm_keepalive(options.grpc.keepalive_timeout);
  }

  // A PING from the client: counted as a strike when it comes too soon
  // after the last with no response sent in between (gRPC's policy).
  void on_client_ping() {
    const auto now = std::chrono::steady_clock::now();
    if (pinged_before_ && !responded_since_ping_ &&
        now - last_client_ping_ < connection_.options().grpc.min_ping_interval) {
      if (++ping_strikes_ > kMaxPingStrikes) too_many_pings_ = true;
    }
    pinged_before_ = true;
    last_client_ping_ = now;
    responded_since_ping_ = false;
  }

  // GOAWAY (NO_ERROR, naming the last stream served), then the connection
  // closes once it is sent.
  void say_goodbye() {
    if (goodbye_) return;
    goodbye_ = true;
    nghttp2_session_terminate_session(session_, NGHTTP2_NO_ERROR);
    flush();
    if (!writing_) connection_.close();
  }

  // Hands bytes to nghttp2; false when the connection must end (a protocol
  // error: nghttp2 has queued a GOAWAY, which is sent first).
  // What the bytes called for (answers of calls run inline, SETTINGS and
  // PING acknowledgements, WINDOW_UPDATEs) goes out in one write at the end.
  bool receive(std::string_view bytes) {
    receiving_ = true;
    const ssize_t used = nghttp2_session_mem_recv(
        session_, reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
    receiving_ = false;
    if (used < 0) {
      nghttp2_session_terminate_session(session_, NGHTTP2_PROTOCOL_ERROR);
      flush(/*now=*/true);
      return false;
    }
    if (too_many_pings_) {
      // gRPC's answer to a client that pings too often; the connection
      // closes once the GOAWAY is sent.
      constexpr std::string_view kDebug = "too_many_pings";
      nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE,
                            nghttp2_session_get_last_proc_stream_id(session_),
                            NGHTTP2_ENHANCE_YOUR_CALM,
                            reinterpret_cast<const std::uint8_t*>(kDebug.data()), kDebug.size());
      flush(/*now=*/true);
      return false;
    }
    flush(/*now=*/true);
    return true;
  }

  // Sends what nghttp2 has queued, unless a send is already under way (it
  // takes what is queued by the time it finishes). The send is posted, not
  // begun here: calls that answer in the handlers queued meanwhile go out in
  // the same write (co_spawn alone would begin it at once, a system call for
  // every answer).
  // `now`: the write begins here (co_spawn dispatches), for what a
  // receive() called for. While bytes are being received, nothing is
  // written: receive() writes once at its end.
  void flush(bool now = false) {
    if (writing_ || broken_ || receiving_) return;
    writing_ = true;
    if (now) {
      asio::co_spawn(connection_.executor(), write_all(shared_from_this()), asio::detached);
      return;
    }
    asio::post(connection_.executor(), [self = shared_from_this()] {
      asio::co_spawn(self->connection_.executor(), write_all(self), asio::detached);
    });
  }

  static asio::awaitable<void> write_all(std::shared_ptr<GrpcConnection> self) {
    std::string batch;
    for (;;) {
      batch.clear();
      // Frames gathered into one write.
      while (batch.size() < 64 * 1024) {
        const std::uint8_t* data = nullptr;
        const ssize_t n = nghttp2_session_mem_send(self->session_, &data);
        if (n <= 0) break;
        batch.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
      }
      if (batch.empty()) break;
      try {
        co_await self->connection_.write(batch);
      } catch (const std::exception&) {
        self->broken_ = true;
        break;
      }
    }
    self->writing_ = false;
    self->wake_.cancel();
    // The last call of a stopping server's connection has answered.
    if (self->connection_.stopping() && self->streams_.empty() && !self->closing_)
      self->say_goodbye();
    // After a GOAWAY has gone (a goodbye, or a protocol error nghttp2 found)
    // nothing more is read: a read still waiting ends here.
    if ((self->goodbye_ || nghttp2_session_want_read(self->session_) == 0) && !self->writing_ &&
        !self->closing_)
      self->connection_.close();
  }

  asio::awaitable<void> changed() {
    wake_.expires_at(asio::steady_timer::time_point::max());
    co_await wake_.async_wait(asio::as_tuple(asio::use_awaitable));  // woken by cancel()
  }

  // ---- nghttp2 callbacks ----

  static GrpcConnection& self(void* user_data) { return *static_cast<GrpcConnection*>(user_data); }

  Stream* find(std::int32_t id) {
    auto found = streams_.find(id);
    return found == streams_.end() ? nullptr : found->second.get();
  }

  static int on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    auto stream = std::make_unique<Stream>();
    stream->id = frame->hd.stream_id;
    self(user_data).streams_[stream->id] = std::move(stream);
    return 0;
  }

  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const std::uint8_t* name,
                       std::size_t name_length, const std::uint8_t* value, std::size_t value_length,
                       std::uint8_t, void* user_data) {
    Stream* stream = self(user_data).find(frame->hd.stream_id);
    if (stream == nullptr || stream->started) return 0;  // trailers of a request: ignored
    // Decoded headers can be far larger than the block that carried them
    // (an HPACK bomb repeats one big table entry): past the limit the stream
    // is reset.
    stream->header_bytes += name_length + value_length + 32;
    if (stream->header_bytes > kMaxHeaderListBytes) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    const std::string_view key(reinterpret_cast<const char*>(name), name_length);
    const std::string_view text(reinterpret_cast<const char*>(value), value_length);
    if (key == ":method") {
      stream->method = text;
    } else if (key == ":path") {
      stream->path = text;
    } else if (key == "content-type") {
      stream->content_type = text;
    } else if (key == "grpc-encoding") {
      stream->encoding = text;
    } else if (key == "grpc-accept-encoding") {
      stream->accept_encoding = text;
    } else if (key == "grpc-timeout") {
      stream->timeout = parse_timeout(text);
      stream->bad_timeout = !stream->timeout;
    }
    if (is_reserved_header(key)) return 0;
    if (is_binary_header(key)) {
      // Handlers see the bytes; a value that is not base64 fails the call.
      std::optional<std::string> bytes = base64_decode(text);
      if (!bytes) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
      stream->metadata.emplace(key, std::move(*bytes));
    } else {
      stream->metadata.emplace(key, text);
    }
    return 0;
  }

  static int on_data_chunk(nghttp2_session* session, std::uint8_t, std::int32_t stream_id,
                           const std::uint8_t* data, std::size_t length, void* user_data) {
    GrpcConnection& connection = self(user_data);
    // The connection's window goes back at once: each call's own window and
    // the connection's budget bound what is held.
    nghttp2_session_consume_connection(session, length);
    Stream* stream = connection.find(stream_id);
    if (stream != nullptr && stream->call && !stream->dropping) {
      connection.feed(*stream, std::string_view(reinterpret_cast<const char*>(data), length));
      return 0;
    }
    nghttp2_session_consume_stream(session, stream_id, length);  // a unary request's, or dropped
    if (stream == nullptr || stream->started) return 0;
    // Framing overhead aside, a unary request holds one message.
    if (stream->body.size() + length >
        connection.connection_.options().grpc.max_message_bytes + 5) {
      stream->body_too_large = true;
      connection.release(*stream);
      return 0;
    }
    if (stream->body_too_large) return 0;
    if (!connection.within_budget(*stream, length)) {
      stream->started = true;
      stream->reset_after_answer = true;  // once the status is out (on_frame_sent)
      connection.answer_status(*stream, connection.over_budget(length));
      connection.release(*stream);
      return 0;
    }
    stream->body.append(reinterpret_cast<const char*>(data), length);
    // A message announced larger than the limit is refused at once, before
    // its bytes arrive: the status, then RST_STREAM so the client stops
    // sending (RFC 9113, 8.1).
    if (const std::uint64_t announced = announced_length(stream->body);
        announced > connection.connection_.options().grpc.max_message_bytes &&
        is_grpc_request(*stream)) {
      stream->started = true;
      stream->reset_after_answer = true;  // once the status is out (on_frame_sent)
      connection.answer_status(*stream, too_large(announced, connection.connection_.options()));
      connection.release(*stream);
    }
    return 0;
  }

  // ---- what the connection holds ----

  // Whether `length` more request bytes on `stream` keep the connection
  // within its budget; if so they are counted. What handlers have read
  // since last looked is counted off first.
  bool within_budget(Stream& stream, std::size_t length) {
    settle_taken(stream);
    if (held_ + length > budget())
      for (auto& [id, other] : streams_) settle_taken(*other);
    if (held_ + length > budget()) return false;
    stream.held += length;
    held_ += length;
    return true;
  }

  // GrpcServerOptions::connection_buffer_bytes, and never less than one
  // largest message with its prefix.
  std::size_t budget() const {
    const GrpcServerOptions& options = connection_.options().grpc;
    return std::max(options.connection_buffer_bytes, options.max_message_bytes + 5);
  }

  Status over_budget(std::size_t length) const {
    return {StatusCode::resource_exhausted,
            "this connection's calls hold " + std::to_string(held_) +
                " request bytes their handlers have not read, and " + std::to_string(length) +
                " more would go beyond the server's limit of " + std::to_string(budget()) +
                " (conduit serve --grpc-connection-buffer); send fewer requests at once on "
                "one connection"};
  }

  // Counts off what a streaming call's handler has read since last looked.
  void settle_taken(Stream& stream) {
    if (!stream.call) return;
    const std::uint64_t taken = stream.call->taken();
    release(stream, static_cast<std::size_t>(taken - stream.taken_seen));
    stream.taken_seen = taken;
  }

  // Lets go of `bytes` of what `stream` holds (all of it by default); a
  // unary request's body is freed with it.
  void release(Stream& stream, std::size_t bytes = SIZE_MAX) {
    bytes = std::min(bytes, stream.held);
    stream.held -= bytes;
    held_ -= bytes;
    if (stream.held == 0 && !stream.call) std::string().swap(stream.body);
  }

  // Gives the client back the window of what a streaming call's handler has
  // read, as far as StreamCall::grantable allows.
  void replenish(Stream& stream) {
    const std::uint64_t owed = stream.received - stream.granted;
    if (owed == 0 || stream.dropping) return;
    const std::uint64_t now = stream.call->grantable(
        stream.granted, owed, connection_.options().grpc.stream_buffer_bytes);
    if (now == 0) return;
    nghttp2_session_consume_stream(session_, stream.id, static_cast<std::size_t>(now));
    stream.granted += now;
  }

  // A streaming call fails while its requests come (`status` the reason):
  // what it holds goes, and so does whatever more comes, its window given
  // back at once.
  void drop(Stream& stream, Status status) {
    stream.call->fail(std::move(status));
    stream.dropping = true;
    stream.deframer.reset();
    release(stream);
    if (stream.received > stream.granted) {
      nghttp2_session_consume_stream(session_, stream.id,
                                     static_cast<std::size_t>(stream.received - stream.granted));
      stream.granted = stream.received;
    }
  }

  // Whether a grpc-accept-encoding list names `encoding`.
  static bool accepts(std::string_view list, std::string_view encoding) {
    while (!list.empty()) {
      const std::size_t comma = list.find(',');
      std::string_view item = list.substr(0, comma);
      while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
      while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
      if (item == encoding) return true;
      if (comma == std::string_view::npos) break;
      list.remove_prefix(comma + 1);
    }
    return false;
  }

  static Status unaccepted(const std::string& encoding) {
    return {StatusCode::unimplemented, "grpc-encoding " + encoding +
                                           " is not accepted; this server accepts " +
                                           std::string(kAcceptedEncodings)};
  }

  // A message whose compressed flag is set, expanded in place.
  Status decompress(const std::string& encoding, std::string& message) const {
    if (encoding.empty() || encoding == "identity")
      return {StatusCode::internal, "a message is flagged compressed, but grpc-encoding is " +
                                        (encoding.empty() ? std::string("absent") : encoding)};
    if (encoding != "gzip") return unaccepted(encoding);
    bool too_large = false;
    std::optional<std::string> plain =
        gzip_decompress(message, connection_.options().grpc.max_message_bytes, too_large);
    if (too_large) {
      return {StatusCode::resource_exhausted,
              "the request message expands beyond the server's limit of " +
                  std::to_string(connection_.options().grpc.max_message_bytes) + " bytes"};
    }
    if (!plain) return {StatusCode::internal, "a message's gzip data is malformed"};
    message = std::move(*plain);
    return {};
  }

  static bool is_grpc_request(const Stream& stream) {
    return stream.method == "POST" && stream.content_type.rfind("application/grpc", 0) == 0;
  }

  // The length the first message of `body` announces; 0 before it is known.
  static std::uint64_t announced_length(std::string_view body) {
    if (body.size() < 5) return 0;
    const auto byte = [&](std::size_t i) {
      return std::uint64_t{static_cast<std::uint8_t>(body[i])};
    };
    return (byte(1) << 24) | (byte(2) << 16) | (byte(3) << 8) | byte(4);
  }

  static Status too_large(std::uint64_t length, const ServerOptions& options) {
    return {StatusCode::resource_exhausted, "the request message (" + std::to_string(length) +
                                                " bytes) is larger than the server's limit of " +
                                                std::to_string(options.grpc.max_message_bytes) +
                                                " bytes"};
  }

  static int on_frame_sent(nghttp2_session* session, const nghttp2_frame* frame, void* user_data) {
    if (frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) {
      GrpcConnection& connection = self(user_data);
      connection.responded_since_ping_ = true;
      connection.ping_strikes_ = 0;
      // A refusal sent before the request was whole: RST_STREAM follows, so
      // the client stops sending (RFC 9113, 8.1).
      if (frame->hd.type == NGHTTP2_HEADERS && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0)
        if (Stream* stream = connection.find(frame->hd.stream_id);
            stream != nullptr && stream->reset_after_answer)
          nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                    NGHTTP2_NO_ERROR);
    }
    return 0;
  }

  static int on_frame(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
    if (frame->hd.type == NGHTTP2_PING) {
      GrpcConnection& connection = self(user_data);
      if ((frame->hd.flags & NGHTTP2_FLAG_ACK) == 0) {
        connection.on_client_ping();
      } else if (connection.awaiting_ping_ack_) {
        connection.awaiting_ping_ack_ = false;
        connection.heard_ = false;
        connection.arm_keepalive(connection.connection_.options().grpc.keepalive_time);
      }
      return 0;
    }
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
    GrpcConnection& connection = self(user_data);
    Stream* stream = connection.find(frame->hd.stream_id);
    if (stream == nullptr) return 0;
    // A streaming method starts with its headers; a unary one once its
    // request is whole.
    if (frame->hd.type == NGHTTP2_HEADERS && !stream->started && is_grpc_request(*stream))
      if (const Method* method = connection.connection_.services().find(stream->path);
          method != nullptr && method->streams())
        connection.start_stream_call(*stream, *method);
    if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
      if (stream->call) {
        if (stream->deframer && stream->deframer->partial())
          stream->call->fail({StatusCode::internal, "the last request message is cut short"});
        stream->call->close_inbound();
      } else if (!stream->started) {
        connection.start_call(*stream);
      }
    }
    return 0;
  }

  static int on_stream_close(nghttp2_session*, std::int32_t stream_id, std::uint32_t,
                             void* user_data) {
    GrpcConnection& connection = self(user_data);
    auto found = connection.streams_.find(stream_id);
    if (found == connection.streams_.end()) return 0;
    // A stream reset by the client cancels its call.
    found->second->cancelled->store(true);
    if (found->second->call) found->second->call->cancel();
    connection.release(*found->second);
    connection.streams_.erase(found);
    return 0;
  }

  // ---- calls ----

  void start_call(Stream& stream) {
    stream.started = true;
    if (!is_grpc_request(stream)) {
      answer_http(stream, stream.method != "POST" ? "405" : "415");
      return;
    }
    if (stream.bad_timeout) {
      answer_status(stream, {StatusCode::internal, "malformed grpc-timeout"});
      return;
    }
    const Method* method = connection_.services().find(stream.path);
    if (method == nullptr || stream.path.empty() || stream.path[0] != '/') {
      answer_status(stream,
                    {StatusCode::unimplemented,
                     "Method not found: " + (stream.path.empty() ? "" : stream.path.substr(1))});
      return;
    }
    if (stream.body_too_large) {
      answer_status(stream,
                    {StatusCode::resource_exhausted,
                     "the request message is larger than the server's limit of " +
                         std::to_string(connection_.options().grpc.max_message_bytes) + " bytes"});
      return;
    }
    MessageDeframer deframer(connection_.options().grpc.max_message_bytes);
    deframer.append(stream.body);
    release(stream);  // the request is the handler's now
    bool compressed = false;
    std::string request;
    switch (deframer.next(compressed, request)) {
      case MessageDeframer::Result::message:
        break;
      case MessageDeframer::Result::too_large:
        answer_status(stream, too_large(deframer.announced(), connection_.options()));
        return;
      case MessageDeframer::Result::need_more:
        answer_status(stream, {StatusCode::internal, "the request holds no whole message"});
        return;
    }
    std::string extra;
    bool extra_compressed = false;
    if (deframer.next(extra_compressed, extra) != MessageDeframer::Result::need_more ||
        deframer.partial()) {
      answer_status(stream, {StatusCode::internal, "a unary request holds more than one message"});
      return;
    }
    if (compressed) {
      if (Status expanded = decompress(stream.encoding, request); !expanded.ok()) {
        answer_status(stream, expanded);
        return;
      }
    }

    CallContext context = make_call_context(connection_, kName, stream.timeout);
    context.metadata = std::move(stream.metadata);
    context.request_compressed = compressed;
    context.share_cancellation(stream.cancelled);

    ++running_;
    const bool accepts_gzip = accepts(stream.accept_encoding, "gzip");
    struct Answer {
      Status status;
      std::string bytes;
      bool compress = false;
      std::multimap<std::string, std::string> headers, trailers;
    };
    dispatch(
        connection_,
        [method, request = std::move(request), accepts_gzip,
         context = std::move(context)]() mutable {
          Answer answer;
          std::unique_ptr<google::protobuf::Message> in(method->request_prototype().New());
          if (!in->ParseFromString(request)) {
            answer.status = {StatusCode::internal, "the request is not a valid " +
                                                       method->request_prototype().GetTypeName()};
          } else {
            std::unique_ptr<google::protobuf::Message> out(method->response_prototype().New());
            answer.status = run_unary(*method, context, *in, *out);
            if (answer.status.ok()) out->SerializeToString(&answer.bytes);
          }
          answer.compress = context.compress_response && accepts_gzip;
          answer.headers = std::move(context.response_metadata);
          answer.trailers = std::move(context.response_trailers);
          return answer;
        },
        [self = shared_from_this(), id = stream.id](Answer answer) {
          self->finish_call(id, std::move(answer.status), std::move(answer.bytes), answer.compress,
                            answer.headers, answer.trailers);
        });
  }

  // ---- streaming calls ----

  void start_stream_call(Stream& stream, const Method& method) {
    stream.started = true;
    if (stream.bad_timeout) {
      answer_status(stream, {StatusCode::internal, "malformed grpc-timeout"});
      return;
    }
    if (!stream.encoding.empty() && stream.encoding != "identity" && stream.encoding != "gzip") {
      answer_status(stream, unaccepted(stream.encoding));
      return;
    }
    stream.deframer =
        std::make_unique<MessageDeframer>(connection_.options().grpc.max_message_bytes);
    CallContext context = make_call_context(connection_, kName, stream.timeout);
    context.metadata = std::move(stream.metadata);
    context.share_cancellation(stream.cancelled);
    const std::int32_t id = stream.id;
    std::weak_ptr<GrpcConnection> weak = weak_from_this();
    auto call = std::make_shared<StreamCall>(
        std::move(context), accepts(stream.accept_encoding, "gzip"), [weak, id] {
          if (auto self = weak.lock()) self->connection_.post([self, id] { self->pump(id); });
        });
    // The handler blocks on reads, and must not hold one of the threads
    // that deliver its requests: the call runner gives it a thread.
    const Status started = start_on_own_thread(
        connection_,
        [&method, call] { call->finish(run_stream(method, call->context(), *call, *call)); },
        [self = shared_from_this(), id] {
          --self->running_;
          self->wake_.cancel();
          self->pump(id);
        });
    if (!started.ok()) {
      // Refused before anything ran: what more comes of the call is let go.
      stream.deframer.reset();
      stream.reset_after_answer = true;
      answer_status(stream, started);
      return;
    }
    stream.call = std::move(call);
    ++running_;
  }

  // Request bytes of a streaming call: whole messages go to the handler.
  void feed(Stream& stream, std::string_view bytes) {
    if (!within_budget(stream, bytes.size())) {
      nghttp2_session_consume_stream(session_, stream.id, bytes.size());
      drop(stream, over_budget(bytes.size()));
      return;
    }
    stream.received += bytes.size();
    stream.deframer->append(bytes);
    bool compressed = false;
    std::string message;
    for (;;) {
      switch (stream.deframer->next(compressed, message)) {
        case MessageDeframer::Result::need_more:
          replenish(stream);
          return;
        case MessageDeframer::Result::too_large:
          drop(stream, too_large(stream.deframer->announced(), connection_.options()));
          return;
        case MessageDeframer::Result::message: {
          const std::size_t wire_bytes = 5 + message.size();
          if (compressed) {
            if (Status expanded = decompress(stream.encoding, message); !expanded.ok()) {
              drop(stream, expanded);
              return;
            }
          }
          stream.call->push(std::move(message), compressed, wire_bytes);
          break;
        }
      }
    }
  }

  // Sends what a streaming call has ready: the response headers with its
  // first message (or the status alone, when it ends without one), then the
  // messages as they come, then the trailers.
  void pump(std::int32_t id) {
    if (closing_) return;
    Stream* stream = find(id);
    if (stream == nullptr || !stream->call) return;
    // The handler may have read what the client's window was held back for.
    settle_taken(*stream);
    const std::uint64_t granted = stream->granted;
    replenish(*stream);
    if (stream->granted != granted) flush();
    if (stream->response_started) {
      nghttp2_session_resume_data(session_, id);
      flush();
      return;
    }
    StreamCall::Snapshot now = stream->call->snapshot();
    if (!now.has_data && !now.finished) return;
    stream->response_started = true;
    if (now.finished && !now.wrote) {
      answer_status(*stream, now.status, now.headers, now.trailers);
      return;
    }
    std::vector<nghttp2_nv> headers = {header(":status", "200"),
                                       header("content-type", "application/grpc"),
                                       header("grpc-accept-encoding", kAcceptedEncodings)};
    if (stream->call->compresses()) headers.push_back(header("grpc-encoding", "gzip"));
    const auto encoded = wire_metadata(now.headers);
    for (const auto& [key, value] : encoded) headers.push_back(header(key, value));
    nghttp2_data_provider body{};
    body.source.ptr = stream;
    body.read_callback = &read_stream_body;
    nghttp2_submit_response(session_, id, headers.data(), headers.size(), &body);
    flush();
  }

  static ssize_t read_stream_body(nghttp2_session* session, std::int32_t id, std::uint8_t* buffer,
                                  std::size_t length, std::uint32_t* flags,
                                  nghttp2_data_source* source, void*) {
    Stream& stream = *static_cast<Stream*>(source->ptr);
    bool done = false;
    const std::size_t n = stream.call->take(buffer, length, done);
    if (!done) return n > 0 ? static_cast<ssize_t>(n) : ssize_t{NGHTTP2_ERR_DEFERRED};
    *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
    StreamCall::Snapshot end = stream.call->snapshot();
    stream.trailers = status_trailers(end.status, end.trailers);
    std::vector<nghttp2_nv> trailers;
    for (const auto& [key, value] : stream.trailers) trailers.push_back(header(key, value));
    nghttp2_submit_trailer(session, id, trailers.data(), trailers.size());
    return static_cast<ssize_t>(n);
  }

  void finish_call(std::int32_t id, Status status, std::string response, bool compress,
                   const std::multimap<std::string, std::string>& reply_metadata,
                   const std::multimap<std::string, std::string>& reply_trailers) {
    --running_;
    wake_.cancel();
    if (closing_) return;
    Stream* stream = find(id);
    if (stream == nullptr) return;  // reset by the client meanwhile
    if (!status.ok()) {
      answer_status(*stream, status, reply_metadata, reply_trailers);
    } else {
      stream->out =
          compress ? frame_message(gzip_compress(response), true) : frame_message(response);
      stream->status = status;
      stream->handler_trailers = reply_trailers;
      std::vector<nghttp2_nv> headers = {header(":status", "200"),
                                         header("content-type", "application/grpc"),
                                         header("grpc-accept-encoding", kAcceptedEncodings)};
      if (compress) headers.push_back(header("grpc-encoding", "gzip"));
      const auto encoded = wire_metadata(reply_metadata);
      for (const auto& [key, value] : encoded) headers.push_back(header(key, value));
      nghttp2_data_provider body{};
      body.source.ptr = stream;
      body.read_callback = &read_body;
      nghttp2_submit_response(session_, id, headers.data(), headers.size(), &body);
    }
    flush();
  }

  // The response message, then the trailers.
  static ssize_t read_body(nghttp2_session* session, std::int32_t, std::uint8_t* buffer,
                           std::size_t length, std::uint32_t* flags, nghttp2_data_source* source,
                           void*) {
    Stream& stream = *static_cast<Stream*>(source->ptr);
    const std::size_t n = std::min(length, stream.out.size() - stream.sent);
    std::memcpy(buffer, stream.out.data() + stream.sent, n);
    stream.sent += n;
    if (stream.sent == stream.out.size()) {
      *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
      stream.trailers = status_trailers(stream.status, stream.handler_trailers);
      std::vector<nghttp2_nv> trailers;
      for (const auto& [key, value] : stream.trailers) trailers.push_back(header(key, value));
      nghttp2_submit_trailer(session, stream.id, trailers.data(), trailers.size());
    }
    return static_cast<ssize_t>(n);
  }

  // A call that failed before it had an answer: the status alone, in the
  // response headers (gRPC's trailers-only response).
  void answer_status(Stream& stream, const Status& status,
                     const std::multimap<std::string, std::string>& reply_metadata = {},
                     const std::multimap<std::string, std::string>& reply_trailers = {}) {
    stream.trailers = status_trailers(status, reply_trailers);
    std::vector<nghttp2_nv> headers = {header(":status", "200"),
                                       header("content-type", "application/grpc")};
    const auto encoded = wire_metadata(reply_metadata);
    for (const auto& [key, value] : encoded) headers.push_back(header(key, value));
    for (const auto& [key, value] : stream.trailers) headers.push_back(header(key, value));
    nghttp2_submit_response(session_, stream.id, headers.data(), headers.size(), nullptr);
    flush();
  }

  // A request that is not gRPC at all: an HTTP status, as the protocol asks.
  void answer_http(Stream& stream, std::string_view status) {
    nghttp2_nv headers[] = {header(":status", status)};
    nghttp2_submit_response(session_, stream.id, headers, std::size(headers), nullptr);
    flush();
  }

  Connection& connection_;
  nghttp2_session* session_ = nullptr;
  std::map<std::int32_t, std::unique_ptr<Stream>> streams_;
  asio::steady_timer wake_;
  // Keepalive (ServerOptions::grpc.keepalive_*) and the client's PING policy.
  static constexpr int kMaxPingStrikes = 2;
  asio::steady_timer keepalive_;
  bool heard_ = false;  // bytes arrived since the keepalive timer was set
  bool awaiting_ping_ack_ = false;
  bool pinged_before_ = false;
  bool responded_since_ping_ = false;
  bool too_many_pings_ = false;
  int ping_strikes_ = 0;
  std::chrono::steady_clock::time_point last_client_ping_;
  std::size_t running_ = 0;
  std::size_t held_ = 0;  // request bytes no handler has taken, across streams
  bool writing_ = false;
  bool receiving_ = false;  // inside nghttp2_session_mem_recv
  bool broken_ = false;
  bool closing_ = false;
  bool goodbye_ = false;
};

class Http2Protocol : public StreamProtocol {
 public:
  std::string_view name() const override { return "grpc"; }

  Match match(std::string_view first) const override {
    const std::size_t n = std::min(first.size(), kPreface.size());
    if (first.substr(0, n) != kPreface.substr(0, n)) return Match::no;
    return first.size() >= kPreface.size() ? Match::yes : Match::need_more;
  }

  asio::awaitable<void> serve(Connection& connection, std::string pending) const override {
    auto session = std::make_shared<GrpcConnection>(connection);
    co_await session->run(std::move(pending));
  }
};

}  // namespace

std::unique_ptr<StreamProtocol> make_stream_protocol() {
  return std::make_unique<Http2Protocol>();
}

}  // namespace conduit::rpc::grpc
