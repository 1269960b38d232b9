// Unary calls of grpc.testing.TestService/UnaryCall made as fast as a client
// can make them, by one of two clients: conduit's (conduit::rpc::GrpcChannel)
// or gRPC C++'s own (libgrpc++, its asynchronous completion-queue API). The
// client side of bench/grpc_bench.py: it runs this program against each server
// and compares the two clients on the same server and the same shape.
//
//   grpc_client_load --client conduit|grpc --target 127.0.0.1:PORT
//       [--connections 1] [--in-flight 1] [--threads 1] [--size 16]
//       [--seconds 5] [--warmup 1] [--timeout-ms 5000]
//
// Shape: `connections` channels, each its own HTTP/2 connection (conduit: one
// GrpcChannel each; gRPC C++: one channel each, with a local subchannel pool
// and an argument of its own so that none shares another's connection),
// `in-flight` calls kept going on each, by `threads` threads. Call slot k
// belongs to channel k / in-flight and to thread k % threads, so with more
// than one thread every channel is shared by several of them.
//
//   conduit, one call per thread   each thread makes blocking calls
//                                  (call_raw) one after another
//   conduit, more calls per thread start_raw; its completion, which runs on
//                                  the channel's I/O thread, hands the slot
//                                  back to its thread, which checks the
//                                  answer and starts the slot's next call
//   gRPC C++                       one CompletionQueue per thread; the thread
//                                  takes its events (AsyncNext), checks the
//                                  answer and starts the slot's next call
//
// Both send the same request (SimpleRequest{response_size: size, payload of
// size zero bytes}) and check every answer (a payload of size bytes) and
// every Status: a failed call, a wrong answer, or no call ending within the
// timeout ends the run with an error (exit status 1), and so does a run that
// has not ended long after it should have. The first `warmup` seconds are not
// counted; then for `seconds`:
//
//   calls_per_second   calls that ended in the window / its length
//   cpu_us_per_call    this process's user + system time (getrusage, every
//                      thread) over the window / the calls that ended in it
//   p50_us, p99_us     each call's time from its start to its answer, as the
//                      thread that made it saw it
//
// printed as one JSON line on stdout, with the number of threads the process
// had and of its TCP connections to the target.
#include <grpcpp/grpcpp.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "conduit/rpc/grpc_channel.hpp"
#include "grpc/testing/messages.pb.h"
#include "grpc/testing/test.grpc.pb.h"

namespace {

namespace testing = ::grpc::testing;
using Clock = std::chrono::steady_clock;

constexpr const char* kPath = "/grpc.testing.TestService/UnaryCall";

struct Options {
  std::string client;
  std::string target;
  int connections = 1;
  int in_flight = 1;
  int threads = 1;
  int size = 16;
  double seconds = 5;
  double warmup = 1;
  std::chrono::milliseconds timeout{5000};
};

[[noreturn]] void fail(const std::string& why) {
  std::fprintf(stderr, "grpc_client_load: %s\n", why.c_str());
  std::fflush(stderr);
  std::_Exit(1);
}

// What every thread shares: whether the window is open, whether to stop.
struct Run {
  std::atomic<bool> recording{false};
  std::atomic<bool> stopping{false};
};

// What one thread counted inside the window.
struct Tally {
  std::vector<std::int64_t> latencies_ns;
  void record(const Run& run, Clock::time_point started) {
    if (run.recording.load(std::memory_order_relaxed))
      latencies_ns.push_back(
          std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - started).count());
  }
};

// How long a thread waits for any of its calls to end before it gives up:
// past the calls' own deadline, which should have ended them.
std::chrono::milliseconds patience(const Options& options) {
  return options.timeout + std::chrono::seconds(5);
}

// ---- conduit ----

// A slot's call handed back from a channel's I/O thread to the thread that
// owns the slot.
struct ConduitSlot;

