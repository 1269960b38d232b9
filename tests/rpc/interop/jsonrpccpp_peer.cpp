// A JSON-RPC 2.0 peer built with libjson-rpc-cpp and nothing of conduit's,
// for tests/rpc/jsonrpccpp_interop_test.cpp.
//
//   jsonrpccpp_peer client URL   calls a `conduit serve` at URL through
//                                HttpClient and Client: one line per check,
//                                exit 0 only when every check passed.
//   jsonrpccpp_peer server PORT [THREADS]
//                                serves echo and subtract with HttpServer on
//                                PORT (0: a port the kernel picks) with
//                                THREADS threads (default 2) and prints
//                                "ready PORT" once listening; stops on
//                                SIGTERM, SIGINT or end of stdin.
//
// libjson-rpc-cpp 0.7 (Debian 12) declares dynamic exception specifications,
// which C++17 removed, so this file is built as C++14. Its HttpServer cannot
// be told an address and binds every interface; this program's own bind()
// (below) takes the place of libc's for the library and turns the wildcard
// address into loopback, so the test server is reachable from this host only.
#include <dirent.h>
#include <jsonrpccpp/client.h>
#include <jsonrpccpp/client/connectors/httpclient.h>
#include <jsonrpccpp/server.h>
#include <jsonrpccpp/server/connectors/httpserver.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sys/syscall.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>

namespace {

std::string compact(const Json::Value& value) {
  Json::StreamWriterBuilder builder;
  builder["indentation"] = "";
  return Json::writeString(builder, value);
}

Json::Value parse(const std::string& text) {
  Json::CharReaderBuilder builder;
  Json::Value value;
  std::string errors;
  std::istringstream stream(text);
  if (!Json::parseFromStream(builder, stream, &value, &errors))
    throw std::invalid_argument("bad JSON in the peer itself: " + text);
  return value;
}

// How one check went; `detail` says more about a pass or why it failed.
struct Verdict {
  bool passed;
  std::string detail;
};

Verdict pass(const std::string& detail = "") {
  return {true, detail};
}
Verdict fail(const std::string& why) {
  return {false, why};
}

// Runs named checks, printing "ok NAME" or "FAIL NAME: why" for each.
class Checks {
 public:
  void run(const std::string& name, const std::function<Verdict()>& check) {
    Verdict verdict = fail("");
    try {
      verdict = check();
    } catch (const jsonrpc::JsonRpcException& error) {
      verdict = fail("JsonRpcException " + std::to_string(error.GetCode()) + ": " + error.what());
    } catch (const std::exception& error) {
      verdict = fail(std::string("exception: ") + error.what());
    }
    if (verdict.passed) {
      std::cout << "ok " << name << (verdict.detail.empty() ? "" : " (" + verdict.detail + ")")
                << std::endl;
    } else {
      std::cout << "FAIL " << name << ": " << verdict.detail << std::endl;
      ++failed_;
    }
  }
  int failed() const { return failed_; }

