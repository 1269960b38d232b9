// JSON-RPC 2.0 as a server speaks it: over HTTP/1.1 (POST /jsonrpc), as one
// JSON text per line on a raw stream, and with Content-Length headers (the
// LSP convention, for stdio and pipes).
#include "rpc/protocols/jsonrpc/server_protocols.hpp"

#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <cctype>
#include <deque>
#include <exception>
#include <memory>

#include "rpc/protocols/jsonrpc/engine.hpp"

namespace conduit::rpc::jsonrpc {

namespace {

namespace http = boost::beast::http;

Limits limits_of(const ServerOptions& options) {
  Limits limits;
  limits.max_body_bytes = options.max_message_bytes;
  limits.max_depth = options.max_json_depth;
  limits.max_batch = options.max_batch;
  return limits;
}

CallContext context_for(const Connection& connection) {
  CallContext context;
  context.protocol = "jsonrpc";
  context.peer = connection.peer();
  context.share_cancellation(connection.cancellation());
  return context;
}

bool starts_with_ignoring_case(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(text[i])) != prefix[i]) return false;
  return true;
}

// Whether `text` is `word` or could still become it.
ServerProtocol::Match match_prefix(std::string_view text, std::string_view word,
                                   bool ignore_case = false) {
  std::size_t n = std::min(text.size(), word.size());
  std::string_view head = text.substr(0, n);
  bool same = ignore_case ? starts_with_ignoring_case(head, word.substr(0, n))
                          : head == word.substr(0, n);
  if (!same) return ServerProtocol::Match::no;
  return text.size() >= word.size() ? ServerProtocol::Match::yes
                                    : ServerProtocol::Match::need_more;
}

std::string error_text(int code, std::string_view message) {
  return "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":" + std::to_string(code) + ",\"message\":\"" +
         std::string(message) + "\"},\"id\":null}";
}

// ---- HTTP/1.1 ------------------------------------------------------------------

std::string http_response(unsigned status, std::string_view reason, std::string_view body,
                          bool keep_alive, std::string_view extra_headers = {}) {
  std::string text;
  text.reserve(128 + extra_headers.size() + body.size());
  text += "HTTP/1.1 ";
  text += std::to_string(status);
  text += ' ';
  text += reason;
  text += "\r\n";
  if (!body.empty()) text += "Content-Type: application/json\r\n";
  text += "Content-Length: ";
  text += std::to_string(body.size());
  text += "\r\n";
  text += extra_headers;
  text += keep_alive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
  text += body;
  return text;
}

bool is_json_content_type(std::string_view value) {
  std::string_view type = value.substr(0, value.find(';'));
  while (!type.empty() && type.back() == ' ') type.remove_suffix(1);
  for (std::string_view accepted : {"application/json", "application/json-rpc", "application/jsonrequest"})
    if (type.size() == accepted.size() && starts_with_ignoring_case(type, accepted)) return true;
  return false;
}

class HttpProtocol : public ServerProtocol {
 public:
  std::string_view name() const override { return "jsonrpc-http"; }

  Match match(std::string_view first) const override {
    bool undecided = false;
    for (std::string_view method : {"POST ", "GET ", "HEAD ", "PUT ", "DELETE ", "OPTIONS ", "PATCH "}) {
      Match m = match_prefix(first, method);
      if (m == Match::yes) return Match::yes;
      if (m == Match::need_more) undecided = true;
    }
    return undecided ? Match::need_more : Match::no;
  }

