#include "cli/rpc_command.hpp"

#include <fmt/core.h>
#include <signal.h>
#include <unistd.h>

#include <thread>

#include "cli/exit_codes.hpp"
#include "conduit/error.hpp"
#include "conduit/rpc/jsonrpc_client.hpp"
#include "conduit/rpc/server.hpp"
#include "conduit/rpc/service.hpp"
#include "cli/grpc_call.hpp"
#include "rpc/services/echo_service.hpp"
#include "rpc/services/grpc_health.hpp"
#include "rpc/services/grpc_reflection.hpp"
#include "rpc/services/grpc_testing.hpp"
#include "rpc/services/jsonrpc_examples.hpp"

namespace conduit::cli {

namespace {

struct RpcSettings {
  std::vector<std::string> listen;
  std::size_t threads = 0;
  std::size_t max_connections = 1024;
  std::size_t max_message_bytes = 16 << 20;
  std::size_t grpc_max_message_bytes = 4 << 20;
  long request_timeout_ms = 10'000;
  long grpc_keepalive_time_ms = 2 * 3600 * 1000;
  long grpc_keepalive_timeout_ms = 20'000;
  long grpc_min_ping_interval_ms = 300'000;
  long grace_ms = 5'000;
  std::string uri, method, params;
  bool notify = false;
  bool list = false;
  long timeout_ms = 30'000;
};

RpcSettings settings;
CLI::App* serve_command = nullptr;
CLI::App* call_command = nullptr;

void print_error(std::string_view what) {
  fmt::print(stderr, "conduit: error: {}\n", what);
}

// SIGINT and SIGTERM end the server gracefully: a thread waits for them, so
// that shutdown runs in ordinary code, not in a signal handler.
class StopSignals {
 public:
  // SIGUSR1 only wakes the waiting thread when this object goes away.
  StopSignals() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    sigaddset(&set_, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set_, nullptr);  // inherited by every thread started later
  }
  void on_signal(std::function<void()> action) {
    thread_ = std::thread([this, action = std::move(action)] {
      int signal = 0;
      sigwait(&set_, &signal);
      if (signal != SIGUSR1) action();
    });
  }
  ~StopSignals() {
    if (thread_.joinable()) {
      pthread_kill(thread_.native_handle(), SIGUSR1);
      thread_.join();
    }
  }

 private:
  sigset_t set_;
  std::thread thread_;
};

int serve() {
  rpc::ServiceTable services;
  rpc::add_jsonrpc_examples(services);
  rpc::add_grpc_testing(services);
  rpc::add_grpc_health(services);
  rpc::add_grpc_reflection(services);
  rpc::add_echo_service(services);
  rpc::ServerOptions options;
  options.threads = settings.threads;
  options.max_connections = settings.max_connections;
  options.max_message_bytes = settings.max_message_bytes;
  options.grpc_max_message_bytes = settings.grpc_max_message_bytes;
  options.request_timeout = std::chrono::milliseconds(settings.request_timeout_ms);
  options.grpc_keepalive_time = std::chrono::milliseconds(settings.grpc_keepalive_time_ms);
  options.grpc_keepalive_timeout = std::chrono::milliseconds(settings.grpc_keepalive_timeout_ms);
  options.grpc_min_ping_interval = std::chrono::milliseconds(settings.grpc_min_ping_interval_ms);
  StopSignals signals;
  rpc::Server server(services, options);
  bool stdio = false;
  try {
    for (const std::string& uri : settings.listen) {
      if (uri == "stdio") {
        stdio = true;
        continue;
      }
      std::string bound = server.listen(uri);
      fmt::print(stderr, "conduit serve: listening on {}\n", bound);
    }
  } catch (const Error& error) {
    print_error(error.what());
    return kExitUsage;
  }
  std::fflush(stderr);
  signals.on_signal([&] { server.shutdown(std::chrono::milliseconds(settings.grace_ms)); });
  server.start();
  if (stdio) {
    // Serves the parent on stdin/stdout; its closing stdin ends the server.
    server.serve_stdio(STDIN_FILENO, STDOUT_FILENO);
    if (settings.listen.size() == 1) server.shutdown(std::chrono::milliseconds(settings.grace_ms));
  }
  server.wait();
  return kExitOk;
}

int call() {
  if (is_grpc_uri(settings.uri)) {
    return grpc_call(settings.uri, settings.method, settings.params, settings.list,
                     std::chrono::milliseconds(settings.timeout_ms));
  }
  if (settings.list) {
    print_error("--list asks a gRPC server's reflection: give a grpc://, grpc+unix: or grpc+shm: URI");
    return kExitUsage;
  }
  if (settings.method.empty()) {
    print_error("name the method to call");
    return kExitUsage;
  }
  try {
    rpc::JsonRpcClient client(settings.uri, std::chrono::milliseconds(settings.timeout_ms));
    if (settings.notify) {
      client.notify(settings.method, settings.params);
      return kExitOk;
    }
    fmt::print("{}\n", client.call(settings.method, settings.params));
    return kExitOk;
  } catch (const rpc::JsonRpcError& error) {
    fmt::print("{}\n", error.error_json());
    return kExitFailure;
  } catch (const InvalidUri& error) {
    print_error(error.what());
    return kExitUsage;
  } catch (const SystemError& error) {
    print_error(error.what());
    return kExitUsage;
  } catch (const Error& error) {
    print_error(error.what());
    return kExitFailure;
  }
}

}  // namespace

