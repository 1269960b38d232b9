// grpc.testing.TestService/UnaryCall served by gRPC C++ (Debian's libgrpc++),
// the way that library serves fastest: the asynchronous completion-queue
// API, one completion queue, one thread taking its events. The answer is
// what conduit's TestService answers (src/interop/grpc_testing.cpp),
// so that both servers do the same work per call: a payload of
// `response_size` zero bytes, metadata echoed as the interop tests ask, the
// status a request asks for.
//
//   grpc_cpp_server --listen ADDRESS [--listen ADDRESS...]
//       ADDRESS: 127.0.0.1:PORT (0: a port the kernel picks) or unix:/path
//       prints "grpc_cpp_server: listening on ADDRESS" on stderr for each,
//       the port filled in; stops on SIGTERM or SIGINT
//
// bench/grpc_bench.py runs it beside `conduit serve --threads 1`.
//
// Threads. Only this program's main thread serves calls: it takes every
// event of the one completion queue, and no synchronous or callback service
// is registered, so the server starts no pool of its own. gRPC's core still
// starts helper threads when the library initialises, and no public option
// of libgrpc++ 1.51 stops them: ResourceQuota::SetMaxThreads and
// SetSyncServerOption bound the synchronous server's pool only,
// GRPC_POLL_STRATEGY picks how pollers wait (not how many threads there
// are), grpc.so_reuseport lets processes share a port. Seen in /proc/PID/task
// with 1.51.1: "default-executor" and "resolver-executor" (the executors),
// "grpc_global_timer" (the timer manager, which starts more of them, 3 after
// a few seconds of load, when one leaves to run timers), two "event_engine"
// and one "timer_manager" (the default event engine's pool and timer). They
// run timers (BDP pings, deadlines) and otherwise sleep; the benchmark pins
// the whole process to one CPU and counts the CPU time of all its threads.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "grpc/testing/messages.pb.h"
#include "grpc/testing/test.grpc.pb.h"

namespace {

namespace testing = ::grpc::testing;

// Calls the server can take at once before it asks for more: above the
// 8 connections x 16 streams the benchmark opens. Calls beyond it wait in
// gRPC's core until a slot is free again; none is refused.
constexpr int kSlots = 256;

std::atomic<bool> stop_requested{false};

void request_stop(int) {
  stop_requested.store(true);
}

// What conduit's unary_call does, in libgrpc++'s terms. Not checked:
// expect_compressed, as libgrpc++ has no public way to tell whether a
// request came compressed (its own interop server uses a test-only
// inspector); the benchmark never sets it.
grpc::Status unary_call(grpc::ServerContext& context, const testing::SimpleRequest& request,
                        testing::SimpleResponse& response) {
  for (const auto& [key, value] : context.client_metadata()) {
    if (key == "x-grpc-test-echo-initial")
      context.AddInitialMetadata(std::string(key.data(), key.size()),
                                 std::string(value.data(), value.size()));
    if (key == "x-grpc-test-echo-trailing-bin")
      context.AddTrailingMetadata(std::string(key.data(), key.size()),
                                  std::string(value.data(), value.size()));
  }
  if (request.has_response_status() && request.response_status().code() != 0) {
    return {static_cast<grpc::StatusCode>(request.response_status().code()),
            request.response_status().message()};
  }
  if (request.response_compressed().value()) context.set_compression_algorithm(GRPC_COMPRESS_GZIP);
  if (request.response_size() < 0)
    return {grpc::StatusCode::INVALID_ARGUMENT, "response_size is negative"};
  testing::Payload& payload = *response.mutable_payload();
  payload.set_type(testing::COMPRESSABLE);
  payload.mutable_body()->assign(static_cast<std::size_t>(request.response_size()), '\0');
  return grpc::Status::OK;
}

// One call at a time: asked for from the server, answered, asked for again.
// Its address is the tag of each of its events on the completion queue.
class UnaryCallSlot {
 public:
  UnaryCallSlot(testing::TestService::AsyncService& service, grpc::ServerCompletionQueue& queue)
      : service_(service), queue_(queue) {
    ask();
  }

