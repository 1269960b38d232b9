#include "rpc/http1/front_end.hpp"

#include <algorithm>
#include <array>
#include <span>

#include "rpc/call_runner.hpp"
#include "rpc/connection.hpp"
#include "rpc/http1/request_head.hpp"

namespace conduit::rpc::http1 {

namespace {

// The media type of a Content-Type value, as sent: parameters and spaces
// cut off (compare it ignoring case).
std::string_view media_type(std::string_view value) {
  std::string_view type = value.substr(0, value.find(';'));
  while (!type.empty() && (type.back() == ' ' || type.back() == '\t')) type.remove_suffix(1);
  while (!type.empty() && (type.front() == ' ' || type.front() == '\t')) type.remove_prefix(1);
  return type;
}

std::string_view reason_of(unsigned status) {
  switch (status) {
    case 200:
      return "OK";
    case 204:
      return "No Content";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 413:
      return "Payload Too Large";
    case 415:
      return "Unsupported Media Type";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Status";
  }
}

// The status line and headers of `response`, into `text` (whose capacity
// is kept from the connection's last response).
void serialize_head(std::string& text, const Response& response, bool keep_alive) {
  text.clear();
  text += "HTTP/1.1 ";
  text += std::to_string(response.status);
  text += ' ';
  text += reason_of(response.status);
  text += "\r\n";
  if (!response.body.empty()) {
    text += "Content-Type: ";
    text += response.content_type.empty() ? "text/plain; charset=utf-8" : response.content_type;
    text += "\r\n";
  }
  text += "Content-Length: ";
  text += std::to_string(response.body.size());
  text += "\r\n";
  text += response.extra_headers;
  text += keep_alive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
}

std::string serialize(const Response& response, bool keep_alive) {
  std::string text;
  serialize_head(text, response, keep_alive);
  text += response.body;
  return text;
}

// How much of a request body's and a response's buffer a connection keeps
// for its next request: large enough that calls of a few megabytes, one
// after another, reuse their pages (a fresh multi-megabyte buffer costs a
// page fault per page on every call), small enough to bound what an idle
// connection holds.
constexpr std::size_t kKeptBufferBytes = 4 << 20;
// A response body at least this large is written after its head rather
// than copied behind it: two writes cost less than the copy.
constexpr std::size_t kSeparateBodyBytes = 64 << 10;
// The most a request head may take, request line and fields together; a
// chunk-size line or a trailer line of a chunked body at most kMaxLineBytes.
constexpr std::size_t kMaxHeadBytes = 16 << 10;
constexpr std::size_t kMaxLineBytes = 4 << 10;

// Whether `bytes` holds nothing of a request yet (empty lines may come
// before a request line).
bool nothing_of_a_request(std::string_view bytes) {
  return bytes.find_first_not_of("\r\n") == std::string_view::npos;
}

class FrontEnd final : public StreamProtocol {
 public:
  explicit FrontEnd(const std::vector<Route>& routes) : routes_(routes) {}

  std::string_view name() const override { return "http/1.1"; }

  Match match(std::string_view first) const override {
    // Empty lines may come before a request line (RFC 9112 2.2).
    first.remove_prefix(std::min(first.find_first_not_of("\r\n"), first.size()));
    if (first.empty()) return Match::need_more;
    bool undecided = false;
    for (std::string_view method :
         {"POST ", "GET ", "HEAD ", "PUT ", "DELETE ", "OPTIONS ", "PATCH "}) {
      const std::size_t n = std::min(first.size(), method.size());
      if (first.substr(0, n) != method.substr(0, n)) continue;
      if (first.size() >= method.size()) return Match::yes;
      undecided = true;
    }
    return undecided ? Match::need_more : Match::no;
  }

