// HTTP/1.1, shared by every protocol that is spoken over it: reads requests
// (request_head.hpp; Content-Length and chunked bodies, Expect:
// 100-continue, pipelining), routes each by path, method and media type to
// the protocol that registered the route, and answers what no route takes
// itself:
//   404 Not Found               no route has the path
//   405 Method Not Allowed      routes have the path, none the method (Allow:)
//   415 Unsupported Media Type  none takes the request's Content-Type
//   413 Payload Too Large       the body exceeds ServerOptions::max_message_bytes
//   431 Request Header Fields Too Large   the head exceeds 16 KiB
//   400 Bad Request, 501, 505   malformed or unsupported HTTP
// (each error but 404, 405 and 415 closes the connection). Keep-alive as
// HTTP/1.1 has it; a request must arrive whole within the request timeout,
// and an idle connection is closed after the idle timeout.
#pragma once

#include <memory>
#include <vector>

#include "rpc/http1/route.hpp"
#include "rpc/protocol.hpp"

namespace conduit::rpc::http1 {

// The front end as a recogniser of first bytes (an HTTP/1.1 request line),
// serving `routes`, which must outlive it.
std::unique_ptr<StreamProtocol> make_front_end(const std::vector<Route>& routes);

}  // namespace conduit::rpc::http1