  asio::awaitable<void> serve(Connection& connection, std::string pending) const override {
    Engine engine(connection.services(), limits_of(connection.options()));
    char chunk[16384];
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(connection.options().max_message_bytes);
      parser.header_limit(16 * 1024);
      boost::beast::error_code error;
      bool first_read = true;
      while (!parser.is_done()) {
        if (!pending.empty()) {
          // The parser takes what it can; what it leaves must be offered
          // again with more bytes after it.
          std::size_t used = parser.put(asio::buffer(pending), error);
          pending.erase(0, used);
          if (error == http::error::need_more) {
            error = {};
          } else if (error || parser.is_done()) {
            break;
          } else if (used > 0) {
            continue;
          }
        }
        bool between = first_read && pending.empty() && !parser.got_some();
        connection.set_idle(between);
        std::size_t n = co_await connection.read_some(
            asio::buffer(chunk), between ? Connection::Awaiting::next_request : Connection::Awaiting::rest_of_request);
        connection.set_idle(false);
        if (n == 0) co_return;  // closed between (or inside) requests
        pending.append(chunk, n);
        first_read = false;
      }
      if (error == http::error::body_limit) {
        co_await connection.write(http_response(
            413, "Payload Too Large",
            error_text(-32600, "Invalid Request: the body exceeds the server's limit of " +
                                   std::to_string(connection.options().max_message_bytes) + " bytes"),
            false));
        co_return;
      }
      if (error) {
        co_await connection.write(http_response(400, "Bad Request",
                                                error_text(-32700, "Parse error: malformed HTTP request"),
                                                false));
        co_return;
      }
      auto& request = parser.get();
      bool keep_alive = request.keep_alive() && !connection.stopping();
      std::string target(request.target());
      if (target != "/jsonrpc" && target != "/") {
        co_await connection.write(http_response(
            404, "Not Found", error_text(-32601, "Not found: JSON-RPC is served at /jsonrpc"),
            keep_alive));
      } else if (request.method() != http::verb::post) {
        co_await connection.write(http_response(
            405, "Method Not Allowed", error_text(-32600, "Invalid Request: use POST"), keep_alive,
            "Allow: POST\r\n"));
      } else if (!is_json_content_type(request[http::field::content_type])) {
        co_await connection.write(http_response(
            415, "Unsupported Media Type",
            error_text(-32600, "Invalid Request: Content-Type must be application/json"),
            keep_alive));
      } else {
        CallContext context = context_for(connection);
        for (const auto& field : request) {
          std::string key(field.name_string());
          std::transform(key.begin(), key.end(), key.begin(),
                         [](unsigned char c) { return std::tolower(c); });
          context.metadata.emplace(std::move(key), std::string(field.value()));
        }
        std::optional<std::string> reply = engine.handle(request.body(), context);
        if (reply)
          co_await connection.write(http_response(200, "OK", *reply, keep_alive));
        else
          co_await connection.write(http_response(204, "No Content", "", keep_alive));
      }
      if (!keep_alive) co_return;
    }
  }
};

// ---- calls side by side --------------------------------------------------------

// The calls of one connection whose framing lets replies come back in any
// order (JSON-RPC matches them to calls by id): each runs on the server's
// threads as soon as it is read, at most max_calls_per_connection at a time,
// and its reply is written as soon as it is ready, one reply after another.
// Everything here but the calls themselves runs on the connection's
// executor.
class ConcurrentCalls {
 public:
  // `frame` wraps a reply for the wire (a newline, a Content-Length header).
  ConcurrentCalls(Connection& connection, std::shared_ptr<const Engine> engine,
                  std::string (*frame)(std::string_view reply))
      : state_(std::make_shared<State>(connection, std::move(engine), frame)) {}

  // Starts the call `request` once fewer than the limit are running.
  asio::awaitable<void> start(std::string request) {
    while (state_->running >= state_->connection.options().max_calls_per_connection)
      co_await state_->changed();
    ++state_->running;
    asio::post(state_->connection.call_executor(),
               [state = state_, request = std::move(request)]() mutable {
                 CallContext context = context_for(state->connection);
                 std::optional<std::string> reply = state->engine->handle(request, context);
                 asio::post(state->connection.executor(),
                            [state, reply = std::move(reply)]() mutable {
                              state->finished(std::move(reply));
                            });
               });
  }

  // Between requests with nothing running or waiting to be written.
  bool quiet() const { return state_->running == 0 && !state_->writing; }

  // Waits until every call started has answered and its reply is written.
  asio::awaitable<void> finish() {
    while (!quiet()) co_await state_->changed();
  }

 private:
  struct State : std::enable_shared_from_this<State> {
    State(Connection& connection, std::shared_ptr<const Engine> engine,
          std::string (*frame)(std::string_view))
        : connection(connection),
          engine(std::move(engine)),
          frame(frame),
          wake(connection.executor(), asio::steady_timer::time_point::max()) {}

    // Resumes when a call finished or a write ended.
    asio::awaitable<void> changed() {
      wake.expires_at(asio::steady_timer::time_point::max());
      co_await wake.async_wait(asio::as_tuple(asio::use_awaitable));  // woken by cancel()
    }

    void finished(std::optional<std::string> reply) {
      --running;
      if (reply && !broken) {
        outbox.push_back(frame(*reply));
        if (!writing) {
          writing = true;
          asio::co_spawn(connection.executor(), write_all(shared_from_this()), asio::detached);
        }
      }
      wake.cancel();
      settle();
    }

