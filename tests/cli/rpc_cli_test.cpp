// `conduit serve` and `conduit call` take their protocols, flags and URI
// forms from the protocol table, and their errors list the forms each
// command takes (not the IPC URIs).
#include <gtest/gtest.h>

#include "cli_support.hpp"
#include "test_support.hpp"

namespace conduit::testing {
namespace {

TEST(RpcCliHelp, ServeHelpHasEveryProtocolsFlagsAndSummary) {
  CommandResult result = conduit({"serve", "--help"});
  EXPECT_TRUE(result.status.success()) << result.status.describe();
  for (const char* text :
       {"--grpc-keepalive-time", "--grpc-max-message-size", "--jsonrpc-max-depth",
        "--jsonrpc-max-batch", "--call-timeout", "--max-queued-reply-size",
        "JSON-RPC 2.0: HTTP/1.1 POST /jsonrpc", "gRPC: HTTP/2", "shm+unix:/path", "stdio"})
    EXPECT_CONTAINS(result.out, text);
}

TEST(RpcCliHelp, CallHelpListsEveryProtocolsUriForms) {
  CommandResult result = conduit({"call", "--help"});
  EXPECT_TRUE(result.status.success()) << result.status.describe();
  for (const char* text : {"http://HOST:PORT/jsonrpc", "tcp://HOST:PORT", "grpc://HOST:PORT",
                           "grpc+unix:/path", "grpc+shm+unix:/path", "shm+unix:/path"})
    EXPECT_CONTAINS(result.out, text);
}

TEST(RpcCliErrors, ServeOnAnUnknownSchemeListsWhereAServerListens) {
  CommandResult result = conduit({"serve", "--listen", "udp://127.0.0.1:9"});
  EXPECT_EQ(result.status.code, 2) << result.status.describe();
  EXPECT_CONTAINS(result.err, "udp");
  EXPECT_CONTAINS(result.err, "shm+unix:/path");
  EXPECT_EQ(result.err.find("mq:/name"), std::string::npos) << result.err;
}

TEST(RpcCliErrors, ServeOnShmColonSaysWhatTheRpcTransportIsCalled) {
  CommandResult result = conduit({"serve", "--listen", "shm:/x.sock"});
  EXPECT_EQ(result.status.code, 2) << result.status.describe();
  EXPECT_CONTAINS(result.err, "shm+unix:");
}

TEST(RpcCliErrors, CallToAnUnknownSchemeListsTheFormsCallTakes) {
  CommandResult result = conduit({"call", "ftp://x", "m"});
  EXPECT_EQ(result.status.code, 2) << result.status.describe();
  EXPECT_CONTAINS(result.err, "grpc://HOST:PORT");
  EXPECT_CONTAINS(result.err, "http://HOST:PORT/jsonrpc");
  EXPECT_EQ(result.err.find("mq:/name"), std::string::npos) << result.err;
}

}  // namespace
}  // namespace conduit::testing