  // An event of this slot came: `ok` as the completion queue gave it.
  // After the server's shutdown began, the slot only lets its call go.
  void proceed(bool ok, bool shutting_down) {
    if (waiting_for_call_ && ok) {
      waiting_for_call_ = false;
      grpc::Status status = unary_call(*context_, request_, response_);
      if (status.ok())
        writer_->Finish(response_, status, this);
      else
        writer_->FinishWithError(status, this);
      return;
    }
    // The answer went (or the call ended): the slot is free again.
    if (!shutting_down) ask();
  }

 private:
  void ask() {
    context_.emplace();
    writer_.emplace(&*context_);
    request_.Clear();
    response_.Clear();
    waiting_for_call_ = true;
    service_.RequestUnaryCall(&*context_, &request_, &*writer_, &queue_, &queue_, this);
  }

  testing::TestService::AsyncService& service_;
  grpc::ServerCompletionQueue& queue_;
  std::optional<grpc::ServerContext> context_;
  std::optional<grpc::ServerAsyncResponseWriter<testing::SimpleResponse>> writer_;
  testing::SimpleRequest request_;
  testing::SimpleResponse response_;
  bool waiting_for_call_ = false;
};

int usage() {
  std::fprintf(stderr,
               "usage: grpc_cpp_server --listen 127.0.0.1:PORT|unix:/path [--listen ...]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> addresses;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--listen") == 0 && i + 1 < argc)
      addresses.emplace_back(argv[++i]);
    else
      return usage();
  }
  if (addresses.empty()) return usage();

  // The handler only raises a flag: the loop below sees it within
  // kStopCheck and shuts the server down in ordinary code.
  struct sigaction action {};
  action.sa_handler = request_stop;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);

  testing::TestService::AsyncService service;
  grpc::ServerBuilder builder;
  std::vector<int> ports(addresses.size(), 0);
  for (std::size_t i = 0; i < addresses.size(); ++i)
    builder.AddListeningPort(addresses[i], grpc::InsecureServerCredentials(), &ports[i]);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::ServerCompletionQueue> queue = builder.AddCompletionQueue();
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) {
    std::fprintf(stderr, "grpc_cpp_server: could not start the server\n");
    return 1;
  }
  for (std::size_t i = 0; i < addresses.size(); ++i) {
    if (ports[i] == 0) {
      std::fprintf(stderr, "grpc_cpp_server: could not listen on %s\n", addresses[i].c_str());
      return 1;
    }
    std::string bound = addresses[i];
    if (bound.rfind("unix:", 0) != 0)
      bound = bound.substr(0, bound.rfind(':') + 1) + std::to_string(ports[i]);
    std::fprintf(stderr, "grpc_cpp_server: listening on %s\n", bound.c_str());
  }
  std::fflush(stderr);

  std::vector<std::unique_ptr<UnaryCallSlot>> slots;
  for (int i = 0; i < kSlots; ++i)
    slots.push_back(std::make_unique<UnaryCallSlot>(service, *queue));

  constexpr auto kStopCheck = std::chrono::milliseconds(200);
  bool shutting_down = false;
  // Server::Shutdown waits until the calls in flight have ended, which needs
  // this loop to go on taking their events: it runs on a thread of its own,
  // which exists only from the stop on.
  std::thread stopper;
  for (;;) {
    void* tag = nullptr;
    bool ok = false;
    const auto next = queue->AsyncNext(&tag, &ok, std::chrono::system_clock::now() + kStopCheck);
    if (next == grpc::CompletionQueue::SHUTDOWN) break;
    if (next == grpc::CompletionQueue::GOT_EVENT)
      static_cast<UnaryCallSlot*>(tag)->proceed(ok, shutting_down);
    if (stop_requested.load() && !shutting_down) {
      shutting_down = true;
      stopper = std::thread([&server, &queue] {
        // Calls in flight are cancelled at once; the queue then reports
        // SHUTDOWN once the events of every slot have come.
        server->Shutdown(std::chrono::system_clock::now());
        queue->Shutdown();
      });
    }
  }
  stopper.join();
  slots.clear();
  for (const std::string& address : addresses)
    if (address.rfind("unix:", 0) == 0) ::unlink(address.c_str() + 5);
  return 0;
}
