#include "cli/rpc_command.hpp"

#include <fmt/core.h>
#include <signal.h>
#include <unistd.h>

#include <iostream>
#include <map>
#include <thread>

#include "cli/exit_codes.hpp"
#include "conduit/error.hpp"
#include "conduit/rpc/grpc_health.hpp"
#include "conduit/rpc/grpc_reflection.hpp"
#include "conduit/rpc/server.hpp"
#include "conduit/rpc/service.hpp"
#include "interop/echo_service.hpp"
#include "interop/grpc_testing.hpp"
#include "interop/jsonrpc_examples.hpp"
#include "rpc/protocol.hpp"
#include "rpc/transports/address.hpp"

namespace conduit::cli {

namespace {

const rpc::ServerOptions kDefaults;

struct RpcSettings {
  std::vector<std::string> listen;
  std::size_t threads = kDefaults.threads;
  std::size_t max_connections = kDefaults.max_connections;
  std::size_t max_calls_per_connection = kDefaults.max_calls_per_connection;
  std::size_t max_message_bytes = kDefaults.max_message_bytes;
  std::size_t shm_ring_bytes = kDefaults.shm_ring_bytes;
  long handshake_timeout_ms = kDefaults.handshake_timeout.count();
  long idle_timeout_ms = kDefaults.idle_timeout.count();
  long request_timeout_ms = kDefaults.request_timeout.count();
  long call_timeout_ms = kDefaults.call_timeout.count();
  std::string socket_mode = fmt::format("{:o}", kDefaults.unix_socket_mode);
  std::size_t max_streaming_calls = kDefaults.max_streaming_calls;
  std::size_t max_queued_reply_bytes = kDefaults.max_queued_reply_bytes;
  // Each protocol's flags (ServeFlag), by name, as given.
  std::map<std::string, std::int64_t> protocol_flags;
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
  while (what.ends_with('\n')) what.remove_suffix(1);  // lists of forms end with one
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
  options.max_calls_per_connection = settings.max_calls_per_connection;
  options.max_message_bytes = settings.max_message_bytes;
  options.shm_ring_bytes = settings.shm_ring_bytes;
  options.handshake_timeout = std::chrono::milliseconds(settings.handshake_timeout_ms);
  options.idle_timeout = std::chrono::milliseconds(settings.idle_timeout_ms);
  options.max_queued_reply_bytes = settings.max_queued_reply_bytes;
  options.request_timeout = std::chrono::milliseconds(settings.request_timeout_ms);
  options.call_timeout = std::chrono::milliseconds(settings.call_timeout_ms);
  options.unix_socket_mode = static_cast<mode_t>(std::stoul(settings.socket_mode, nullptr, 8));
  options.log = [](std::string_view line) { fmt::print(stderr, "conduit serve: {}\n", line); };
  options.max_streaming_calls = settings.max_streaming_calls;
  for (const auto& protocol : rpc::protocols())
    for (const rpc::ServeFlag& flag : protocol->serve_flags())
      if (auto given = settings.protocol_flags.find(flag.name);
          given != settings.protocol_flags.end())
        flag.set(options, given->second);
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
  const rpc::Protocol* protocol = rpc::protocol_for_uri(settings.uri);
  if (!protocol) {
    print_error("no protocol takes '" + settings.uri + "'; conduit call reaches:\n" +
                rpc::client_uri_forms());
    return kExitUsage;
  }
  rpc::CommandLineCall request;
  request.uri = settings.uri;
  request.method = settings.method;
  request.params = settings.params;
  request.list = settings.list;
  request.notify = settings.notify;
  request.timeout = std::chrono::milliseconds(settings.timeout_ms);
  return static_cast<int>(
      protocol->call_from_command_line(request, std::cin, std::cout, std::cerr));
}

// What `conduit serve --help` says of the protocols, from the table.
std::string serve_footer() {
  std::string text =
      "Protocols, told apart by a connection's first bytes, all on every listener:\n";
  for (const auto& protocol : rpc::protocols()) text += "  " + protocol->serve_summary() + "\n";
  text +=
      "Methods: subtract, sum, get_data, notify_hello, notify_sum, update, echo (the JSON-RPC 2.0\n"
      "specification's examples), grpc.testing.TestService, grpc.health.v1.Health, server\n"
      "reflection and conduit.interop.Echo, each reachable from every protocol.\n"
      "Examples:\n"
      "  conduit serve --listen tcp://127.0.0.1:8080 --listen unix:/tmp/rpc.sock\n"
      "  conduit call http://127.0.0.1:8080/jsonrpc subtract '[42,23]'\n"
      "  conduit serve --listen shm+unix:/tmp/rpc-shm.sock &\n"
      "  conduit call grpc+shm+unix:/tmp/rpc-shm.sock grpc.testing.TestService/UnaryCall '{}'";
  return text;
}

// Adds a flag of `conduit serve` that sets `value`, its default shown.
template <typename T>
void add_serve_option(const std::string& name, T& value, const std::string& help,
                      const CLI::Validator& check) {
  serve_command->add_option(name, value, help)->capture_default_str()->check(check);
}

// Power-of-two ring sizes, as ShmRing takes them.
const CLI::Validator kRingSize(
    [](const std::string& text) -> std::string {
      std::size_t bytes = 0;
      if (!CLI::detail::lexical_cast(text, bytes) || bytes < 4096 || (bytes & (bytes - 1)) != 0)
        return "--shm-ring-size must be a power of two of at least 4096, not " + text;
      return "";
    },
    "POWER OF 2");

// Permission bits that leave the owner read and write permission.
const CLI::Validator kSocketMode(
    [](const std::string& text) -> std::string {
      const bool octal = !text.empty() && text.size() <= 4 &&
                         text.find_first_not_of("01234567") == std::string::npos;
      if (!octal || (std::stoul(text, nullptr, 8) & 0600) != 0600)
        return "--socket-mode takes octal permission bits that leave the owner read and write "
               "permission, such as 600, 660 or 666, not " +
               text;
      return "";
    },
    "OCTAL");

}  // namespace

void add_rpc_commands(CLI::App& app) {
  std::string titles;
  for (const auto& protocol : rpc::protocols())
    titles += (titles.empty() ? "" : ", ") + std::string(protocol->title());
  serve_command = app.add_subcommand("serve", "Serve the interop methods over " + titles +
                                                  " on every listener, until SIGINT/SIGTERM");
  serve_command
      ->add_option("--listen", settings.listen,
                   "Where to listen (repeatable):\n" +
                       rpc::transport::address_forms(rpc::transport::Role::server))
      ->required();
  serve_command->add_option("--threads", settings.threads, "Threads (default: one per CPU)");
  add_serve_option("--max-connections", settings.max_connections,
                   "Connections at once; at the limit the one idle longest is closed to make\n"
                   "room, and a new one is turned away only when all are busy",
                   CLI::PositiveNumber);
  add_serve_option("--max-calls-per-connection", settings.max_calls_per_connection,
                   "Calls one connection may have running at once (JSON-RPC over lines and\n"
                   "Content-Length framing; HTTP/1.1 runs one at a time)",
                   CLI::PositiveNumber);
  serve_command
      ->add_option("--max-message-size", settings.max_message_bytes,
                   "Largest request in bytes (an HTTP body, a JSON text, a framed message)")
      ->capture_default_str();
  add_serve_option("--shm-ring-size", settings.shm_ring_bytes,
                   "Bytes of each of the two rings a shm+unix: client gets (a power of two,\n"
                   "at least 4096; a message may take half)",
                   kRingSize);
  serve_command
      ->add_option("--max-queued-reply-size", settings.max_queued_reply_bytes,
                   "Bytes of replies a connection may have waiting for its client to read\n"
                   "them where replies come in any order (JSON-RPC over lines and\n"
                   "Content-Length); past it, no further request of it is read")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  for (const auto& protocol : rpc::protocols()) {
    for (const rpc::ServeFlag& flag : protocol->serve_flags()) {
      auto* option =
          serve_command
              ->add_option_function<std::int64_t>(
                  flag.name,
                  [name = flag.name](std::int64_t value) { settings.protocol_flags[name] = value; },
                  flag.help)
              ->default_str(std::to_string(flag.get(kDefaults)));
      option->check(flag.check == rpc::ServeFlag::Check::positive ? CLI::PositiveNumber
                                                                  : CLI::NonNegativeNumber);
    }
  }
  // The timeouts, in milliseconds.
  const struct {
    const char* name;
    long* value;
    const char* help;
    const CLI::Validator* check;
  } timeouts[] = {
      {"--handshake-timeout", &settings.handshake_timeout_ms,
       "Milliseconds a new connection has to bring its first whole call before it\n"
       "is closed (0: only the idle and request timeouts bound it)",
       &CLI::NonNegativeNumber},
      {"--idle-timeout", &settings.idle_timeout_ms,
       "Milliseconds a connection may wait between calls before it is closed",
       &CLI::PositiveNumber},
      {"--request-timeout", &settings.request_timeout_ms,
       "Milliseconds a started request has to arrive whole", &CLI::PositiveNumber},
      {"--call-timeout", &settings.call_timeout_ms,
       "Milliseconds any call may run, in every protocol, before it ends\n"
       "DEADLINE_EXCEEDED (0: no limit but the client's own deadline)",
       &CLI::NonNegativeNumber},
  };
  for (const auto& timeout : timeouts)
    add_serve_option(timeout.name, *timeout.value, timeout.help, *timeout.check);
  add_serve_option("--socket-mode", settings.socket_mode,
                   "Permissions of unix: and shm+unix: socket files, in octal, whatever the\n"
                   "umask: 600 this user only, 660 its group too, 666 anyone. An abstract\n"
                   "socket (unix:@name) admits peers by the same bits, from their credentials",
                   kSocketMode);
  serve_command
      ->add_option("--max-streaming-calls", settings.max_streaming_calls,
                   "Streaming calls running at once, each on a thread of its own; one\n"
                   "more ends RESOURCE_EXHAUSTED")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  serve_command
      ->add_option("--grace", settings.grace_ms,
                   "Milliseconds calls in flight get to finish on SIGTERM")
      ->capture_default_str();
  serve_command->footer(serve_footer());

  call_command =
      app.add_subcommand("call", "Call a method over any protocol and print its result as JSON");
  call_command
      ->add_option("URI", settings.uri,
                   "The server, in one of these forms:\n" + rpc::client_uri_forms())
      ->required();
  call_command->add_option("METHOD", settings.method, "The method (gRPC: package.Service/Method)");
  call_command->add_option("PARAMS", settings.params,
                           "Params: a JSON array or object (gRPC: the request in proto3 JSON;\n"
                           "a client stream without PARAMS reads one request per stdin line)");
  call_command->add_flag("--notify", settings.notify, "Send a notification (no reply)");
  call_command->add_flag("--list", settings.list,
                         "List the server's services and methods (gRPC: server reflection)");
  call_command->add_option("--timeout", settings.timeout_ms, "Milliseconds to wait for the reply")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  call_command->footer(
      "Examples:\n"
      "  conduit call http://127.0.0.1:8080/jsonrpc subtract '[42,23]'\n"
      "  conduit call grpc://127.0.0.1:8080 grpc.testing.TestService/UnaryCall '{\"responseSize\": "
      "10}'\n"
      "  conduit call --list grpc://127.0.0.1:8080\n"
      "Exit code: 0 the result was printed; 1 the server answered with an error (printed as\n"
      "JSON; gRPC: the status on stderr) or no reply came; 2 nothing was called: a local\n"
      "mistake (the URI, the method's name, params that are not JSON or do not fit the\n"
      "method) or no server to reach.");
}

std::optional<int> run_rpc_commands() {
  if (serve_command->parsed()) return serve();
  if (call_command->parsed()) return call();
  return std::nullopt;
}

}  // namespace conduit::cli