    // Marks the connection idle when it waits for a request with nothing in
    // flight; when the server is stopping, such a connection is done.
    void settle() {
      const bool idle = running == 0 && !writing && waiting_for_request;
      connection.set_idle(idle);
      if (idle && connection.stopping()) connection.close();
    }

    static asio::awaitable<void> write_all(std::shared_ptr<State> state) {
      while (!state->outbox.empty()) {
        std::string bytes = std::move(state->outbox.front());
        state->outbox.pop_front();
        try {
          co_await state->connection.write(bytes);
        } catch (const std::exception&) {
          // The peer is gone: what is left has no one to read it, and the
          // reading side sees the end of the connection.
          state->broken = true;
          state->outbox.clear();
        }
      }
      state->writing = false;
      state->wake.cancel();
      state->settle();
    }

    Connection& connection;  // outlives the calls: serve() returns after finish()
    std::shared_ptr<const Engine> engine;
    std::string (*frame)(std::string_view);
    asio::steady_timer wake;
    std::size_t running = 0;
    bool writing = false;
    bool broken = false;
    bool waiting_for_request = false;
    std::deque<std::string> outbox;
  };

 public:
  // Whether the connection now waits for the next request (with nothing in
  // flight, that makes it idle: shutdown may close it at once).
  void set_waiting_for_request(bool waiting) {
    state_->waiting_for_request = waiting;
    state_->connection.set_idle(waiting && quiet());
  }

 private:
  std::shared_ptr<State> state_;
};

// Serves a connection whose requests `read_calls` reads and starts as
// calls side by side, each reply framed by `frame`. When reading ends (the
// peer's end of file, an error, shutdown), the calls already read still
// answer; then the connection ends.
asio::awaitable<void> serve_concurrently(
    Connection& connection, std::string pending,
    asio::awaitable<void> (*read_calls)(Connection&, std::string, ConcurrentCalls&),
    std::string (*frame)(std::string_view reply)) {
  ConcurrentCalls calls(
      connection,
      std::make_shared<const Engine>(connection.services(), limits_of(connection.options())),
      frame);
  std::exception_ptr failure;
  try {
    co_await read_calls(connection, std::move(pending), calls);
  } catch (...) {
    failure = std::current_exception();
  }
  calls.set_waiting_for_request(false);
  co_await calls.finish();
  if (failure) std::rethrow_exception(failure);
}

// ---- one JSON text per line ------------------------------------------------------

class LineProtocol : public ServerProtocol {
 public:
  std::string_view name() const override { return "jsonrpc-lines"; }

  Match match(std::string_view first) const override {
    auto start = first.find_first_not_of(" \t\r\n");
    if (start == std::string_view::npos) return Match::need_more;
    return first[start] == '{' || first[start] == '[' ? Match::yes : Match::no;
  }

  asio::awaitable<void> serve(Connection& connection, std::string pending) const override {
    co_await serve_concurrently(connection, std::move(pending), &read_calls,
                                [](std::string_view reply) { return std::string(reply) + "\n"; });
  }

 private:
  static asio::awaitable<void> read_calls(Connection& connection, std::string pending,
                                          ConcurrentCalls& calls) {
    const std::size_t limit = connection.options().max_message_bytes;
    char chunk[16384];
    std::size_t scanned = 0;
    for (;;) {
      std::size_t end = pending.find('\n', scanned);
      if (end == std::string::npos) {
        if (pending.size() > limit) {
          co_await calls.finish();
          co_await connection.write(
              error_text(-32600, "Invalid Request: a line exceeds the server's limit of " +
                                     std::to_string(limit) + " bytes") +
              "\n");
          co_return;
        }
        scanned = pending.size();
        bool between = pending.find_first_not_of(" \t\r\n") == std::string::npos;
        calls.set_waiting_for_request(between);
        std::size_t n = co_await connection.read_some(
            asio::buffer(chunk), between ? Connection::Awaiting::next_request
                                         : Connection::Awaiting::rest_of_request);
        calls.set_waiting_for_request(false);
        if (n == 0) {
          end = pending.size();  // a last text without its newline
          if (pending.find_first_not_of(" \t\r\n") == std::string::npos) co_return;
        } else {
          pending.append(chunk, n);
          continue;
        }
      }
      std::string_view line(pending.data(), end);
      if (line.find_first_not_of(" \t\r") != std::string_view::npos)
        co_await calls.start(std::string(line));
      if (end >= pending.size()) co_return;
      pending.erase(0, end + 1);
      scanned = 0;
      if (connection.stopping()) co_return;
    }
  }
};

