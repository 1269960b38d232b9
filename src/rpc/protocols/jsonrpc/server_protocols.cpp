// JSON-RPC 2.0 as a server speaks it: over HTTP/1.1 (POST /jsonrpc), as one
// JSON text per line on a raw stream, and with Content-Length headers (the
// LSP convention, for stdio and pipes).
#include "rpc/protocols/jsonrpc/server_protocols.hpp"

#include <algorithm>
#include <cctype>
#include <memory>

#include "rpc/concurrent_calls.hpp"
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
  bool same =
      ignore_case ? starts_with_ignoring_case(head, word.substr(0, n)) : head == word.substr(0, n);
  if (!same) return StreamProtocol::Match::no;
  return text.size() >= word.size() ? StreamProtocol::Match::yes : StreamProtocol::Match::need_more;
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
      return http_reply(
          status, error_text(-32600, "Invalid Request: Content-Type must be application/json"));
    default:
      return http_reply(status, error_text(-32700, "Parse error: " + std::string(why)));
  }
}

http1::Response http_call(const http1::Request& request, CallContext& context) {
  Engine engine(request.services, limits_of(request.options));
  std::optional<std::string> reply =
      engine.handle(request.body, context, std::move(request.kept_response));
  if (!reply) {
    http1::Response none;
    none.status = 204;
    return none;
  }
  return http_reply(200, std::move(*reply));
}

// The engine of a connection, as the handler its calls run.
TextHandler handler(const Connection& connection) {
  auto engine =
      std::make_shared<const Engine>(connection.services(), limits_of(connection.options()));
  return [engine](std::string_view request, CallContext& context) {
    return engine->handle(request, context);
  };
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
    co_await serve_concurrently(connection, std::move(pending), kName, handler(connection),
                                &read_calls, [](std::string& reply) { reply += '\n'; });
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
            asio::buffer(chunk),
            between ? Connection::Awaiting::next_request : Connection::Awaiting::rest_of_request);
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
      const bool blank = line.find_first_not_of(" \t\r") == std::string_view::npos;
      if (end + 1 >= pending.size()) {
        // The line is all that was read (the usual case): it is handed over
        // whole, and a large text costs no second buffer.
        const bool last = end >= pending.size();
        pending.resize(end);
        if (!blank) co_await calls.start(std::move(pending));
        pending.clear();
        if (last) co_return;
      } else {
        if (!blank) co_await calls.start(std::string(line));
        pending.erase(0, end + 1);
      }
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
    co_await serve_concurrently(connection, std::move(pending), kName, handler(connection),
                                &read_calls, &framed);
  }

 private:
  static void framed(std::string& text) {
    text.insert(0, "Content-Length: " + std::to_string(text.size()) + "\r\n\r\n");
  }

  static asio::awaitable<void> read_calls(Connection& connection, std::string pending,
                                          ConcurrentCalls& calls) {
    const std::size_t limit = connection.options().max_message_bytes;
    char chunk[16384];
    auto fill = [&](bool between) -> asio::awaitable<bool> {
      calls.set_waiting_for_request(between);
      std::size_t n = co_await connection.read_some(
          asio::buffer(chunk),
          between ? Connection::Awaiting::next_request : Connection::Awaiting::rest_of_request);
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
      std::optional<std::size_t> length =
          content_length(std::string_view(pending).substr(0, header_end));
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
      if (pending.size() == body + *length) {
        // The message is all that was read (the usual case): handed over
        // without a second buffer for it.
        pending.erase(0, body);
        co_await calls.start(std::move(pending));
        pending.clear();
      } else {
        co_await calls.start(pending.substr(body, *length));
        pending.erase(0, body + *length);
      }
      if (connection.stopping()) co_return;
    }
  }

  static asio::awaitable<void> write_framed(Connection& connection, std::string text) {
    framed(text);
    co_await connection.write(text);
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
