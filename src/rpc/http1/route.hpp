// What a protocol hands the HTTP/1.1 front end: the routes it serves, each a
// method, a path and the media types it takes, and what answers a request.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "conduit/rpc/call_context.hpp"
#include "conduit/rpc/server.hpp"
#include "conduit/rpc/service.hpp"

namespace conduit::rpc::http1 {

// One request, as the route sees it, with the server it came to. The body
// may be moved from.
struct Request {
  std::string_view method;        // "POST"
  std::string_view target;        // as sent: "/path?query"
  std::string_view content_type;  // as sent, parameters included
  std::string& body;
  const ServiceTable& services;
  const ServerOptions& options;
  // The body of the connection's last response, for its memory: a handler
  // that builds its response in it (moved into Response::body) costs no
  // fresh pages for a large one.
  std::string& kept_response;
};

struct Response {
  unsigned status = 200;
  // Sent when the body is not empty. A literal, or text that outlives the
  // response.
  std::string_view content_type;
  std::string body;
  // Further headers, each "Name: value\r\n".
  std::string extra_headers;
};

// Answers a request of the route. Runs on the connection's executor, one
// request of a connection at a time (HTTP/1.1 answers in order).
// `context` is the call's (make_call_context), its metadata the request's
// headers with lower-case names.
using Handler = std::function<Response(const Request& request, CallContext& context)>;

// The body of an error the front end answers itself on a route's path (413
// body too large, 405 wrong method, 415 wrong media type), in the route's
// protocol: `status` and why, in words.
using ErrorBody = std::function<Response(unsigned status, std::string_view why)>;

struct Route {
  std::string protocol;  // its name, for messages
  std::string method = "POST";
  std::string path;  // matched exactly, without the query
  // Media types taken, lower case, without parameters; a route of the same
  // method and path may take others (two protocols may both answer at /).
  std::vector<std::string> content_types;
  Handler handler;
  ErrorBody error_body;  // optional: plain text otherwise
};

}  // namespace conduit::rpc::http1
