#include "rpc/http1/front_end.hpp"

#include <algorithm>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <cctype>

#include "rpc/call_runner.hpp"
#include "rpc/connection.hpp"

namespace conduit::rpc::http1 {

namespace {

namespace beast_http = boost::beast::http;

// ASCII only, as HTTP's names and media types are; without the locale's
// tolower, which costs a call per character.
std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

// The media type of a Content-Type value: lower case, parameters and
// spaces cut off.
std::string media_type(std::string_view value) {
  std::string_view type = value.substr(0, value.find(';'));
  while (!type.empty() && (type.back() == ' ' || type.back() == '\t')) type.remove_suffix(1);
  while (!type.empty() && (type.front() == ' ' || type.front() == '\t')) type.remove_prefix(1);
  return lower(type);
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
    case 500:
      return "Internal Server Error";
    default:
      return "Status";
  }
}

// The response as it goes on the wire, into `text` (whose capacity is
// kept from the connection's last response).
void serialize_into(std::string& text, const Response& response, bool keep_alive) {
  text.clear();
  text.reserve(128 + response.extra_headers.size() + response.body.size());
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
  text += response.body;
}

std::string serialize(const Response& response, bool keep_alive) {
  std::string text;
  serialize_into(text, response, keep_alive);
  return text;
}

// How much of a request body's and a response's buffer a connection keeps
// for its next request: large enough that calls of a few megabytes, one
// after another, reuse their pages (a fresh multi-megabyte buffer costs a
// page fault per page on every call), small enough to bound what an idle
// connection holds.
constexpr std::size_t kKeptBufferBytes = 4 << 20;

class FrontEnd final : public StreamProtocol {
 public:
  explicit FrontEnd(const std::vector<Route>& routes) : routes_(routes) {}

  std::string_view name() const override { return "http/1.1"; }

  Match match(std::string_view first) const override {
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
    char chunk[16384];
    const std::size_t limit = connection.options().max_message_bytes;
    std::string kept_body, out;  // reused from request to request (kKeptBufferBytes)
    for (;;) {
      beast_http::request<beast_http::string_body> empty;
      empty.body() = std::move(kept_body);
      empty.body().clear();
      beast_http::request_parser<beast_http::string_body> parser(std::move(empty));
      parser.body_limit(limit);
      parser.header_limit(16 * 1024);
      boost::beast::error_code error;
      bool first_read = true;
      while (!parser.is_done()) {
        if (!pending.empty()) {
          // The parser takes what it can; what it leaves must be offered
          // again with more bytes after it.
          std::size_t used = parser.put(asio::buffer(pending), error);
          pending.erase(0, used);
          if (error == beast_http::error::need_more) {
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
            asio::buffer(chunk),
            between ? Connection::Awaiting::next_request : Connection::Awaiting::rest_of_request);
        connection.set_idle(false);
        if (n == 0) co_return;  // closed between (or inside) requests
        pending.append(chunk, n);
        first_read = false;
      }
      if (error == beast_http::error::body_limit) {
        // The request line is parsed before the headers that broke the limit.
        const Route* route = any_route_at(parser.get().target());
        co_await connection.write(serialize(
            refusal(route, 413,
                    "the body exceeds the server's limit of " + std::to_string(limit) + " bytes"),
            false));
        co_return;
      }
      if (error) {
        co_await connection.write(
            serialize(refusal(nullptr, 400, "malformed HTTP request: " + error.message()), false));
        co_return;
      }
      auto& request = parser.get();
      const bool keep_alive = request.keep_alive() && !connection.stopping();
      serialize_into(out, answer(connection, request), keep_alive);
      co_await connection.write(out);
      if (!keep_alive) co_return;
      if (request.body().capacity() <= kKeptBufferBytes) kept_body = std::move(request.body());
      if (out.capacity() > kKeptBufferBytes) out = std::string();
    }
  }

 private:
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

  Response answer(Connection& connection,
                  beast_http::request<beast_http::string_body>& request) const {
    const std::string_view path = path_of(request.target());
    const std::string_view method = request.method_string();
    const std::string_view content_type = request[beast_http::field::content_type];
    const std::string type = media_type(content_type);
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
                         std::find(route.content_types.begin(), route.content_types.end(), type) !=
                             route.content_types.end();
      if (takes) return call(connection, route, request, content_type);
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
                   "Content-Type " + (type.empty() ? std::string("(none)") : type) +
                       " is not served at " + std::string(path) + "; use " + accepted);
  }

  // Headers of HTTP itself, which say how the request travels rather than
  // anything a handler could act on: not metadata.
  static bool is_transport_header(beast_http::field field) {
    switch (field) {
      case beast_http::field::host:
      case beast_http::field::content_length:
      case beast_http::field::content_type:
      case beast_http::field::connection:
      case beast_http::field::keep_alive:
      case beast_http::field::transfer_encoding:
      case beast_http::field::te:
      case beast_http::field::trailer:
      case beast_http::field::upgrade:
      case beast_http::field::expect:
        return true;
      default:
        return false;
    }
  }

  static Response call(Connection& connection, const Route& route,
                       beast_http::request<beast_http::string_body>& request,
                       std::string_view content_type) {
    CallContext context = make_call_context(connection, route.protocol);
    for (const auto& field : request) {
      if (is_transport_header(field.name())) continue;
      context.metadata.emplace(lower(field.name_string()), std::string(field.value()));
    }
    Request seen{request.method_string(), request.target(),      content_type,
                 request.body(),          connection.services(), connection.options()};
    return route.handler(seen, context);
  }

  const std::vector<Route>& routes_;
};

}  // namespace

std::unique_ptr<StreamProtocol> make_front_end(const std::vector<Route>& routes) {
  return std::make_unique<FrontEnd>(routes);
}

}  // namespace conduit::rpc::http1