 private:
  int failed_ = 0;
};

// Passes when calling method returns exactly `expected`.
Verdict returns(jsonrpc::Client& client, const std::string& method, const std::string& params,
                const std::string& expected) {
  Json::Value result = client.CallMethod(method, parse(params));
  if (result == parse(expected)) return pass();
  return fail("returned " + compact(result) + ", expected " + expected);
}

// Passes when calling method fails with a JSON-RPC error of `code`.
Verdict fails_with(jsonrpc::Client& client, const std::string& method, const std::string& params,
                   int code) {
  try {
    Json::Value result = client.CallMethod(method, parse(params));
    return fail("returned " + compact(result) + " instead of error " + std::to_string(code));
  } catch (const jsonrpc::JsonRpcException& error) {
    if (error.GetCode() == code) return pass();
    return fail("error " + std::to_string(error.GetCode()) + " (" + error.what() + "), expected " +
                std::to_string(code));
  }
}

// Passes when the server takes the notification. A server rightly answers a
// notification over HTTP with an empty 204 No Content, but libjson-rpc-cpp
// 0.7's HttpClient treats every status other than 200 as a failure and
// throws -32603 carrying the body (upstream issue #278, fixed after 0.7). That
// exception with an empty body is the 204, so it counts as accepted.
Verdict notification_accepted(jsonrpc::Client& client, const std::string& method,
                              const std::string& params) {
  try {
    client.CallNotification(method, parse(params));
    return pass();
  } catch (const jsonrpc::JsonRpcException& error) {
    const jsonrpc::JsonRpcException empty_body(jsonrpc::Errors::ERROR_RPC_INTERNAL_ERROR, "");
    if (error.GetCode() == empty_body.GetCode() && error.GetMessage() == empty_body.GetMessage())
      return pass("an empty reply with a status other than 200, which this HttpClient reports as " +
                  std::to_string(error.GetCode()));
    throw;
  }
}

int run_client(const std::string& url) {
  jsonrpc::HttpClient http(url);
  http.SetTimeout(10000);
  jsonrpc::Client client(http, jsonrpc::JSONRPC_CLIENT_V2);
  Checks checks;
  checks.run("subtract positional [42,23] = 19",
             [&] { return returns(client, "subtract", "[42,23]", "19"); });
  checks.run("subtract named = 19", [&] {
    return returns(client, "subtract", R"({"minuend":42,"subtrahend":23})", "19");
  });
  checks.run("sum [1,2,4] = 7", [&] { return returns(client, "sum", "[1,2,4]", "7"); });
  // A null parameter makes the client leave "params" out of the request.
  checks.run("get_data = [\"hello\",5]",
             [&] { return returns(client, "get_data", "null", R"(["hello",5])"); });
  const std::string nested = R"({"a":[1,"two",null,{"b":true,"c":[]}],"d":{"e":-1.5,"f":{}}})";
  checks.run("echo of a nested object", [&] { return returns(client, "echo", nested, nested); });
  checks.run("notification notify_hello accepted",
             [&] { return notification_accepted(client, "notify_hello", "[7]"); });
  checks.run("foobar fails with -32601",
             [&] { return fails_with(client, "foobar", "[]", -32601); });
  checks.run("subtract with three params fails with -32602",
             [&] { return fails_with(client, "subtract", "[1,2,3]", -32602); });
  if (checks.failed() > 0) {
    std::cout << checks.failed() << " check(s) failed" << std::endl;
    return 1;
  }
  std::cout << "all checks passed" << std::endl;
  return 0;
}

// echo and subtract, declared as libjson-rpc-cpp's examples declare methods:
// echo takes one string, subtract two integers, both by position.
class EchoSubtractServer : public jsonrpc::AbstractServer<EchoSubtractServer> {
 public:
  explicit EchoSubtractServer(jsonrpc::AbstractServerConnector& connector)
      : AbstractServer<EchoSubtractServer>(connector) {
    bindAndAddMethod(jsonrpc::Procedure("echo", jsonrpc::PARAMS_BY_POSITION, jsonrpc::JSON_ARRAY,
                                        "message", jsonrpc::JSON_STRING, nullptr),
                     &EchoSubtractServer::echo);
    bindAndAddMethod(jsonrpc::Procedure("subtract", jsonrpc::PARAMS_BY_POSITION,
                                        jsonrpc::JSON_INTEGER, "minuend", jsonrpc::JSON_INTEGER,
                                        "subtrahend", jsonrpc::JSON_INTEGER, nullptr),
                     &EchoSubtractServer::subtract);
  }