void add_rpc_commands(CLI::App& app) {
  serve_command = app.add_subcommand(
      "serve",
      "Serve the interop methods over JSON-RPC 2.0 and gRPC on every listener, until "
      "SIGINT/SIGTERM");
  serve_command->add_option("--listen", settings.listen,
                            "tcp://127.0.0.1:PORT, unix:/path, unix:@name, shm:/path (shared\n"
                            "memory, handshake on a UNIX socket at /path), or stdio (repeatable)")
      ->required();
  serve_command->add_option("--threads", settings.threads, "Threads (default: one per CPU)");
  serve_command->add_option("--max-connections", settings.max_connections, "Connections at once")
      ->capture_default_str();
  serve_command->add_option("--max-message-size", settings.max_message_bytes,
                            "Largest request in bytes (JSON-RPC)")
      ->capture_default_str();
  serve_command->add_option("--grpc-max-message-size", settings.grpc_max_message_bytes,
                            "Largest gRPC request message in bytes")
      ->capture_default_str();
  serve_command->add_option("--grpc-keepalive-time", settings.grpc_keepalive_time_ms,
                            "Milliseconds of silence after which a gRPC connection is sent a PING")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  serve_command->add_option("--grpc-keepalive-timeout", settings.grpc_keepalive_timeout_ms,
                            "Milliseconds a keepalive PING's ACK has before the connection closes")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  serve_command->add_option("--grpc-min-ping-interval", settings.grpc_min_ping_interval_ms,
                            "Milliseconds a gRPC client's PINGs must be apart while no response\n"
                            "data flows; after 2 strikes, GOAWAY ENHANCE_YOUR_CALM (too_many_pings)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  serve_command->add_option("--request-timeout", settings.request_timeout_ms,
                            "Milliseconds a started request has to arrive whole")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  serve_command->add_option("--grace", settings.grace_ms,
                            "Milliseconds calls in flight get to finish on SIGTERM")
      ->capture_default_str();
  serve_command->footer(
      "Methods: subtract, sum, get_data, notify_hello, notify_sum, update, echo (the JSON-RPC 2.0\n"
      "specification's examples); gRPC also has grpc.testing.TestService, grpc.health.v1.Health,\n"
      "server reflection and conduit.interop.Echo. One port speaks HTTP/1.1 (POST /jsonrpc), one\n"
      "JSON text per line, Content-Length framing and gRPC (HTTP/2), told apart by the first bytes;\n"
      "a shm: listener takes JSON-RPC texts and gRPC.\n"
      "Examples:\n"
      "  conduit serve --listen tcp://127.0.0.1:8080 --listen unix:/tmp/rpc.sock\n"
      "  conduit call http://127.0.0.1:8080/jsonrpc subtract '[42,23]'\n"
      "  conduit serve --listen shm:/tmp/rpc-shm.sock &\n"
      "  conduit call grpc+shm:/tmp/rpc-shm.sock grpc.testing.TestService/UnaryCall '{}'");

  call_command = app.add_subcommand(
      "call", "Call a JSON-RPC or gRPC method and print its result as JSON");
  call_command->add_option("URI", settings.uri,
                           "http://HOST:PORT/jsonrpc, tcp://HOST:PORT or unix:/path (JSON-RPC);\n"
                           "grpc://HOST:PORT, grpc+unix:/path or grpc+shm:/path (gRPC, via\n"
                           "server reflection)")
      ->required();
  call_command->add_option("METHOD", settings.method,
                           "The method (gRPC: package.Service/Method)");
  call_command->add_option("PARAMS", settings.params,
                           "Params: a JSON array or object (gRPC: the request in proto3 JSON;\n"
                           "a client stream without PARAMS reads one request per stdin line)");
  call_command->add_flag("--notify", settings.notify, "Send a notification (no reply)");
  call_command->add_flag("--list", settings.list,
                         "gRPC: list the server's services and methods (server reflection)");
  call_command->add_option("--timeout", settings.timeout_ms, "Milliseconds to wait for the reply")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  call_command->footer(
      "Examples:\n"
      "  conduit call http://127.0.0.1:8080/jsonrpc subtract '[42,23]'\n"
      "  conduit call grpc://127.0.0.1:8080 grpc.testing.TestService/UnaryCall '{\"responseSize\": 10}'\n"
      "  conduit call --list grpc://127.0.0.1:8080\n"
      "Exit code: 0 the result was printed; 1 the server answered with an error (printed as\n"
      "JSON; gRPC: the status on stderr) or no reply came; 2 the server could not be reached or\n"
      "the URI is wrong.");
}

std::optional<int> run_rpc_commands() {
  if (serve_command->parsed()) return serve();
  if (call_command->parsed()) return call();
  return std::nullopt;
}

}  // namespace conduit::cli