// ---- Content-Length framing (LSP) -----------------------------------------------

class ContentLengthProtocol : public ServerProtocol {
 public:
  std::string_view name() const override { return "jsonrpc-content-length"; }

  Match match(std::string_view first) const override {
    return match_prefix(first, "content-length:", /*ignore_case=*/true);
  }

  asio::awaitable<void> serve(Connection& connection, std::string pending) const override {
    co_await serve_concurrently(connection, std::move(pending), &read_calls, &framed);
  }

 private:
  static std::string framed(std::string_view text) {
    return "Content-Length: " + std::to_string(text.size()) + "\r\n\r\n" + std::string(text);
  }

  static asio::awaitable<void> read_calls(Connection& connection, std::string pending,
                                          ConcurrentCalls& calls) {
    const std::size_t limit = connection.options().max_message_bytes;
    char chunk[16384];
    auto fill = [&](bool between) -> asio::awaitable<bool> {
      calls.set_waiting_for_request(between);
      std::size_t n = co_await connection.read_some(
          asio::buffer(chunk), between ? Connection::Awaiting::next_request
                                       : Connection::Awaiting::rest_of_request);
      calls.set_waiting_for_request(false);
      if (n == 0) co_return false;
      pending.append(chunk, n);
      co_return true;
    };
    // Errors of the framing end the connection, after the calls before them.
    auto refuse = [&](std::string_view why) -> asio::awaitable<void> {
      co_await calls.finish();
      co_await write_framed(connection, error_text(-32600, why));
    };
    for (;;) {
      std::size_t header_end;
      while ((header_end = pending.find("\r\n\r\n")) == std::string::npos) {
        if (pending.size() > 8192) {
          co_await refuse("Invalid Request: headers too long");
          co_return;
        }
        if (!co_await fill(pending.empty())) co_return;
      }
      std::optional<std::size_t> length = content_length(std::string_view(pending).substr(0, header_end));
      if (!length) {
        co_await refuse("Invalid Request: no valid Content-Length header");
        co_return;
      }
      if (*length > limit) {
        co_await refuse("Invalid Request: the message exceeds the server's limit of " +
                        std::to_string(limit) + " bytes");
        co_return;
      }
      std::size_t body = header_end + 4;
      while (pending.size() < body + *length)
        if (!co_await fill(false)) co_return;
      co_await calls.start(pending.substr(body, *length));
      pending.erase(0, body + *length);
      if (connection.stopping()) co_return;
    }
  }

  static asio::awaitable<void> write_framed(Connection& connection, const std::string& text) {
    co_await connection.write("Content-Length: " + std::to_string(text.size()) + "\r\n\r\n" + text);
  }

  static std::optional<std::size_t> content_length(std::string_view headers) {
    std::optional<std::size_t> length;
    while (!headers.empty()) {
      std::size_t end = headers.find("\r\n");
      std::string_view line = headers.substr(0, end);
      if (starts_with_ignoring_case(line, "content-length:")) {
        std::string_view value = line.substr(15);
        while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
        if (value.empty() || value.size() > 12 ||
            value.find_first_not_of("0123456789") != std::string_view::npos)
          return std::nullopt;
        length = std::stoull(std::string(value));
      }
      if (end == std::string_view::npos) break;
      headers.remove_prefix(end + 2);
    }
    return length;
  }
};

// ---- whole messages (shm) -----------------------------------------------------

class MessageJsonRpc : public MessageProtocol {
 public:
  std::string_view name() const override { return "jsonrpc"; }
  bool match(std::string_view first) const override {
    auto start = first.find_first_not_of(" \t\r\n");
    return start != std::string_view::npos && (first[start] == '{' || first[start] == '[');
  }
  std::optional<std::string> handle(std::string_view message, CallContext& context,
                                    const ServiceTable& services,
                                    const ServerOptions& options) const override {
    context.protocol = "jsonrpc";
    return Engine(services, limits_of(options)).handle(message, context);
  }
};

}  // namespace

void add_message_protocols(std::vector<std::unique_ptr<MessageProtocol>>& table) {
  table.push_back(std::make_unique<MessageJsonRpc>());
}

void add_server_protocols(std::vector<std::unique_ptr<ServerProtocol>>& table) {
  table.push_back(std::make_unique<HttpProtocol>());
  table.push_back(std::make_unique<LineProtocol>());
  table.push_back(std::make_unique<ContentLengthProtocol>());
}

}  // namespace conduit::rpc::jsonrpc
