// What the blocking and the asynchronous JSON-RPC clients share: where they
// connect, how a request is framed, and how a reply is cut from the bytes
// that arrive.
#pragma once

#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "rpc/transports/address.hpp"

namespace conduit::rpc::jsonrpc {

struct Target {
  bool http = false;           // HTTP/1.1 over TCP; else one text per line or message
  transport::Address address;  // where to connect
  std::string http_path;       // http: the request target
  std::string text;            // as given, for messages
};

// "http://HOST:PORT/PATH", "tcp://HOST:PORT", "unix:/path", "unix:@name",
// "shm+unix:/path". Throws InvalidUri.
Target parse_target(std::string_view uri);

// The bytes that carry `body` to `target`: a line (the body with a newline
// added in place), or an HTTP POST.
// `headers`: further HTTP headers, each "Name: value\r\n" (over http://).
std::string frame_request(const Target& target, std::string body, std::string_view headers = {});

// A notification (no id) as JSON text.
std::string notification(std::string_view method, std::string_view params);

// Cuts one reply out of the bytes a connection delivers: a line, or an HTTP
// response whose body is the reply.
class ReplyReader {
 public:
  explicit ReplyReader(bool http);
  // Takes what it can from `buffer`, leaving the bytes of later replies;
  // true once the reply is whole. Throws ProtocolError for malformed HTTP.
  bool take(std::string& buffer);
  // At end of stream: true when that completes the reply (an HTTP response
  // without a length).
  bool finish_at_end_of_stream();
  // The reply; "" for an expected empty answer to a notification. Throws
  // ProtocolError for an HTTP error status without a body.
  std::string reply(bool expected, const std::string& from);
  bool keep_alive() const;

 private:
  bool http_;
  std::size_t scanned_ = 0;
  std::string body_;
  std::optional<boost::beast::http::response_parser<boost::beast::http::string_body>> parser_;
};

}  // namespace conduit::rpc::jsonrpc
