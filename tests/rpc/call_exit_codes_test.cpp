// `conduit call`'s exit codes, the same for every protocol: 0 the answer was
// printed, 1 the server answered with an error, 2 a local mistake (no call
// made) or no server to reach.
#include <google/protobuf/struct.pb.h>
#include <gtest/gtest.h>

#include "cli_support.hpp"
#include "conduit/rpc/grpc_reflection.hpp"
#include "conduit/rpc/server.hpp"
#include "interop/grpc_testing.hpp"
#include "interop/jsonrpc_examples.hpp"
#include "test_support.hpp"

namespace conduit::rpc {
namespace {

using namespace std::chrono_literals;
using testing::conduit;

class CallExitCodes : public ::testing::Test {
 protected:
  void SetUp() override {
    add_jsonrpc_examples(services_);
    add_grpc_testing(services_);
    add_grpc_reflection(services_);
    server_ = std::make_unique<Server>(services_);
    const std::string bound = server_->listen("tcp://127.0.0.1:0");
    address_ = bound.substr(6);  // HOST:PORT
    server_->start();
  }
  void TearDown() override { server_->shutdown(1s); }

  int exit_of(std::vector<std::string> args) {
    args.insert(args.begin(), "call");
    last_ = conduit(args, 20s);
    return last_.status.code;
  }

  ServiceTable services_;
  std::unique_ptr<Server> server_;
  std::string address_;
  testing::CommandResult last_;
};

TEST_F(CallExitCodes, LocalMistakesExitTwoWithNoCallMade) {
  const std::string http = "http://" + address_ + "/jsonrpc", grpc = "grpc://" + address_;
  EXPECT_EQ(exit_of({http, "subtract", "[42,"}), 2) << last_.err;  // params not JSON
  EXPECT_EQ(exit_of({http, "subtract", "42"}), 2) << last_.err;    // neither array nor object
  EXPECT_EQ(exit_of({grpc, "grpc.testing.TestService/UnaryCall", "{\"noSuchField\":1}"}), 2)
      << last_.err;
  EXPECT_EQ(exit_of({grpc, "grpc.testing.TestService/UnaryCall", "{"}), 2) << last_.err;
  EXPECT_EQ(exit_of({grpc, "UnaryCall"}), 2) << last_.err;  // not package.Service/Method
}

TEST_F(CallExitCodes, AServersErrorExitsOneAndAnAnswerZero) {
  const std::string http = "http://" + address_ + "/jsonrpc", grpc = "grpc://" + address_;
  EXPECT_EQ(exit_of({http, "no_such_method", "[]"}), 1) << last_.err;
  EXPECT_EQ(exit_of({grpc, "grpc.testing.TestService/UnaryCall",
                     R"({"responseStatus":{"code":5,"message":"nope"}})"}),
            1)
      << last_.err;
  EXPECT_EQ(exit_of({http, "subtract", "[42,23]"}), 0) << last_.err;
  EXPECT_CONTAINS(last_.out, "19");
  EXPECT_EQ(exit_of({grpc, "grpc.testing.TestService/EmptyCall", "{}"}), 0) << last_.err;
}

TEST_F(CallExitCodes, NoServerToReachExitsTwo) {
  server_->shutdown(1s);
  EXPECT_EQ(exit_of({"http://" + address_ + "/jsonrpc", "subtract", "[1,2]"}), 2) << last_.err;
  EXPECT_EQ(exit_of({"grpc://" + address_, "grpc.testing.TestService/EmptyCall", "{}"}), 2)
      << last_.err;
}

}  // namespace
}  // namespace conduit::rpc