class Inbox {
 public:
  void push(ConduitSlot* slot) {
    bool wake = false;
    {
      std::lock_guard lock(mutex_);
      ready_.push_back(slot);
      wake = waiting_;
    }
    if (wake) ready_signal_.notify_one();
  }
  // Swaps what has arrived into `out`; false when nothing came by `deadline`.
  bool take(std::vector<ConduitSlot*>& out, Clock::time_point deadline) {
    std::unique_lock lock(mutex_);
    while (ready_.empty()) {
      waiting_ = true;
      const auto woke = ready_signal_.wait_until(lock, deadline);
      waiting_ = false;
      if (woke == std::cv_status::timeout && ready_.empty()) return false;
    }
    out.clear();
    out.swap(ready_);
    return true;
  }

 private:
  std::mutex mutex_;
  std::condition_variable ready_signal_;
  std::vector<ConduitSlot*> ready_;
  bool waiting_ = false;
};

struct ConduitSlot {
  conduit::rpc::GrpcChannel* channel = nullptr;
  Inbox* inbox = nullptr;
  std::vector<std::string> responses;
  conduit::rpc::Status status;
  Clock::time_point started;
};

void check_conduit(const conduit::rpc::Status& status, const std::string* response,
                   std::size_t responses, const std::string& expected) {
  if (!status.ok()) fail("conduit's call failed: " + status.to_string());
  if (responses != 1)
    fail("conduit's call answered with " + std::to_string(responses) + " messages, not 1");
  if (*response != expected)
    fail("conduit's call answered " + std::to_string(response->size()) +
         " bytes, not the expected SimpleResponse of " + std::to_string(expected.size()));
}

void run_conduit(const Options& options, Run& run, std::vector<Tally>& tallies,
                 const std::string& request, const std::string& expected,
                 std::vector<std::thread>& threads,
                 std::vector<std::unique_ptr<conduit::rpc::GrpcChannel>>& channels,
                 std::vector<std::unique_ptr<Inbox>>& inboxes,
                 std::vector<std::unique_ptr<ConduitSlot>>& slots) {
  for (int i = 0; i < options.connections; ++i)
    channels.push_back(
        std::make_unique<conduit::rpc::GrpcChannel>(options.target, options.timeout));
  const int total = options.connections * options.in_flight;
  if (total == options.threads) {
    // One call per thread: blocking calls.
    for (int t = 0; t < options.threads; ++t) {
      conduit::rpc::GrpcChannel* channel = channels[t / options.in_flight].get();
      threads.emplace_back([&, t, channel] {
        Tally& tally = tallies[t];
        std::string response;
        while (!run.stopping.load(std::memory_order_relaxed)) {
          const auto started = Clock::now();
          response.clear();
          const conduit::rpc::Status status =
              channel->call_raw(kPath, request, response, options.timeout);
          check_conduit(status, &response, 1, expected);
          tally.record(run, started);
        }
      });
    }
    return;
  }
  for (int t = 0; t < options.threads; ++t) inboxes.push_back(std::make_unique<Inbox>());
  for (int k = 0; k < total; ++k) {
    auto slot = std::make_unique<ConduitSlot>();
    slot->channel = channels[k / options.in_flight].get();
    slot->inbox = inboxes[k % options.threads].get();
    slots.push_back(std::move(slot));
  }
  conduit::rpc::CallOptions call_options;
  call_options.timeout = options.timeout;
  for (int t = 0; t < options.threads; ++t) {
    threads.emplace_back([&, t, total, call_options] {
      Tally& tally = tallies[t];
      Inbox& inbox = *inboxes[t];
      auto start = [&](ConduitSlot& slot) {
        slot.responses.clear();
        slot.started = Clock::now();
        slot.channel->start_raw(kPath, {request}, slot.responses, call_options,
                                [&slot](conduit::rpc::Status status) {
                                  slot.status = std::move(status);
                                  slot.inbox->push(&slot);
                                });
      };
      int in_flight = 0;
      for (int k = t; k < total; k += options.threads) {
        start(*slots[k]);
        ++in_flight;
      }
      std::vector<ConduitSlot*> ended;
      while (in_flight > 0) {
        if (!inbox.take(ended, Clock::now() + patience(options)))
          fail("no conduit call ended within " + std::to_string(patience(options).count()) + " ms");
        for (ConduitSlot* slot : ended) {
          check_conduit(slot->status, slot->responses.empty() ? nullptr : &slot->responses[0],
                        slot->responses.size(), expected);
          tally.record(run, slot->started);
          if (run.stopping.load(std::memory_order_relaxed))
            --in_flight;
          else
            start(*slot);
        }
      }
    });
  }
}

