// The asynchronous JSON-RPC 2.0 client, on a Boost.Asio executor: a C++20
// coroutine (co_await client.call(...)) or a completion callback. It
// connects to "http://HOST:PORT/PATH", "tcp://HOST:PORT", "unix:/path" and
// "unix:@name" as JsonRpcClient does (shm: has only the blocking client),
// reuses its connection and makes it again when the server closed it.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "conduit/rpc/jsonrpc_client.hpp"

namespace conduit::rpc {

class AsyncJsonRpcClient {
 public:
  // Throws InvalidUri for a URI it cannot use; connects on the first call.
  AsyncJsonRpcClient(boost::asio::any_io_executor executor, std::string_view uri,
                     std::chrono::milliseconds timeout = std::chrono::seconds(30));
  ~AsyncJsonRpcClient();

  // Calls `method` with `params` (a JSON array or object, or empty) and
  // returns the result as JSON text; throws what JsonRpcClient::call throws.
  // REQUIRES: one call at a time per client (use one client per concurrent
  // caller).
  boost::asio::awaitable<std::string> call(std::string method, std::string params = {});

  // The same with a callback, run on the executor: `error` is null and
  // `result` set on success.
  void call(std::string method, std::string params,
            std::function<void(std::exception_ptr error, std::string result)> done);

 private:
  class Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace conduit::rpc