  asio::awaitable<void> serve(Connection& connection, std::string pending) const override {
    const std::size_t limit = connection.options().max_message_bytes;
    // Reused from request to request, up to kKeptBufferBytes.
    std::string head_text, body, out, kept_response;
    RequestHead head;
    std::array<char, 16384> chunk;  // what reads of a head or a chunked body go through
    for (;;) {
      std::optional<std::size_t> end;
      while (!(end = head_end(pending)) && pending.size() <= kMaxHeadBytes)
        if (!co_await read_more(connection, pending, chunk)) co_return;  // closed
      if (!end || *end > kMaxHeadBytes) {
        co_await refuse(connection, nullptr, 431,
                        "the request head exceeds the server's limit of " +
                            std::to_string(kMaxHeadBytes) + " bytes");
        co_return;
      }
      // The head gets a buffer of its own: the body's reads may move `pending`.
      head_text.assign(pending, 0, *end);
      pending.erase(0, *end);
      if (auto error = parse_head(head_text, limit, head)) {
        co_await refuse(connection, error->status == 413 ? any_route_at(head.target) : nullptr,
                        error->status, error->why);
        co_return;
      }
      if (head.expects_continue && (head.chunked || head.content_length > pending.size()))
        co_await connection.write("HTTP/1.1 100 Continue\r\n\r\n");

      body.clear();
      if (!head.chunked) {
        if (!co_await read_body(connection, pending, head.content_length, body)) co_return;
      } else if (auto error = co_await read_chunked(connection, chunk, pending, body, limit)) {
        if (error->status != 0)
          co_await refuse(connection, error->status == 413 ? any_route_at(head.target) : nullptr,
                          error->status, error->why);
        co_return;
      }

      const bool keep_alive = head.keep_alive && !connection.stopping();
      Response response = answer(connection, head, body, kept_response);
      serialize_head(out, response, keep_alive);
      if (head.method == "HEAD") {
        co_await connection.write(out);  // the length of a body not sent
      } else if (response.body.size() >= kSeparateBodyBytes) {
        co_await connection.write(out);
        co_await connection.write(response.body);
      } else {
        out += response.body;
        co_await connection.write(out);
      }
      if (!keep_alive) co_return;
      if (body.capacity() > kKeptBufferBytes) body = std::string();
      if (response.body.capacity() <= kKeptBufferBytes) kept_response = std::move(response.body);
      if (out.capacity() > kKeptBufferBytes) out = std::string();
      if (head_text.capacity() > kMaxHeadBytes) head_text = std::string();
    }
  }

 private:
  // Reads more of a request into `pending`, through `chunk` (the
  // connection's: a coroutine's frame holding it would cost an allocation
  // of its size on every read); false when the peer closed.
  static asio::awaitable<bool> read_more(Connection& connection, std::string& pending,
                                         std::span<char> chunk) {
    const bool between = nothing_of_a_request(pending);
    connection.set_idle(between);
    const std::size_t n = co_await connection.read_some(
        asio::buffer(chunk.data(), chunk.size()),
        between ? Connection::Awaiting::next_request : Connection::Awaiting::rest_of_request);
    connection.set_idle(false);
    pending.append(chunk.data(), n);
    co_return n > 0;
  }

  // Reads a body of `length` bytes into `body`, straight into it rather
  // than through `pending` (which holds what arrived with the head); false
  // when the peer closed inside it.
  static asio::awaitable<bool> read_body(Connection& connection, std::string& pending,
                                         std::size_t length, std::string& body) {
    const std::size_t have = std::min(pending.size(), length);
    body.assign(pending, 0, have);
    pending.erase(0, have);
    for (std::size_t filled = have; filled < length;) {
      // The buffer grows with what arrives (doubling), not with what the
      // head announced: a peer that announces a large body and sends
      // little of it holds little memory.
      const std::size_t size = std::min(length, std::max<std::size_t>(2 * filled, 64 << 10));
      if (body.size() < size) body.resize(size);
      const std::size_t n = co_await connection.read_some(
          asio::buffer(body.data() + filled, size - filled), Connection::Awaiting::rest_of_request);
      if (n == 0) co_return false;
      filled += n;
    }
    co_return true;
  }

  // Answers a request the front end refuses, and closes.
  asio::awaitable<void> refuse(Connection& connection, const Route* route, unsigned status,
                               std::string_view why) const {
    co_await connection.write(serialize(refusal(route, status, why), false));
  }

  // Reads a chunked body (RFC 9112 7.1) from `pending` into `body`, leaving
  // what follows it in `pending`; trailer fields are read and dropped.
  // std::nullopt when the body was read; otherwise why not (status 0: the
  // peer closed the connection inside it).
  static asio::awaitable<std::optional<HeadError>> read_chunked(Connection& connection,
                                                                std::span<char> chunk,
                                                                std::string& pending,
                                                                std::string& body,
                                                                std::size_t limit) {
    // The next line of `pending`, without its CRLF, once it has arrived;
    // std::nullopt when it is too long or the peer closed first.
    bool peer_closed = false;
    auto next_line = [&]() -> asio::awaitable<std::optional<std::string>> {
      std::size_t eol;
      while ((eol = pending.find("\r\n")) == std::string::npos) {
        if (pending.size() > kMaxLineBytes) co_return std::nullopt;
        if (!co_await read_more(connection, pending, chunk)) {
          peer_closed = true;
          co_return std::nullopt;
        }
      }
      if (eol > kMaxLineBytes) co_return std::nullopt;
      std::string line = pending.substr(0, eol);
      pending.erase(0, eol + 2);
      co_return line;
    };
    const HeadError closed{0, {}};
    for (;;) {
      const std::optional<std::string> line = co_await next_line();
      if (!line)
        co_return peer_closed ? closed
                              : HeadError{400, "a chunk-size line longer than " +
                                                   std::to_string(kMaxLineBytes) + " bytes"};
      const std::optional<std::uint64_t> size = parse_chunk_size(*line);
      if (!size) co_return HeadError{400, "a malformed chunk-size line in a chunked body"};
      if (*size == 0) break;
      if (*size > limit - body.size())
        co_return HeadError{413, "the chunked body exceeds the server's limit of " +
                                     std::to_string(limit) + " bytes"};
      while (pending.size() < *size + 2)
        if (!co_await read_more(connection, pending, chunk)) co_return closed;
      if (pending.compare(*size, 2, "\r\n") != 0)
        co_return HeadError{400, "a chunk's data is not followed by CRLF"};
      body.append(pending, 0, *size);
      pending.erase(0, *size + 2);
    }
    for (std::size_t trailers = 0;;) {  // trailer fields, up to an empty line
      const std::optional<std::string> line = co_await next_line();
      if (!line)
        co_return peer_closed ? closed
                              : HeadError{400, "a trailer line longer than " +
                                                   std::to_string(kMaxLineBytes) + " bytes"};
      if (line->empty()) co_return std::nullopt;
      if ((trailers += line->size()) > kMaxHeadBytes)
        co_return HeadError{431, "the trailer fields exceed the server's limit"};
    }
  }