// ---- gRPC C++ ----

struct GrpcSlot {
  testing::TestService::Stub* stub = nullptr;
  std::optional<grpc::ClientContext> context;
  testing::SimpleResponse response;
  grpc::Status status;
  std::unique_ptr<grpc::ClientAsyncResponseReader<testing::SimpleResponse>> reader;
  Clock::time_point started;
};

void run_grpc(const Options& options, Run& run, std::vector<Tally>& tallies,
              const testing::SimpleRequest& request, std::vector<std::thread>& threads,
              std::vector<std::shared_ptr<grpc::Channel>>& channels,
              std::vector<std::unique_ptr<testing::TestService::Stub>>& stubs,
              std::vector<std::unique_ptr<grpc::CompletionQueue>>& queues,
              std::vector<std::unique_ptr<GrpcSlot>>& slots) {
  for (int i = 0; i < options.connections; ++i) {
    grpc::ChannelArguments arguments;
    // A pool of subchannels of its own, and an argument no other channel has:
    // each channel opens its own connection.
    arguments.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    arguments.SetInt("grpc_client_load.channel", i);
    channels.push_back(
        grpc::CreateCustomChannel(options.target, grpc::InsecureChannelCredentials(), arguments));
    stubs.push_back(testing::TestService::NewStub(channels.back()));
  }
  const int total = options.connections * options.in_flight;
  for (int t = 0; t < options.threads; ++t)
    queues.push_back(std::make_unique<grpc::CompletionQueue>());
  for (int k = 0; k < total; ++k) {
    auto slot = std::make_unique<GrpcSlot>();
    slot->stub = stubs[k / options.in_flight].get();
    slots.push_back(std::move(slot));
  }
  for (int t = 0; t < options.threads; ++t) {
    threads.emplace_back([&, t, total] {
      Tally& tally = tallies[t];
      grpc::CompletionQueue& queue = *queues[t];
      auto start = [&](GrpcSlot& slot) {
        slot.response.Clear();
        slot.context.emplace();
        slot.started = Clock::now();
        slot.context->set_deadline(std::chrono::system_clock::now() + options.timeout);
        slot.reader = slot.stub->AsyncUnaryCall(&*slot.context, request, &queue);
        slot.reader->Finish(&slot.response, &slot.status, &slot);
      };
      int in_flight = 0;
      for (int k = t; k < total; k += options.threads) {
        start(*slots[k]);
        ++in_flight;
      }
      while (in_flight > 0) {
        void* tag = nullptr;
        bool ok = false;
        const auto next =
            queue.AsyncNext(&tag, &ok, std::chrono::system_clock::now() + patience(options));
        if (next == grpc::CompletionQueue::TIMEOUT)
          fail("no gRPC C++ call ended within " + std::to_string(patience(options).count()) +
               " ms");
        if (next != grpc::CompletionQueue::GOT_EVENT) fail("the completion queue shut down");
        GrpcSlot& slot = *static_cast<GrpcSlot*>(tag);
        if (!ok) fail("gRPC C++'s Finish event came with ok = false");
        if (!slot.status.ok())
          fail("gRPC C++'s call failed: " + std::to_string(slot.status.error_code()) + " " +
               slot.status.error_message());
        if (slot.response.payload().body().size() != static_cast<std::size_t>(options.size))
          fail("gRPC C++'s call answered a payload of " +
               std::to_string(slot.response.payload().body().size()) + " bytes, not " +
               std::to_string(options.size));
        tally.record(run, slot.started);
        if (run.stopping.load(std::memory_order_relaxed))
          --in_flight;
        else
          start(slot);
      }
      queue.Shutdown();
      void* tag = nullptr;
      bool ok = false;
      while (queue.Next(&tag, &ok)) {
      }
    });
  }
}