  void echo(const Json::Value& params, Json::Value& result) { result = params; }
  void subtract(const Json::Value& params, Json::Value& result) {
    result = params[0u].asInt() - params[1u].asInt();
  }
};

// Every bind() in this process, libmicrohttpd's included, comes here: the
// executable's definition is found before libc's. A wildcard address becomes
// loopback (127.0.0.1 or ::1); anything else is bound as asked.
extern "C" int bind(int fd, const sockaddr* address, socklen_t length) {
  sockaddr_storage rewritten{};
  if (address != nullptr && length <= sizeof rewritten) {
    std::memcpy(&rewritten, address, length);
    if (rewritten.ss_family == AF_INET) {
      auto* v4 = reinterpret_cast<sockaddr_in*>(&rewritten);
      if (v4->sin_addr.s_addr == htonl(INADDR_ANY)) v4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    } else if (rewritten.ss_family == AF_INET6) {
      auto* v6 = reinterpret_cast<sockaddr_in6*>(&rewritten);
      if (std::memcmp(&v6->sin6_addr, &in6addr_any, sizeof in6addr_any) == 0)
        v6->sin6_addr = in6addr_loopback;
    }
    address = reinterpret_cast<const sockaddr*>(&rewritten);
  }
  return static_cast<int>(::syscall(SYS_bind, fd, address, length));
}

// The port of this process's listening TCP socket, or 0 if there is none.
// HttpServer keeps its libmicrohttpd daemon private, so the port the kernel
// picked for port 0 is read back from the socket itself.
int listening_port() {
  DIR* descriptors = ::opendir("/proc/self/fd");
  if (descriptors == nullptr) return 0;
  int port = 0;
  while (dirent* entry = ::readdir(descriptors)) {
    int fd = std::atoi(entry->d_name);
    int listening = 0;
    socklen_t size = sizeof listening;
    if (fd <= 2 || ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &size) != 0 ||
        !listening)
      continue;
    sockaddr_storage address{};
    socklen_t length = sizeof address;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) continue;
    if (address.ss_family == AF_INET)
      port = ntohs(reinterpret_cast<sockaddr_in*>(&address)->sin_port);
    else if (address.ss_family == AF_INET6)
      port = ntohs(reinterpret_cast<sockaddr_in6*>(&address)->sin6_port);
    if (port != 0) break;
  }
  ::closedir(descriptors);
  return port;
}

// Blocks until SIGTERM or SIGINT arrives (they must already be blocked) or
// stdin reaches its end.
void wait_for_stop(int signals) {
  for (;;) {
    pollfd watched[2] = {{STDIN_FILENO, POLLIN, 0}, {signals, POLLIN, 0}};
    if (::poll(watched, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (watched[1].revents != 0) return;
    if (watched[0].revents != 0) {
      char discarded[256];
      ssize_t n = ::read(STDIN_FILENO, discarded, sizeof discarded);
      if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) return;
    }
  }
}

int run_server(int port, int threads) {
  // Blocked before the server starts its threads, which inherit the mask, so
  // that the signals reach only the signalfd.
  sigset_t stopping;
  sigemptyset(&stopping);
  sigaddset(&stopping, SIGTERM);
  sigaddset(&stopping, SIGINT);
  if (::pthread_sigmask(SIG_BLOCK, &stopping, nullptr) != 0) return 1;
  int signals = ::signalfd(-1, &stopping, SFD_CLOEXEC);
  if (signals < 0) {
    std::cerr << "jsonrpccpp_peer: signalfd: " << std::strerror(errno) << std::endl;
    return 1;
  }

  // libjson-rpc-cpp 0.7 has no way to choose the address; bind() above keeps
  // it on loopback.
  jsonrpc::HttpServer http(port, "", "", threads);
  EchoSubtractServer server(http);
  if (!server.StartListening()) {
    std::cerr << "jsonrpccpp_peer: HttpServer could not listen on port " << port << std::endl;
    return 1;
  }
  int bound = port != 0 ? port : listening_port();
  if (bound == 0) {
    std::cerr << "jsonrpccpp_peer: found no listening socket" << std::endl;
    server.StopListening();
    return 1;
  }
  std::cout << "ready " << bound << std::endl;
  wait_for_stop(signals);
  server.StopListening();
  ::close(signals);
  return 0;
}

int usage() {
  std::cerr << "usage: jsonrpccpp_peer client URL | jsonrpccpp_peer server PORT [THREADS]"
            << std::endl;
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3 && !(argc == 4 && std::string(argv[1]) == "server")) return usage();
  const std::string mode = argv[1];
  try {
    if (mode == "client") return run_client(argv[2]);
    if (mode == "server") return run_server(std::stoi(argv[2]), argc == 4 ? std::stoi(argv[3]) : 2);
  } catch (const std::exception& error) {
    std::cerr << "jsonrpccpp_peer: " << error.what() << std::endl;
    return 1;
  }
  return usage();
}
