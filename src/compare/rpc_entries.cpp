// The RPC rows of the comparison: JSON-RPC's echo method, called through
// conduit's client on a `conduit` server in another process, over each
// transport; beside it, a raw ping-pong of the same bytes over the same
// transport, so the ratio is what the protocol costs.
#include <fcntl.h>
#include <fmt/core.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>

#include "compare/registry.hpp"
#include "conduit/error.hpp"
#include "conduit/rpc/grpc_channel.hpp"
#include "conduit/rpc/jsonrpc_client.hpp"
#include "conduit/rpc/server.hpp"
#include "rpc/services/echo_service.hpp"
#include "rpc/services/jsonrpc_examples.hpp"

#include <google/protobuf/wrappers.pb.h>

namespace conduit::compare {

namespace {

using Clock = std::chrono::steady_clock;

// How the client reaches the server.
struct Transport {
  const char* key;        // "http", "tcp", "unix", "shm"
  const char* name;       // for the transport column
  const char* raw_name;   // what the raw side does
};

constexpr Transport kTransports[] = {
    {"http", "HTTP/1.1 over TCP", "write/read on a loopback connection"},
    {"tcp", "TCP, one text per line", "write/read on a loopback connection"},
    {"unix", "UNIX socket, one text per line", "write/read on an accepted UNIX connection"},
    {"shm", "shared memory", "busy-polled slots, copy in, read in place"},
};

// The two hex digits of each byte, and the value of each hex digit (-1 for
// what is not one): the client's hex step costs a table look-up a byte.
constexpr auto kHexPairs = [] {
  constexpr char kHex[] = "0123456789abcdef";
  std::array<std::array<char, 2>, 256> pairs{};
  for (unsigned b = 0; b < 256; ++b) pairs[b] = {kHex[b >> 4], kHex[b & 15]};
  return pairs;
}();
constexpr auto kHexValues = [] {
  std::array<std::int8_t, 256> values{};
  values.fill(-1);
  for (int d = 0; d < 10; ++d) values['0' + d] = static_cast<std::int8_t>(d);
  for (int d = 0; d < 6; ++d) values['a' + d] = static_cast<std::int8_t>(10 + d);
  return values;
}();

void write_fully(int fd, std::string_view text) {
  while (!text.empty()) {
    ssize_t n = ::write(fd, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw Error(std::string("write to the peer's control pipe: ") + std::strerror(errno));
    text.remove_prefix(static_cast<std::size_t>(n));
  }
}

// The server side, in the forked peer: serves until the driver closes the
// control pipe, then reports a quit message so the harness ends the peer.
class ServerEndpoint : public Endpoint {
 public:
  ServerEndpoint(std::unique_ptr<rpc::ServiceTable> services, std::unique_ptr<rpc::Server> server,
                 int quit_fd)
      : services_(std::move(services)), server_(std::move(server)), quit_fd_(quit_fd) {}
  std::span<std::byte> prepare(std::size_t size) override { return unused_.take(size); }
  void send(std::size_t) override {}
  std::span<const std::byte> receive() override {
    char byte;
    while (::read(quit_fd_, &byte, 1) < 0 && errno == EINTR) {
    }
    std::span<std::byte> quit = quit_.take(Pattern::kMinimumSize);
    std::uint64_t index = Pattern::kQuit;
    std::memcpy(quit.data(), &index, sizeof index);
    return quit;
  }

 private:
  std::unique_ptr<rpc::ServiceTable> services_;
  std::unique_ptr<rpc::Server> server_;
  int quit_fd_;
  MessageBuffer unused_, quit_;
};

// The client side: each message goes out as echo's one string param (hex,
// since the messages are bytes) and comes back the same way.
class ClientEndpoint : public Endpoint {
 public:
  ClientEndpoint(std::string uri, int quit_fd) : client_(uri, std::chrono::seconds(20)), quit_fd_(quit_fd) {}
  std::span<std::byte> prepare(std::size_t size) override { return out_.take(size); }
  void send(std::size_t size) override {
    std::span<const std::byte> message{out_.data(), size};
    if (Pattern::index_of(message) == Pattern::kQuit) {
      ::close(quit_fd_);  // the server's process ends
      quit_fd_ = -1;
      return;
    }
    // ["hex"], written into place: two digits a byte from one table.
    params_.resize(size * 2 + 4);
    char* out = params_.data();
    out[0] = '[';
    out[1] = '"';
    for (std::size_t i = 0; i < size; ++i)
      std::memcpy(out + 2 + 2 * i, kHexPairs[std::to_integer<unsigned>(message[i])].data(), 2);
    out[size * 2 + 2] = '"';
    out[size * 2 + 3] = ']';
    pending_ = size;
  }
  std::span<const std::byte> receive() override {
    std::string result = client_.call("echo", params_);
    // The echo of ["hex"] is ["hex"].
    if (result.size() != pending_ * 2 + 4 || result.compare(0, 2, "[\"") != 0)
      throw Error("the echo's result is not the params sent: " + result.substr(0, 80));
    std::span<std::byte> into = in_.take(pending_);
    const auto* digits = reinterpret_cast<const unsigned char*>(result.data() + 2);
    int bad = 0;  // negative once a digit is not hex
    for (std::size_t i = 0; i < pending_; ++i) {
      const int high = kHexValues[digits[2 * i]];
      const int low = kHexValues[digits[2 * i + 1]];
      bad |= high | low;
      into[i] = static_cast<std::byte>(high << 4 | low);
    }
    if (bad < 0) throw Error("the echo's result is not hex");
    return into;
  }
  const rpc::JsonRpcClient& client() const { return client_; }

 private:
  rpc::JsonRpcClient client_;
  int quit_fd_;
  std::string params_;
  std::size_t pending_ = 0;
  MessageBuffer out_, in_;
};

// The gRPC client side: each message is the bytes of a BytesValue sent to
// conduit.interop.Echo/bytes, and comes back the same way.
class GrpcClientEndpoint : public Endpoint {
 public:
  GrpcClientEndpoint(std::string target, int quit_fd)
      : channel_(target, std::chrono::seconds(20)), quit_fd_(quit_fd) {}
  std::span<std::byte> prepare(std::size_t size) override { return out_.take(size); }
  void send(std::size_t size) override {
    std::span<const std::byte> message{out_.data(), size};
    if (Pattern::index_of(message) == Pattern::kQuit) {
      ::close(quit_fd_);  // the server's process ends
      quit_fd_ = -1;
      return;
    }
    google::protobuf::BytesValue request;
    request.set_value(reinterpret_cast<const char*>(message.data()), size);
    request_ = request.SerializeAsString();
    pending_ = size;
  }
  std::span<const std::byte> receive() override {
    rpc::Status status = channel_.call_raw("/conduit.interop.Echo/bytes", request_, response_,
                                           std::chrono::seconds(20));
    if (!status.ok()) throw Error("the gRPC echo failed: " + status.to_string());
    google::protobuf::BytesValue echoed;
    if (!echoed.ParseFromString(response_) || echoed.value().size() != pending_)
      throw Error("the gRPC echo's response is not the message sent");
    std::span<std::byte> into = in_.take(pending_);
    std::memcpy(into.data(), echoed.value().data(), pending_);
    return into;
  }

 private:
  rpc::GrpcChannel channel_;
  int quit_fd_;
  std::string request_, response_;
  std::size_t pending_ = 0;
  MessageBuffer out_, in_;
};

enum class Protocol { jsonrpc, grpc };

// A conduit server in the peer, reached over `transport` with `protocol`'s
// client.
class RpcLink : public Link {
 public:
  RpcLink(const Transport& transport, const RunContext& context, std::size_t size,
              Protocol protocol = Protocol::jsonrpc)
      : transport_(transport), size_(size), protocol_(protocol) {
    static std::atomic<int> counter{0};
    path_ = fmt::format("{}/rpc-{}-{}.sock", context.scratch.directory, transport.key, counter++);
    if (::pipe2(ready_, O_CLOEXEC) != 0 || ::pipe2(quit_, O_CLOEXEC) != 0)
      throw Error(std::string("pipe2: ") + std::strerror(errno));
  }
  ~RpcLink() override {
    for (int fd : {ready_[0], ready_[1], quit_[0], quit_[1]})
      if (fd >= 0) ::close(fd);
  }

  std::unique_ptr<Endpoint> peer() override {
    ::close(ready_[0]);
    ::close(quit_[1]);
    ready_[0] = quit_[1] = -1;
    auto services = std::make_unique<rpc::ServiceTable>();
    rpc::add_jsonrpc_examples(*services);
    rpc::add_echo_service(*services);
    rpc::ServerOptions options;
    options.threads = 1;
    options.max_message_bytes = 64 << 20;
    auto server = std::make_unique<rpc::Server>(*services, options);
    std::string key = transport_.key;
    std::string bound = server->listen(key == "unix"  ? "unix:" + path_
                                       : key == "shm" ? "shm:" + path_
                                                      : "tcp://127.0.0.1:0");
    server->start();
    write_fully(ready_[1], bound + "\n");
    return std::make_unique<ServerEndpoint>(std::move(services), std::move(server), quit_[0]);
  }

  std::unique_ptr<Endpoint> driver() override {
    ::close(ready_[1]);
    ::close(quit_[0]);
    ready_[1] = quit_[0] = -1;
    std::string bound = read_line(ready_[0]);
    std::string uri = bound;
    if (std::string(transport_.key) == "http") uri = "http://" + bound.substr(6) + "/jsonrpc";
    int quit = quit_[1];
    quit_[1] = -1;  // the endpoint closes it
    if (protocol_ == Protocol::grpc) {
      // "tcp://HOST:PORT" → "HOST:PORT"; "unix:/path" and "shm:/path" as they are.
      return std::make_unique<GrpcClientEndpoint>(
          bound.rfind("tcp://", 0) == 0 ? bound.substr(6) : bound, quit);
    }
    return std::make_unique<ClientEndpoint>(uri, quit);
  }

 private:
  static std::string read_line(int fd) {
    std::string line;
    auto deadline = Clock::now() + std::chrono::seconds(10);
    while (line.empty() || line.back() != '\n') {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      pollfd ready{fd, POLLIN, 0};
      if (left.count() <= 0 || ::poll(&ready, 1, static_cast<int>(left.count())) == 0)
        throw Error("the RPC server did not start within 10 s");
      char c;
      ssize_t n = ::read(fd, &c, 1);
      if (n == 0) throw Error("the RPC server's process ended before it listened");
      if (n > 0) line += c;
    }
    line.pop_back();
    return line;
  }

  const Transport& transport_;
  std::size_t size_;
  Protocol protocol_;
  std::string path_;
  int ready_[2] = {-1, -1};
  int quit_[2] = {-1, -1};
};

std::unique_ptr<Link> raw_link_for(const Transport& transport, std::size_t size,
                                   const RunContext& context) {
  std::string key = transport.key;
  if (key == "unix") return raw_unix_connection_link(context.scratch, SOCK_STREAM, size);
  if (key == "shm") return raw_shared_slots_link(size, true);
  return raw_tcp_link(size);
}

// Calls (or raw round trips) per second, one after another on one
// connection, each echo checked.
Throughput call_rate(Endpoint& endpoint, const Pattern& pattern, std::size_t size,
                     const LoopSettings& settings) {
  std::uint64_t index = 0;
  auto call = [&] {
    pattern.build(endpoint.prepare(size), index);
    endpoint.send(size);
    std::span<const std::byte> echo = endpoint.receive();
    if (!pattern.matches(echo, index, size))
      throw Error(fmt::format("call {}: the echo differs from the message sent", index));
    endpoint.release();
    ++index;
  };
  for (auto warm = Clock::now() + settings.warmup; Clock::now() < warm;) call();
  const std::uint64_t first = index;
  const auto start = Clock::now();
  const auto end = start + settings.duration;
  do call();
  while (Clock::now() < end);
  Throughput throughput;
  throughput.size = size;
  throughput.messages = index - first;
  throughput.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  throughput.messages_per_second = static_cast<double>(throughput.messages) / throughput.seconds;
  throughput.megabytes_per_second = throughput.messages_per_second * static_cast<double>(size) / 1e6;
  return throughput;
}

// A row of echo calls of `protocol` over `transport` ("KEY_PREFIX-tcp"):
// latency and throughput beside the raw loop of the same transport.
Entry echo_call_entry(const std::string& key_prefix, const std::string& name,
                      const Transport& transport, Protocol protocol) {
  Entry entry;
  entry.family = "RPC";
  entry.key = key_prefix + "-" + transport.key;
  entry.name = name;
  entry.transport = transport.name;
  entry.raw_name = transport.raw_name;
  auto make = [&transport, protocol](Side side, std::size_t size, const RunContext& context) {
    return [&transport, protocol, side, size, &context]() -> std::unique_ptr<Link> {
      if (side == Side::raw) return raw_link_for(transport, size, context);
      return std::make_unique<RpcLink>(transport, context, size, protocol);
    };
  };
  entry.latency = [make](Side side, std::size_t size, const RunContext& context) {
    return echo_latency(make(side, size, context), size, context);
  };
  entry.throughput = [make](Side side, std::size_t size, const RunContext& context) {
    Pattern pattern(size);
    return in_two_processes<Throughput>(
        make(side, size, context), [](Endpoint& peer) { echo_until_quit(peer); },
        [&](Endpoint& driver) {
          Throughput throughput = call_rate(driver, pattern, size, context.loop);
          send_quit(driver, pattern, size);
          return throughput;
        },
        context.placement, context.watchdog);
  };
  return entry;
}

Entry jsonrpc_entry(const Transport& transport) {
  Entry entry = echo_call_entry("jsonrpc", "JSON-RPC 2.0", transport, Protocol::jsonrpc);
  entry.extra = [&transport](const RunContext& context) {
    std::map<std::string, double> figures;
    constexpr std::size_t kSize = 64;
    constexpr int kCalls = 100;
    Pattern pattern(kSize);
    Outcome<Latency> outcome = in_two_processes<Latency>(
        [&] { return std::make_unique<RpcLink>(transport, context, kSize); },
        [](Endpoint& peer) { echo_until_quit(peer); },
        [&](Endpoint& driver) {
          auto& client = static_cast<ClientEndpoint&>(driver).client();
          for (int i = 0; i < kCalls; ++i) {
            pattern.build(driver.prepare(kSize), static_cast<std::uint64_t>(i));
            driver.send(kSize);
            driver.receive();
          }
          figures["bytes_on_wire_per_call_64B"] =
              static_cast<double>(client.bytes_sent() + client.bytes_received()) / kCalls;
          send_quit(driver, pattern, kSize);
          return Latency{};
        },
        context.placement, context.watchdog);
    if (!outcome.error.empty()) figures.clear();
    return figures;
  };
  return entry;
}

constexpr Transport kGrpcTransports[] = {
    {"tcp", "HTTP/2 over TCP (h2c)", "write/read on a loopback connection"},
    {"unix", "HTTP/2 over a UNIX socket", "write/read on an accepted UNIX connection"},
    {"shm", "HTTP/2 over shared memory", "busy-polled slots, copy in, read in place"},
};

// gRPC: conduit.interop.Echo/bytes through GrpcChannel.
Entry grpc_entry(const Transport& transport) {
  return echo_call_entry("grpc", "gRPC", transport, Protocol::grpc);
}

}  // namespace

void add_rpc_entries(Registry& registry) {
  for (const Transport& transport : kTransports) registry.add(jsonrpc_entry(transport));
  for (const Transport& transport : kGrpcTransports) registry.add(grpc_entry(transport));
}

}  // namespace conduit::compare
