#include "cli/ipc_command.hpp"

#include <fmt/core.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <list>
#include <memory>
#include <thread>
#include <vector>

#include "cli/exit_codes.hpp"
#include "conduit/error.hpp"
#include "conduit/ipc/channel.hpp"
#include "conduit/ipc/pipe.hpp"
#include "conduit/ipc/uri.hpp"

namespace conduit::cli {
namespace {

using ipc::Channel;
using ipc::ChannelListener;
using ipc::ReceiveStatus;
using Clock = std::chrono::steady_clock;

struct IpcSettings {
  std::string uri;
  std::size_t count = 1000;
  std::size_t size = 64;
  std::size_t warmup = 10;
  long timeout_ms = 10000;
  bool json = false;
};

IpcSettings settings;
CLI::App* serve_command = nullptr;
CLI::App* ping_command = nullptr;
CLI::App* table_command = nullptr;

constexpr int kMaxConcurrentClients = 256;

void print_error(std::string_view what) {
  fmt::print(stderr, "conduit: error: {}\n", what);
}

std::string self_executable() {
  std::error_code error;
  auto path = std::filesystem::read_symlink("/proc/self/exe", error);
  return error ? std::string("conduit") : path.string();
}

// ---- serve ------------------------------------------------------------------

ipc::Cancellation* stop_signal = nullptr;

extern "C" void on_stop_signal(int) {
  if (stop_signal) stop_signal->cancel();
}

void install_stop_handlers(ipc::Cancellation& cancellation) {
  stop_signal = &cancellation;
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

// Says how many replies a shared channel dropped for clients that did not
// read them: at most once a second while serving, and once more at the end.
class DroppedRepliesReport {
 public:
  explicit DroppedRepliesReport(const Channel& channel) : channel_(channel) {}

  void now_and_then() {
    if (Clock::now() - last_ >= std::chrono::seconds(1)) now();
  }

  void now() {
    std::uint64_t dropped = channel_.dropped_replies();
    if (dropped == reported_) return;
    fmt::print(stderr,
               "conduit ipc serve: {} replies dropped so far: their clients did not read them "
               "within {} ms\n",
               dropped, ipc::ChannelOptions{}.reply_timeout.count());
    reported_ = dropped;
    last_ = Clock::now();
  }

 private:
  const Channel& channel_;
  std::uint64_t reported_ = 0;
  Clock::time_point last_{};
};

// Echoes every message until the peer closes. Errors end this peer only.
void echo_peer(Channel& channel, bool shared) {
  DroppedRepliesReport dropped(channel);
  for (;;) {
    try {
      ipc::Received received = channel.receive();
      if (received.status == ReceiveStatus::closed) break;
      channel.send(received.message);
      dropped.now_and_then();
    } catch (const Cancelled&) {
      break;
    } catch (const Error& error) {
      fmt::print(stderr, "conduit ipc serve: {}\n", error.what());
      // A shared datagram channel serves every sender: one bad sender (gone,
      // oversized message) must not stop the others.
      if (!shared) break;
    }
  }
  dropped.now();
}

struct Worker {
  std::thread thread;
  std::shared_ptr<std::atomic<bool>> done;
};

int serve() {
  ipc::Cancellation cancellation;
  ipc::ChannelOptions options;
  options.cancellation = &cancellation;
  std::optional<ChannelListener> listener;
  try {
    listener.emplace(ChannelListener::listen(settings.uri, options));
  } catch (const Error& error) {
    print_error(error.what());
    return kExitUsage;
  }
  install_stop_handlers(cancellation);
  if (ipc::Uri::parse(listener->uri()).scheme != "pipe")
    fmt::print(stderr, "conduit ipc serve: listening on {}\n", listener->uri());

  std::list<Worker> workers;
  auto reap = [&](bool all) {
    for (auto it = workers.begin(); it != workers.end();) {
      if (all || it->done->load()) {
        it->thread.join();
        it = workers.erase(it);
      } else {
        ++it;
      }
    }
  };
  int exit_code = kExitOk;
  try {
    switch (listener->peer_model()) {
      case ipc::PeerModel::single: {
        // Apart from pipe:, a single channel is shared by every client
        // (unix+dgram, mq, sysvmq).
        Channel channel = *listener->accept();
        echo_peer(channel, ipc::Uri::parse(listener->uri()).scheme != "pipe");
        break;
      }
      case ipc::PeerModel::sequential:
        for (;;) {
          Channel channel = *listener->accept();
          echo_peer(channel, false);
        }
      case ipc::PeerModel::concurrent:
        for (;;) {
          std::optional<Channel> channel = listener->accept(std::chrono::seconds(1));
          reap(false);
          if (!channel) continue;
          if (workers.size() >= kMaxConcurrentClients) {
            fmt::print(stderr, "conduit ipc serve: refusing a client: {} already connected\n",
                       workers.size());
            continue;
          }
          auto done = std::make_shared<std::atomic<bool>>(false);
          workers.push_back(Worker{std::thread([peer = std::move(*channel), done]() mutable {
                                     echo_peer(peer, false);
                                     done->store(true);
                                   }),
                                   done});
        }
    }
  } catch (const Cancelled&) {
    // SIGINT or SIGTERM: a clean stop.
  } catch (const Error& error) {
    print_error(error.what());
    exit_code = kExitFailure;
  }
  cancellation.cancel();
  reap(true);
  return exit_code;
}

// ---- ping -------------------------------------------------------------------

struct PingResult {
  std::size_t count = 0;
  std::size_t size = 0;
  double p50_us = 0, p99_us = 0, max_us = 0, seconds = 0;
};

// Message i: its index in the first 8 bytes, then a pattern that depends on
// it, so a reordered, stale or corrupted echo cannot match.
void fill_message(std::vector<std::byte>& message, std::uint64_t index) {
  std::uint64_t state = index * 0x9E3779B97F4A7C15ull + 1;
  for (std::size_t i = 0; i < message.size(); ++i) {
    if (i < 8) {
      message[i] = static_cast<std::byte>(index >> (8 * i));
    } else {
      state ^= state << 13;
      state ^= state >> 7;
      state ^= state << 17;
      message[i] = static_cast<std::byte>(state);
    }
  }
}

// Receives one echo of `expected.size()` bytes; a raw channel may deliver it
// in pieces.
void receive_echo(Channel& channel, const std::vector<std::byte>& expected, bool raw,
                  std::size_t index, std::chrono::milliseconds timeout) {
  std::size_t got = 0;
  do {
    ipc::Received received = channel.receive(timeout);
    if (received.status == ReceiveStatus::timed_out)
      throw Error(fmt::format("no echo for message {} within {} ms from {}", index, timeout.count(),
                              channel.uri()));
    if (received.status == ReceiveStatus::closed)
      throw Error(
          fmt::format("{} closed the channel before echoing message {}", channel.uri(), index));
    std::span<const std::byte> piece = received.message;
    if (!raw && piece.size() != expected.size())
      throw Error(fmt::format("echo of message {} has {} bytes, sent {}", index, piece.size(),
                              expected.size()));
    if (got + piece.size() > expected.size() ||
        (!piece.empty() && std::memcmp(piece.data(), expected.data() + got, piece.size()) != 0))
      throw Error(fmt::format("echo of message {} differs from what was sent (bytes {}..{})", index,
                              got, got + piece.size()));
    got += piece.size();
  } while (got < expected.size());
}

PingResult run_ping(Channel& channel, const IpcSettings& s) {
  bool raw = ipc::Uri::parse(channel.uri()).has_option("raw");
  if (raw && s.size == 0)
    throw Error("raw channels cannot carry empty messages; use --size 1 or more");
  if (s.size > channel.max_message_size())
    throw MessageTooLarge(fmt::format("--size {} exceeds the maximum message size of {} for {}",
                                      s.size, channel.max_message_size(), channel.uri()));
  std::vector<std::byte> message(s.size);
  std::vector<double> samples;
  samples.reserve(s.count);
  std::chrono::milliseconds timeout(s.timeout_ms);
  auto started = Clock::now();
  for (std::size_t i = 0; i < s.warmup + s.count; ++i) {
    fill_message(message, i);
    auto before = Clock::now();
    channel.send(message);
    receive_echo(channel, message, raw, i, timeout);
    auto after = Clock::now();
    if (i == s.warmup) started = before;
    if (i >= s.warmup)
      samples.push_back(std::chrono::duration<double, std::micro>(after - before).count());
  }
  PingResult result;
  result.count = s.count;
  result.size = s.size;
  result.seconds = std::chrono::duration<double>(Clock::now() - started).count();
  if (!samples.empty()) {
    std::sort(samples.begin(), samples.end());
    auto at = [&](double q) {
      return samples[std::min(samples.size() - 1, static_cast<std::size_t>(q * samples.size()))];
    };
    result.p50_us = at(0.50);
    result.p99_us = at(0.99);
    result.max_us = samples.back();
  }
  return result;
}

// `pipe:` with no descriptors means "spawn an echo server as my child".
bool spawns_own_server(const std::string& text) {
  ipc::Uri uri = ipc::Uri::parse(text);
  return uri.scheme == "pipe" && uri.path.empty();
}

std::pair<Channel, std::optional<ipc::Process>> open_ping_channel(const std::string& text) {
  if (!spawns_own_server(text)) return {Channel::connect(text), std::nullopt};
  ipc::Uri uri = ipc::Uri::parse(text);
  auto [channel, child] =
      Channel::spawn({self_executable(), "ipc", "serve", uri.str()}, {}, uri.has_option("raw"));
  return {std::move(channel), std::move(child)};
}

int ping() {
  std::optional<Channel> channel;
  std::optional<ipc::Process> child;
  try {
    auto opened = open_ping_channel(settings.uri);
    channel.emplace(std::move(opened.first));
    child = std::move(opened.second);
  } catch (const Error& error) {
    print_error(error.what());
    return kExitUsage;
  }
  PingResult result;
  try {
    result = run_ping(*channel, settings);
  } catch (const MessageTooLarge& error) {
    print_error(error.what());
    return kExitUsage;
  } catch (const Error& error) {
    print_error(error.what());
    return kExitFailure;
  }
  channel.reset();  // the spawned server sees end of file and exits
  if (child) {
    auto status = child->wait_for(std::chrono::seconds(5));
    if (!status || !status->success()) {
      print_error("the spawned echo server " + (status ? status->describe() : "did not exit"));
      return kExitFailure;
    }
  }
  if (settings.json) {
    fmt::print(
        "{{\"uri\":\"{}\",\"count\":{},\"size\":{},\"p50_us\":{:.3f},\"p99_us\":{:.3f},"
        "\"max_us\":{:.3f},\"messages_per_second\":{:.1f}}}\n",
        settings.uri, result.count, result.size, result.p50_us, result.p99_us, result.max_us,
        result.seconds > 0 ? result.count / result.seconds : 0.0);
  } else {
    fmt::print("{}: {} messages of {} bytes echoed and checked\n", settings.uri, result.count,
               result.size);
    fmt::print("round trip  p50 {:.1f} us  p99 {:.1f} us  max {:.1f} us\n", result.p50_us,
               result.p99_us, result.max_us);
  }
  return kExitOk;
}

// ---- table ------------------------------------------------------------------

// Starts `conduit ipc serve uri` and waits for its "listening on" line.
std::pair<ipc::Process, std::string> start_server(const std::string& uri) {
  ipc::PipePair errors = ipc::PipePair::create();
  ipc::SpawnOptions options;
  options.argv = {self_executable(), "ipc", "serve", uri};
  options.stderr_fd = errors.write_end.get();
  ipc::Process server = ipc::Process::spawn(options);
  errors.write_end.reset();
  std::string output;
  const std::string marker = "listening on ";
  auto deadline = Clock::now() + std::chrono::seconds(10);
  for (;;) {
    auto line_end = output.find(
        '\n', output.find(marker) == std::string::npos ? output.size() : output.find(marker));
    if (output.find(marker) != std::string::npos && line_end != std::string::npos) {
      auto start = output.find(marker) + marker.size();
      return {std::move(server), output.substr(start, line_end - start)};
    }
    pollfd ready{errors.read_end.get(), POLLIN, 0};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0 || poll(&ready, 1, static_cast<int>(left.count())) <= 0)
      throw Error("the echo server for " + uri + " did not start: " + output);
    char chunk[512];
    ssize_t n = read(errors.read_end.get(), chunk, sizeof chunk);
    if (n <= 0) throw Error("the echo server for " + uri + " exited: " + output);
    output.append(chunk, static_cast<std::size_t>(n));
  }
}

int table() {
  char directory_template[] = "/tmp/conduit-table-XXXXXX";
  if (!mkdtemp(directory_template)) {
    print_error(std::string("mkdtemp: ") + std::strerror(errno));
    return kExitFailure;
  }
  std::string directory = directory_template;
  struct Row {
    std::string name, uri;
  };
  std::vector<Row> rows = {
      {"anonymous pipe", "pipe:"},
      {"FIFO", "fifo:" + directory + "/fifo"},
      {"UNIX stream", "unix:" + directory + "/stream.sock"},
      {"UNIX stream (abstract)", fmt::format("unix:@conduit-table-{}", getpid())},
      {"UNIX seqpacket", "unix+seqpacket:" + directory + "/seqpacket.sock"},
      {"UNIX datagram", "unix+dgram:" + directory + "/dgram.sock"},
      {"TCP loopback", "tcp://127.0.0.1:0"},
      {"POSIX message queue", fmt::format("mq:/conduit-table-{}", getpid())},
      {"System V message queue", "sysvmq:" + directory},
      {"shared memory (ShmRing)", fmt::format("shm:/conduit-table-{}", getpid())},
  };
  fmt::print("{} round trips of {} bytes per mechanism, every echo checked\n\n", settings.count,
             settings.size);
  fmt::print("{:<26} {:>10} {:>10} {:>10} {:>12}\n", "mechanism", "p50 us", "p99 us", "max us",
             "msgs/s");
  int exit_code = kExitOk;
  for (const Row& row : rows) {
    try {
      std::optional<ipc::Process> server;
      std::string target = row.uri;
      if (!spawns_own_server(row.uri)) {
        auto started = start_server(row.uri);
        server = std::move(started.first);
        target = started.second;
      }
      PingResult result;
      {
        auto [channel, child] = open_ping_channel(target);
        result = run_ping(channel, settings);
      }
      if (server) {
        server->kill(SIGTERM);
        server->wait_for(std::chrono::seconds(5));
      }
      fmt::print("{:<26} {:>10.1f} {:>10.1f} {:>10.1f} {:>12.0f}\n", row.name, result.p50_us,
                 result.p99_us, result.max_us, result.count / result.seconds);
    } catch (const Error& error) {
      fmt::print("{:<26} failed: {}\n", row.name, error.what());
      exit_code = kExitFailure;
    }
    std::fflush(stdout);
  }
  std::error_code ignored;
  std::filesystem::remove_all(directory, ignored);
  return exit_code;
}

}  // namespace

void add_ipc_command(CLI::App& app) {
  CLI::App* ipc = app.add_subcommand("ipc", "Echo server and pinger over any IPC mechanism");
  ipc->require_subcommand(1);
  ipc->footer(std::string("URIs:\n") + std::string(ipc::uri_forms()));

  serve_command = ipc->add_subcommand(
      "serve", "Echo every message received on URI back to its sender, until SIGINT/SIGTERM");
  serve_command->add_option("URI", settings.uri, "Where to listen")->required();
  serve_command->footer(std::string("Examples:\n"
                                    "  conduit ipc serve unix:/tmp/echo.sock\n"
                                    "  conduit ipc serve tcp://127.0.0.1:7000\n"
                                    "  conduit ipc serve 'unix:/tmp/raw.sock?raw'   "
                                    "(then: echo hi | socat - UNIX-CONNECT:/tmp/raw.sock)\n"
                                    "  conduit ipc serve fifo:/tmp/echo   (clients announce "
                                    "their own FIFO pair in /tmp/echo)\n"
                                    "unix+dgram: and mq: answer every client through one "
                                    "channel: a reply its client has no room for within 100 ms "
                                    "is dropped, and the count is printed on stderr. What killed "
                                    "clients leave (FIFO pairs, mq: reply queues) is removed, and "
                                    "a server takes over the shm: segment or sysvmq: queue of a "
                                    "killed one.\n"
                                    "URIs:\n") +
                        std::string(ipc::uri_forms()));

  ping_command = ipc->add_subcommand(
      "ping", "Send messages to an echo server, check every echo, print round-trip latency");
  ping_command->add_option("URI", settings.uri, "The echo server; pipe: spawns one as a child")
      ->required();
  ping_command->add_option("--count", settings.count, "Messages to send")->capture_default_str();
  ping_command->add_option("--size", settings.size, "Bytes per message")->capture_default_str();
  ping_command->add_option("--warmup", settings.warmup, "Messages sent first and not timed")
      ->capture_default_str();
  ping_command->add_option("--timeout", settings.timeout_ms, "Milliseconds to wait for each echo")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  ping_command->add_flag("--json", settings.json, "Print the result as one JSON object");
  ping_command->footer(std::string("Examples:\n"
                                   "  conduit ipc ping pipe: --count 10000\n"
                                   "  conduit ipc ping unix:/tmp/echo.sock --size 65536\n"
                                   "  conduit ipc ping tcp://[::1]:7000 --json\n"
                                   "Exit code: 0 every echo matched; 1 a mismatch or failure while "
                                   "running; 2 could not start (bad URI, nothing listening, no "
                                   "permission).\nURIs:\n") +
                       std::string(ipc::uri_forms()));

  table_command = ipc->add_subcommand(
      "table", "Ping an echo server over every mechanism and print the results side by side");
  table_command->add_option("--count", settings.count, "Messages per mechanism")
      ->capture_default_str();
  table_command->add_option("--size", settings.size, "Bytes per message")->capture_default_str();
}

int run_ipc_command(CLI::App&) {
  if (serve_command->parsed()) return serve();
  if (ping_command->parsed()) return ping();
  if (table_command->parsed()) return table();
  return kExitUsage;
}

}  // namespace conduit::cli
