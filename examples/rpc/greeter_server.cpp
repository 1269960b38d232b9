// Serves example.Greeter (greeter.proto) over gRPC and JSON-RPC on every
// URI given, with server reflection on, until SIGINT or SIGTERM:
//
//   greeter_server tcp://127.0.0.1:50051 unix:/tmp/greeter.sock
//
// It prints each address it listens on (a port of 0 is chosen by the
// kernel), one per line.
#include <csignal>
#include <cstdio>
#include <string>

#include "conduit/error.hpp"
#include "conduit/rpc/grpc_reflection.hpp"
#include "conduit/rpc/server.hpp"
#include "greeter.conduit.h"

namespace {

using conduit::rpc::CallContext;
using conduit::rpc::Status;
using conduit::rpc::StatusCode;
using conduit::rpc::StreamWriter;

class GreeterService final : public example::Greeter {
 public:
  Status SayHello(CallContext&, const example::HelloRequest& request,
                  example::HelloReply& reply) override {
    if (request.name().empty()) return {StatusCode::invalid_argument, "name is empty"};
    reply.set_message("Hello, " + request.name() + "!");
    return {};
  }
  Status CountTo(CallContext&, const example::CountRequest& request,
                 StreamWriter<example::Count>& counts) override {
    if (request.up_to() > 1000) return {StatusCode::out_of_range, "up_to is at most 1000"};
    for (int value = 1; value <= request.up_to(); ++value) {
      example::Count count;
      count.set_value(value);
      if (!counts.write(count)) return {StatusCode::cancelled, "the client went away"};
    }
    return {};
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s URI... (tcp://HOST:PORT, unix:/path, shm+unix:/path)\n",
                 argv[0]);
    return 2;
  }
  // Blocked here, so that the signal is taken by sigwait below.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  try {
    GreeterService greeter;
    conduit::rpc::ServiceTable table;
    greeter.add_to(table);
    conduit::rpc::add_grpc_reflection(table);
    conduit::rpc::Server server(table);
    for (int i = 1; i < argc; ++i) std::printf("%s\n", server.listen(argv[i]).c_str());
    std::fflush(stdout);
    server.start();
    int signal = 0;
    sigwait(&stop, &signal);
    server.shutdown();
  } catch (const conduit::Error& error) {
    std::fprintf(stderr, "greeter_server: %s\n", error.what());
    return 1;
  }
  return 0;
}