// ---- the process's own figures ----

double cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& time) { return time.tv_sec + time.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

int thread_count() {
  int count = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/task"))
    ++count;
  return count;
}

// This process's established TCP connections to `port`: the sockets among
// its descriptors that /proc/net/tcp{,6} lists with that remote port.
int connections_to(int port) {
  std::set<std::string> inodes;
  for (const char* table : {"/proc/self/net/tcp", "/proc/self/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // the header
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
      fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >>
          timeout >> inode;
      const auto colon = remote.rfind(':');
      if (colon == std::string::npos || state != "01") continue;
      if (std::stoi(remote.substr(colon + 1), nullptr, 16) == port) inodes.insert(inode);
    }
  }
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code error;
    const std::string link = std::filesystem::read_symlink(entry.path(), error).string();
    if (error || !link.starts_with("socket:[")) continue;
    if (inodes.count(link.substr(8, link.size() - 9))) ++count;
  }
  return count;
}

int usage() {
  std::fprintf(stderr,
               "usage: grpc_client_load --client conduit|grpc --target 127.0.0.1:PORT\n"
               "           [--connections N] [--in-flight N] [--threads N] [--size BYTES]\n"
               "           [--seconds S] [--warmup S] [--timeout-ms MS]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) return usage();
    const std::string value = argv[++i];
    try {
      if (flag == "--client")
        options.client = value;
      else if (flag == "--target")
        options.target = value;
      else if (flag == "--connections")
        options.connections = std::stoi(value);
      else if (flag == "--in-flight")
        options.in_flight = std::stoi(value);
      else if (flag == "--threads")
        options.threads = std::stoi(value);
      else if (flag == "--size")
        options.size = std::stoi(value);
      else if (flag == "--seconds")
        options.seconds = std::stod(value);
      else if (flag == "--warmup")
        options.warmup = std::stod(value);
      else if (flag == "--timeout-ms")
        options.timeout = std::chrono::milliseconds(std::stoi(value));
      else
        return usage();
    } catch (const std::exception&) {
      return usage();
    }
  }
  const int total = options.connections * options.in_flight;
  if ((options.client != "conduit" && options.client != "grpc") || options.target.empty() ||
      options.connections < 1 || options.in_flight < 1 || options.threads < 1 ||
      options.threads > total || options.size < 0 || options.seconds <= 0 || options.warmup < 0 ||
      options.timeout.count() <= 0)
    return usage();
  const auto colon = options.target.rfind(':');
  if (colon == std::string::npos) return usage();
  const int port = std::atoi(options.target.c_str() + colon + 1);

  testing::SimpleRequest request;
  request.set_response_size(options.size);
  request.mutable_payload()->mutable_body()->assign(static_cast<std::size_t>(options.size), '\0');
  testing::SimpleResponse answer;
  answer.mutable_payload()->mutable_body()->assign(static_cast<std::size_t>(options.size), '\0');
  const std::string request_bytes = request.SerializeAsString();
  const std::string expected = answer.SerializeAsString();

  // A run that has not ended long after it should have ends with an error.
  const auto started = Clock::now();
  const auto give_up_at = started +
                          std::chrono::duration<double>(options.warmup + options.seconds) +
                          2 * patience(options) + std::chrono::seconds(10);
  std::mutex watch_mutex;
  std::condition_variable watch_signal;
  bool finished = false;
  std::thread watchdog([&] {
    std::unique_lock lock(watch_mutex);
    if (!watch_signal.wait_until(lock, give_up_at, [&] { return finished; }))
      fail("the run did not end in time (a call that never returned?)");
  });

  Run run;
  std::vector<Tally> tallies(static_cast<std::size_t>(options.threads));
  for (Tally& tally : tallies) tally.latencies_ns.reserve(1 << 18);
  std::vector<std::thread> threads;
  // Destroyed in reverse: the channels (whose I/O threads run the
  // completions) before the inboxes and slots those completions touch.
  std::vector<std::unique_ptr<Inbox>> inboxes;
  std::vector<std::unique_ptr<ConduitSlot>> conduit_slots;
  std::vector<std::unique_ptr<conduit::rpc::GrpcChannel>> conduit_channels;
  std::vector<std::shared_ptr<grpc::Channel>> grpc_channels;
  std::vector<std::unique_ptr<testing::TestService::Stub>> stubs;
  std::vector<std::unique_ptr<grpc::CompletionQueue>> queues;
  std::vector<std::unique_ptr<GrpcSlot>> grpc_slots;
  std::string mode;
  if (options.client == "conduit") {
    mode = total == options.threads ? "GrpcChannel::call_raw, blocking"
                                    : "GrpcChannel::start_raw, completions handed to threads";
    run_conduit(options, run, tallies, request_bytes, expected, threads, conduit_channels, inboxes,
                conduit_slots);
  } else {
    mode = "async stub, CompletionQueue per thread";
    run_grpc(options, run, tallies, request, threads, grpc_channels, stubs, queues, grpc_slots);
  }

  std::this_thread::sleep_for(std::chrono::duration<double>(options.warmup));
  const int connections = connections_to(port);
  const int process_threads = thread_count();
  const double cpu_before = cpu_seconds();
  const auto window_start = Clock::now();
  run.recording.store(true);
  std::this_thread::sleep_for(std::chrono::duration<double>(options.seconds));
  run.recording.store(false);
  const auto window_end = Clock::now();
  const double cpu_after = cpu_seconds();
  run.stopping.store(true);
  for (std::thread& thread : threads) thread.join();

  std::vector<std::int64_t> latencies;
  for (const Tally& tally : tallies)
    latencies.insert(latencies.end(), tally.latencies_ns.begin(), tally.latencies_ns.end());
  if (latencies.empty()) fail("no call ended in the measured window");
  std::sort(latencies.begin(), latencies.end());
  auto percentile = [&](double fraction) {
    const auto rank = static_cast<std::size_t>(
        std::max(1.0, std::ceil(static_cast<double>(latencies.size()) * fraction)));
    return static_cast<double>(latencies[rank - 1]) / 1e3;
  };
  const double window = std::chrono::duration<double>(window_end - window_start).count();
  const double calls = static_cast<double>(latencies.size());
  std::printf(
      "{\"client\": \"%s\", \"mode\": \"%s\", \"target\": \"%s\", \"size\": %d, "
      "\"connections\": %d, \"in_flight\": %d, \"threads\": %d, \"seconds\": %.3f, "
      "\"calls\": %zu, \"calls_per_second\": %.1f, \"cpu_us_per_call\": %.3f, "
      "\"cpu_seconds\": %.3f, \"p50_us\": %.1f, \"p99_us\": %.1f, \"tcp_connections\": %d, "
      "\"process_threads\": %d}\n",
      options.client.c_str(), mode.c_str(), options.target.c_str(), options.size,
      options.connections, options.in_flight, options.threads, window, latencies.size(),
      calls / window, (cpu_after - cpu_before) / calls * 1e6, cpu_after - cpu_before,
      percentile(0.50), percentile(0.99), connections, process_threads);
  std::fflush(stdout);

  // Torn down under the watchdog too; the channels first, as their I/O
  // threads run the completions that touch the slots and inboxes.
  conduit_channels.clear();
  conduit_slots.clear();
  inboxes.clear();
  grpc_slots.clear();
  queues.clear();
  stubs.clear();
  grpc_channels.clear();
  {
    std::lock_guard lock(watch_mutex);
    finished = true;
  }
  watch_signal.notify_one();
  watchdog.join();
  return 0;
}
