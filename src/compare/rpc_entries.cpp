// The RPC rows of the comparison: each registered protocol's echo, called
// through conduit's client of that protocol on a conduit server in another
// process, over each transport the protocol names; beside it, a raw
// ping-pong of the same bytes over the same transport, so the ratio is what
// the protocol costs.
#include <fcntl.h>
#include <fmt/core.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

#include "compare/registry.hpp"
#include "conduit/error.hpp"
#include "conduit/rpc/server.hpp"
#include "rpc/protocol.hpp"
#include "interop/echo_service.hpp"
#include "interop/jsonrpc_examples.hpp"

namespace conduit::compare {

namespace {

using Clock = std::chrono::steady_clock;

// The raw loop beside a protocol's route, by where its server listens.
struct RawLoop {
  const char* listens_on;  // "tcp", "unix", "shm"
  const char* name;        // what the raw side does
};

constexpr RawLoop kRawLoops[] = {
    {"tcp", "write/read on a loopback connection"},
    {"unix", "write/read on an accepted UNIX connection"},
    {"shm", "busy-polled slots, copy in, read in place"},
};

void write_fully(int fd, std::string_view text) {
  while (!text.empty()) {
    ssize_t n = ::write(fd, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      throw Error(std::string("write to the peer's control pipe: ") + std::strerror(errno));
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

// The client side: each message goes through the protocol's echo.
class ClientEndpoint : public Endpoint {
 public:
  ClientEndpoint(std::unique_ptr<rpc::EchoClient> client, int quit_fd)
      : client_(std::move(client)), quit_fd_(quit_fd) {}
  std::span<std::byte> prepare(std::size_t size) override { return out_.take(size); }
  void send(std::size_t size) override {
    std::span<const std::byte> message{out_.data(), size};
    if (Pattern::index_of(message) == Pattern::kQuit) {
      ::close(quit_fd_);  // the server's process ends
      quit_fd_ = -1;
      return;
    }
    pending_ = size;
  }
  std::span<const std::byte> receive() override {
    std::span<std::byte> into = in_.take(pending_);
    client_->echo({out_.data(), pending_}, into);
    return into;
  }
  const rpc::EchoClient& client() const { return *client_; }

 private:
  std::unique_ptr<rpc::EchoClient> client_;
  int quit_fd_;
  std::size_t pending_ = 0;
  MessageBuffer out_, in_;
};

// A conduit server in the peer, reached over `transport` with `protocol`'s
// client.
class RpcLink : public Link {
 public:
  RpcLink(const rpc::Protocol& protocol, const rpc::CompareRoute& route, const RunContext& context)
      : protocol_(protocol), route_(route) {
    static std::atomic<int> counter{0};
    path_ =
        fmt::format("{}/rpc-{}-{}.sock", context.scratch.directory, route.listens_on, counter++);
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
    const std::string& on = route_.listens_on;
    std::string bound = server->listen(on == "unix"  ? "unix:" + path_
                                       : on == "shm" ? "shm+unix:" + path_
                                                     : "tcp://127.0.0.1:0");
    server->start();
    write_fully(ready_[1], bound + "\n");
    return std::make_unique<ServerEndpoint>(std::move(services), std::move(server), quit_[0]);
  }

  std::unique_ptr<Endpoint> driver() override {
    ::close(ready_[1]);
    ::close(quit_[0]);
    ready_[1] = quit_[0] = -1;
    const std::string uri = route_.client_uri(read_line(ready_[0]));
    int quit = quit_[1];
    quit_[1] = -1;  // the endpoint closes it
    return std::make_unique<ClientEndpoint>(protocol_.make_echo_client(uri), quit);
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

  const rpc::Protocol& protocol_;
  const rpc::CompareRoute& route_;
  std::string path_;
  int ready_[2] = {-1, -1};
  int quit_[2] = {-1, -1};
};

std::unique_ptr<Link> raw_link_for(const std::string& listens_on, std::size_t size,
                                   const RunContext& context) {
  if (listens_on == "unix") return raw_unix_connection_link(context.scratch, SOCK_STREAM, size);
  if (listens_on == "shm") return raw_shared_slots_link(size, true);
  return raw_tcp_link(size);
}

const char* raw_loop_name(const std::string& listens_on) {
  for (const RawLoop& loop : kRawLoops)
    if (listens_on == loop.listens_on) return loop.name;
  return "";
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
  throughput.megabytes_per_second =
      throughput.messages_per_second * static_cast<double>(size) / 1e6;
  return throughput;
}

// A row of echo calls of `protocol` over `route` ("<protocol>-<route key>"):
// latency and throughput beside the raw loop of the same transport, and the
// bytes each 64 B call puts on the wire.
Entry echo_call_entry(const rpc::Protocol& protocol, const rpc::CompareRoute& route) {
  Entry entry;
  entry.family = "RPC";
  entry.key = std::string(protocol.name()) + "-" + route.key;
  entry.name = std::string(protocol.title());
  entry.transport = route.transport;
  entry.raw_name = raw_loop_name(route.listens_on);
  auto make = [&protocol, &route](Side side, std::size_t size, const RunContext& context) {
    return [&protocol, &route, side, size, &context]() -> std::unique_ptr<Link> {
      if (side == Side::raw) return raw_link_for(route.listens_on, size, context);
      return std::make_unique<RpcLink>(protocol, route, context);
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
  entry.extra = [&protocol, &route](const RunContext& context) {
    std::map<std::string, double> figures;
    constexpr std::size_t kSize = 64;
    constexpr int kCalls = 100;
    Pattern pattern(kSize);
    Outcome<Latency> outcome = in_two_processes<Latency>(
        [&] { return std::make_unique<RpcLink>(protocol, route, context); },
        [](Endpoint& peer) { echo_until_quit(peer); },
        [&](Endpoint& driver) {
          auto& client = static_cast<ClientEndpoint&>(driver).client();
          for (int i = 0; i < kCalls; ++i) {
            pattern.build(driver.prepare(kSize), static_cast<std::uint64_t>(i));
            driver.send(kSize);
            driver.receive();
          }
          if (client.bytes_on_wire() > 0)
            figures["bytes_on_wire_per_call_64B"] =
                static_cast<double>(client.bytes_on_wire()) / kCalls;
          send_quit(driver, pattern, kSize);
          return Latency{};
        },
        context.placement, context.watchdog);
    if (!outcome.error.empty()) figures.clear();
    return figures;
  };
  return entry;
}

}  // namespace

void add_rpc_entries(Registry& registry) {
  // The routes live as long as the protocol table: the entries keep
  // references to them.
  static const std::vector<std::pair<const rpc::Protocol*, std::vector<rpc::CompareRoute>>> routes =
      [] {
        std::vector<std::pair<const rpc::Protocol*, std::vector<rpc::CompareRoute>>> all;
        for (const auto& protocol : rpc::protocols())
          all.emplace_back(protocol.get(), protocol->compare_routes());
        return all;
      }();
  for (const auto& [protocol, its_routes] : routes)
    for (const rpc::CompareRoute& route : its_routes)
      registry.add(echo_call_entry(*protocol, route));
}

}  // namespace conduit::compare