  // The path of a request target: without the query.
  static std::string_view path_of(std::string_view target) {
    return target.substr(0, target.find('?'));
  }

  const Route* any_route_at(std::string_view target) const {
    const std::string_view path = path_of(target);
    for (const Route& route : routes_)
      if (route.path == path) return &route;
    return nullptr;
  }

  static Response refusal(const Route* route, unsigned status, std::string_view why) {
    if (route && route->error_body) return route->error_body(status, why);
    Response response;
    response.status = status;
    response.body = std::string(why) + "\n";
    return response;
  }

  Response answer(Connection& connection, const RequestHead& head, std::string& body,
                  std::string& kept_response) const {
    const std::string_view path = path_of(head.target);
    const std::string_view method = head.method;
    const std::string_view content_type = head.content_type;
    const std::string_view type = media_type(content_type);
    const Route* at_path = nullptr;
    const Route* with_method = nullptr;
    std::string allowed, accepted;
    for (const Route& route : routes_) {
      if (route.path != path) continue;
      if (!at_path) at_path = &route;
      if (route.method != method) {
        if (allowed.find(route.method) == std::string::npos)
          allowed += (allowed.empty() ? "" : ", ") + route.method;
        continue;
      }
      if (!with_method) with_method = &route;
      const bool takes = route.content_types.empty() ||
                         std::any_of(route.content_types.begin(), route.content_types.end(),
                                     [type](const std::string& taken) {
                                       return equal_ignoring_case(taken, type);
                                     });
      if (takes) return call(connection, route, head, body, kept_response, content_type);
      for (const std::string& one : route.content_types)
        accepted += (accepted.empty() ? "" : ", ") + one;
    }
    if (!at_path) {
      std::string known;
      for (const Route& route : routes_)
        known += "\n  " + route.method + " " + route.path + " (" + route.protocol + ")";
      return refusal(nullptr, 404,
                     "no route for " + std::string(path) + "; this server answers" + known);
    }
    if (!with_method) {
      Response response = refusal(
          at_path, 405,
          std::string(method) + " is not served at " + std::string(path) + "; use " + allowed);
      response.extra_headers += "Allow: " + allowed + "\r\n";
      return response;
    }
    return refusal(with_method, 415,
                   "Content-Type " + (type.empty() ? std::string("(none)") : lower_ascii(type)) +
                       " is not served at " + std::string(path) + "; use " + accepted);
  }

  static Response call(Connection& connection, const Route& route, const RequestHead& head,
                       std::string& body, std::string& kept_response,
                       std::string_view content_type) {
    CallContext context = make_call_context(connection, route.protocol);
    // The handler runs here, with no read of the connection under way: a
    // client that gives up and closes is seen when the handler asks.
    context.watch_caller([weak = connection.weak_from_this()] {
      const auto alive = weak.lock();
      return !alive || alive->peer_gone();
    });
    // HTTP's own fields say how the request travels: not metadata.
    for (const FieldLine& line : head.fields)
      if (line.known == KnownField::other)
        context.metadata.emplace(lower_ascii(line.name), std::string(line.value));
    Request seen{head.method,           head.target,          content_type, body,
                 connection.services(), connection.options(), kept_response};
    return route.handler(seen, context);
  }

  const std::vector<Route>& routes_;
};

}  // namespace

std::unique_ptr<StreamProtocol> make_front_end(const std::vector<Route>& routes) {
  return std::make_unique<FrontEnd>(routes);
}

}  // namespace conduit::rpc::http1
