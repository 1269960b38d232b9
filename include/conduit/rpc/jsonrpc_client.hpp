// A blocking JSON-RPC 2.0 client over any transport a conduit server
// serves: "http://HOST:PORT/PATH" (HTTP/1.1 POST, keep-alive),
// "tcp://HOST:PORT" and "unix:/path" or "unix:@name" (one JSON text per
// line), and "shm+unix:/path" (the server's handshake socket; then two
// rings in shared memory, one message each way per call). The connection is
// reused between calls and made again when the server closed it (a restart,
// an idle timeout).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "conduit/error.hpp"

namespace conduit::rpc {

// The server answered with a JSON-RPC error object.
class JsonRpcError : public Error {
 public:
  JsonRpcError(int code, std::string message, std::string error_json);
  int code() const { return code_; }
  // The whole error object, as the server sent it.
  const std::string& error_json() const { return error_json_; }

 private:
  int code_;
  std::string error_json_;
};

class JsonRpcClient {
 public:
  // Throws InvalidUri for a URI it cannot use; connects on the first call.
  explicit JsonRpcClient(std::string_view uri,
                         std::chrono::milliseconds timeout = std::chrono::seconds(30));
  ~JsonRpcClient();
  JsonRpcClient(JsonRpcClient&&) noexcept;
  JsonRpcClient& operator=(JsonRpcClient&&) noexcept;

  // Calls `method` with `params` (a JSON array or object, or empty) and
  // returns the result as JSON text. Throws JsonRpcError for an error reply,
  // ProtocolError for a reply that is not JSON-RPC, SystemError when the
  // server cannot be reached, Timeout when no reply came within the timeout.
  std::string call(std::string_view method, std::string_view params = {});

  // Sends a notification: no reply is expected (over HTTP, the 204 is read).
  void notify(std::string_view method, std::string_view params = {});

  // Gives up the call in progress from another thread: it throws
  // Cancelled, and the server sees its connection close. The next call
  // connects again.
  void abort();

  // How long later calls wait for a connection and for their reply.
  void set_timeout(std::chrono::milliseconds timeout);

  // HTTP headers sent with each later request, replacing those set before
  // (an "authorization" bearer token, say). Throws Error when the URI is
  // not http:// (a raw stream has no headers) or a header is not one HTTP
  // can carry: a name that is not a token, a value holding CR, LF or NUL.
  void set_headers(const std::multimap<std::string, std::string>& headers);

  // Bytes this client has written and read on its connections (framing
  // included: HTTP headers, newlines), for bytes-on-the-wire figures.
  std::uint64_t bytes_sent() const;
  std::uint64_t bytes_received() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace conduit::rpc
