// JSON-RPC 2.0 as a server speaks it: over HTTP/1.1 (POST /jsonrpc), as one
// JSON text per line on a raw stream, and with Content-Length headers (the
// LSP convention, for stdio and pipes).
#include "rpc/protocols/jsonrpc/server_protocols.hpp"

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

#include "rpc/call_runner.hpp"
#include "rpc/connection.hpp"
#include "rpc/protocols/jsonrpc/engine.hpp"

namespace conduit::rpc::jsonrpc {

namespace {

Limits limits_of(const ServerOptions& options) {
  Limits limits;
  limits.max_body_bytes = options.max_message_bytes;
  limits.max_depth = options.jsonrpc.max_depth;
  limits.max_batch = options.jsonrpc.max_batch;
  return limits;
}

bool starts_with_ignoring_case(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(text[i])) != prefix[i]) return false;
  return true;
}

// Whether `text` is `word` or could still become it.
StreamProtocol::Match match_prefix(std::string_view text, std::string_view word,
                                   bool ignore_case = false) {
  std::size_t n = std::min(text.size(), word.size());
  std::string_view head = text.substr(0, n);
  bool same = ignore_case ? starts_with_ignoring_case(head, word.substr(0, n))
                          : head == word.substr(0, n);
  if (!same) return StreamProtocol::Match::no;
  return text.size() >= word.size() ? StreamProtocol::Match::yes
                                    : StreamProtocol::Match::need_more;
}

std::string error_text(int code, std::string_view message) {
  return "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":" + std::to_string(code) + ",\"message\":\"" +
         std::string(message) + "\"},\"id\":null}";
}

// ---- HTTP/1.1 (served by the shared front end) -------------------------------

http1::Response http_reply(unsigned status, std::string body) {
  http1::Response response;
  response.status = status;
  response.content_type = "application/json";
  response.body = std::move(body);
  return response;
}

// The front end's own refusals on JSON-RPC's paths, as JSON-RPC errors.
http1::Response http_refusal(unsigned status, std::string_view why) {
  switch (status) {
    case 413:
      return http_reply(status, error_text(-32600, "Invalid Request: " + std::string(why)));
    case 405:
      return http_reply(status, error_text(-32600, "Invalid Request: use POST"));
    case 415:
      return http_reply(status,
                        error_text(-32600, "Invalid Request: Content-Type must be application/json"));
    default:
      return http_reply(status, error_text(-32700, "Parse error: " + std::string(why)));
  }
}

http1::Response http_call(const http1::Request& request, CallContext& context) {
  Engine engine(request.services, limits_of(request.options));
  std::optional<std::string> reply = engine.handle(request.body, context);
  if (!reply) {
    http1::Response none;
    none.status = 204;
    return none;
  }
  return http_reply(200, std::move(*reply));
}

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
                 CallContext context = make_call_context(state->connection, kName);
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

class LineProtocol : public StreamProtocol {
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

class ContentLengthProtocol : public StreamProtocol {
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
  std::string_view name() const override { return kName; }
  bool match(std::string_view first) const override {
    auto start = first.find_first_not_of(" \t\r\n");
    return start != std::string_view::npos && (first[start] == '{' || first[start] == '[');
  }
  std::optional<std::string> handle(std::string_view message, CallContext& context,
                                    const ServiceTable& services,
                                    const ServerOptions& options) const override {
    return Engine(services, limits_of(options)).handle(message, context);
  }
};

}  // namespace

std::unique_ptr<MessageProtocol> message_protocol() {
  return std::make_unique<MessageJsonRpc>();
}

std::vector<std::unique_ptr<StreamProtocol>> stream_protocols() {
  std::vector<std::unique_ptr<StreamProtocol>> all;
  all.push_back(std::make_unique<LineProtocol>());
  all.push_back(std::make_unique<ContentLengthProtocol>());
  return all;
}

std::vector<http1::Route> http_routes() {
  std::vector<http1::Route> routes;
  for (const char* path : {"/jsonrpc", "/"}) {
    http1::Route route;
    route.protocol = std::string(kName);
    route.path = path;
    route.content_types = {"application/json", "application/json-rpc", "application/jsonrequest"};
    route.handler = &http_call;
    route.error_body = &http_refusal;
    routes.push_back(std::move(route));
  }
  return routes;
}

}  // namespace conduit::rpc::jsonrpc
