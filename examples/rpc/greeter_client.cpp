// Calls example.Greeter through the generated stub, over whichever protocol
// the URI names:
//
//   greeter_client grpc://127.0.0.1:50051 Ada
//   greeter_client http://127.0.0.1:50051/jsonrpc Ada   (unary only)
//
// prints the greeting, then counts to three through the server stream.
#include <cstdio>
#include <string>

#include "conduit/error.hpp"
#include "conduit/rpc/client_channel.hpp"
#include "greeter.conduit.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s URI NAME\n", argv[0]);
    return 2;
  }
  try {
    std::unique_ptr<conduit::rpc::ClientChannel> channel = conduit::rpc::make_channel(argv[1]);
    example::GreeterStub greeter(*channel);

    example::HelloRequest request;
    request.set_name(argv[2]);
    std::printf("%s\n", greeter.SayHello(request).message().c_str());  // throws RpcError

    example::CountRequest up_to;
    up_to.set_up_to(3);
    auto counts = greeter.CountTo(up_to);
    for (example::Count count; counts.read(count);) std::printf("%d\n", count.value());
    if (conduit::rpc::Status status = counts.finish(); !status.ok()) {
      std::fprintf(stderr, "CountTo: %s\n", status.to_string().c_str());
      return 1;
    }
  } catch (const conduit::Error& error) {
    std::fprintf(stderr, "greeter_client: %s\n", error.what());
    return 1;
  }
  return 0;
}
