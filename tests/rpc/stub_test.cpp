// The code protoc-gen-conduit generates (the service base and the stub of
// conduit.interop.JsonRpcExamples) and JsonRpcChannel: stubs calling a real
// server over every transport, failures arriving as the Status they were,
// and the channel's reading of what a JSON-RPC peer sends back.
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/empty.pb.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include "conduit/interop/jsonrpc_examples.conduit.h"
#include "conduit/ipc/file_descriptor.hpp"
#include "conduit/ipc/tcp_socket.hpp"
#include "conduit/rpc/client_channel.hpp"
#include "conduit/rpc/server.hpp"
#include "descriptors.hpp"
#include "interop/jsonrpc_examples.hpp"
#include "test_support.hpp"

namespace conduit::rpc {

namespace {

namespace pb = google::protobuf;
using namespace std::chrono_literals;
using interop::JsonRpcExamples;
using interop::JsonRpcExamplesStub;
using interop::SubtractRequest;

const std::string kExamples = "conduit.interop.JsonRpcExamples/";

SubtractRequest subtraction(double minuend, double subtrahend) {
  SubtractRequest request;
  request.set_minuend(minuend);
  request.set_subtrahend(subtrahend);
  return request;
}

pb::ListValue list_of(std::initializer_list<pb::Value> values) {
  pb::ListValue list;
  for (const pb::Value& value : values) *list.add_values() = value;
  return list;
}

pb::Value number(double value) {
  pb::Value number;
  number.set_number_value(value);
  return number;
}

// [value], a Value JSON-RPC can carry as params.
pb::Value listed(double value) {
  pb::Value list;
  list.mutable_list_value()->add_values()->set_number_value(value);
  return list;
}

pb::Value text(const std::string& value) {
  pb::Value text;
  text.set_string_value(value);
  return text;
}

// The Status of the RpcError `call` throws; fails the test when it throws
// nothing or something else.
template <typename Call>
Status rpc_error_of(Call call) {
  try {
    call();
  } catch (const RpcError& error) {
    EXPECT_EQ(std::string(error.what()), error.status().to_string());
    return error.status();
  } catch (const std::exception& error) {
    ADD_FAILURE() << "threw something other than RpcError: " << error.what();
    return {StatusCode::unknown, error.what()};
  }
  ADD_FAILURE() << "the call did not fail";
  return {};
}

// A Server with `services` on loopback TCP, a UNIX socket and a shm+unix:
// handshake socket, in a private directory; shut down on destruction.
class RunningServer {
 public:
  explicit RunningServer(const ServiceTable& services) {
    ServerOptions options;
    options.threads = 2;
    options.shm_ring_bytes = 64 << 10;
    server_ = std::make_unique<Server>(services, options);
    const std::string tcp = server_->listen("tcp://127.0.0.1:0");
    port_ = tcp.substr(tcp.rfind(':') + 1);
    unix_ = server_->listen("unix:" + directory_.path() + "/rpc.sock");
    shm_ = server_->listen("shm+unix:" + directory_.path() + "/shm.sock");
    server_->start();
  }
  ~RunningServer() { server_->shutdown(1s); }
  RunningServer(const RunningServer&) = delete;
  RunningServer& operator=(const RunningServer&) = delete;

  // "http", "tcp", "unix" or "shm".
  std::string uri(const std::string& transport) const {
    if (transport == "http") return "http://127.0.0.1:" + port_ + "/jsonrpc";
    if (transport == "tcp") return "tcp://127.0.0.1:" + port_;
    if (transport == "unix") return unix_;
    if (transport == "shm") return shm_;
    throw std::invalid_argument("no transport " + transport);
  }

 private:
  testing::TempDir directory_;
  std::unique_ptr<Server> server_;
  std::string port_, unix_, shm_;
};

// ---- the stub against the examples, over every transport ----

class StubOverEveryTransport : public ::testing::TestWithParam<std::string> {
 protected:
  StubOverEveryTransport() {
    add_jsonrpc_examples(services_);
    server_ = std::make_unique<RunningServer>(services_);
    channel_ = std::make_unique<JsonRpcChannel>(server_->uri(GetParam()), 5s);
    examples_ = std::make_unique<JsonRpcExamplesStub>(*channel_);
  }

  ServiceTable services_;
  std::unique_ptr<RunningServer> server_;
  std::unique_ptr<JsonRpcChannel> channel_;
  std::unique_ptr<JsonRpcExamplesStub> examples_;
};

TEST_P(StubOverEveryTransport, SubtractsPositionalNumbers) {
  EXPECT_EQ(examples_->subtract(subtraction(42, 23)).number_value(), 19);
  EXPECT_EQ(examples_->subtract(subtraction(23, 42)).number_value(), -19);
}

TEST_P(StubOverEveryTransport, SumsAList) {
  EXPECT_EQ(examples_->sum(list_of({number(1), number(2), number(4)})).number_value(), 7);
}

TEST_P(StubOverEveryTransport, GetsDataWithAnEmptyRequest) {
  pb::ListValue data = examples_->get_data(pb::Empty());
  ASSERT_EQ(data.values_size(), 2);
  EXPECT_EQ(data.values(0).string_value(), "hello");
  EXPECT_EQ(data.values(1).number_value(), 5);
}

TEST_P(StubOverEveryTransport, EchoesANestedValueUnchanged) {
  pb::Value nested;
  pb::Struct& object = *nested.mutable_struct_value();
  (*object.mutable_fields())["a"].mutable_list_value()->add_values()->set_number_value(1);
  (*object.mutable_fields())["a"].mutable_list_value()->add_values()->set_string_value("two");
  (*object.mutable_fields())["a"].mutable_list_value()->add_values()->set_null_value(
      pb::NULL_VALUE);
  (*object.mutable_fields())["b"].set_bool_value(true);
  const pb::Value echoed = examples_->echo(nested);
  EXPECT_TRUE(pb::util::MessageDifferencer::Equals(echoed, nested))
      << echoed.DebugString() << " is not " << nested.DebugString();
}

TEST_P(StubOverEveryTransport, StatusFormFillsTheResponse) {
  pb::Value difference;
  EXPECT_TRUE(examples_->subtract(subtraction(5, 7), &difference).ok());
  EXPECT_EQ(difference.number_value(), -2);
}

TEST_P(StubOverEveryTransport, HandlersRejectionOfItsParamsIsInvalidArgument) {
  const Status status = rpc_error_of([&] { examples_->sum(list_of({text("one"), number(2)})); });
  EXPECT_EQ(status.to_string(), "INVALID_ARGUMENT: params[0] is a string, not a number");
}

TEST_P(StubOverEveryTransport, OneChannelSharedByThreadsAnswersEachItsOwnCall) {
  std::atomic<int> right{0};
  testing::on_threads(4, [&](int t) {
    for (int i = 0; i < 50; ++i) {
      pb::Value difference;
      if (examples_->subtract(subtraction(100 * t + i, t), &difference).ok() &&
          difference.number_value() == 100 * t + i - t)
        ++right;
    }
  });
  EXPECT_EQ(right.load(), 200);
}

INSTANTIATE_TEST_SUITE_P(Transports, StubOverEveryTransport,
                         ::testing::Values("http", "tcp", "unix", "shm"),
                         [](const auto& info) { return info.param; });

// ---- failures, each arriving as its Status ----

// Examples whose subtract refuses every call with a Status of its own, and
// which leave every other method to the base.
class RefusingExamples : public JsonRpcExamples {
 public:
  Status subtract(CallContext&, const SubtractRequest&, pb::Value&) override {
    return {StatusCode::failed_precondition, "the minuend is not ready"};
  }
};

TEST(Stub, ServersStatusComesBackWithItsCodeAndMessage) {
  ServiceTable services;
  RefusingExamples refusing;
  refusing.add_to(services);
  RunningServer server(services);
  JsonRpcChannel channel(server.uri("tcp"), 5s);
  JsonRpcExamplesStub examples(channel);
  const Status expected(StatusCode::failed_precondition, "the minuend is not ready");
  EXPECT_EQ(rpc_error_of([&] { examples.subtract(subtraction(1, 2)); }).to_string(),
            expected.to_string());
  pb::Value unused;
  EXPECT_EQ(examples.subtract(subtraction(1, 2), &unused).to_string(), expected.to_string());
}

TEST(Stub, MethodTheServiceDoesNotOverrideIsUnimplemented) {
  ServiceTable services;
  RefusingExamples refusing;
  refusing.add_to(services);
  RunningServer server(services);
  JsonRpcChannel channel(server.uri("http"), 5s);
  JsonRpcExamplesStub examples(channel);
  EXPECT_EQ(rpc_error_of([&] { examples.sum(list_of({number(1)})); }).to_string(),
            "UNIMPLEMENTED: " + kExamples + "sum is not implemented");
}

TEST(Stub, MethodTheServerDoesNotHaveIsUnimplemented) {
  ServiceTable nothing;
  RunningServer server(nothing);
  JsonRpcChannel channel(server.uri("unix"), 5s);
  JsonRpcExamplesStub examples(channel);
  EXPECT_EQ(rpc_error_of([&] { examples.subtract(subtraction(1, 2)); }).to_string(),
            "UNIMPLEMENTED: Method not found");
}

TEST(Stub, NothingListeningOnTcpIsUnavailable) {
  // A port bound but not listened on: held for this test, and refused.
  ipc::FileDescriptor bound(::socket(AF_INET, SOCK_STREAM, 0));
  ASSERT_TRUE(bound) << std::strerror(errno);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  ASSERT_EQ(::bind(bound.get(), reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::getsockname(bound.get(), reinterpret_cast<sockaddr*>(&address), &length), 0);
  JsonRpcChannel channel("tcp://127.0.0.1:" + std::to_string(ntohs(address.sin_port)), 2s);
  JsonRpcExamplesStub examples(channel);
  const Status status = rpc_error_of([&] { examples.subtract(subtraction(1, 2)); });
  EXPECT_EQ(status_code_name(status.code()), "UNAVAILABLE") << status.message();
}

TEST(Stub, NothingListeningOnAUnixSocketIsUnavailable) {
  testing::TempDir directory;
  JsonRpcChannel channel("unix:" + directory.path() + "/nobody.sock", 2s);
  JsonRpcExamplesStub examples(channel);
  pb::Value unused;
  const Status status = examples.subtract(subtraction(1, 2), &unused);
  EXPECT_EQ(status_code_name(status.code()), "UNAVAILABLE") << status.message();
  EXPECT_CONTAINS(status.message(), "nobody.sock");
}

// Examples whose echo takes 300 ms and whose subtract answers at once.
class SlowEchoExamples : public JsonRpcExamples {
 public:
  Status echo(CallContext&, const pb::Value& request, pb::Value& response) override {
    std::this_thread::sleep_for(300ms);
    response = request;
    return {};
  }
  Status subtract(CallContext&, const SubtractRequest& request, pb::Value& difference) override {
    difference.set_number_value(request.minuend() - request.subtrahend());
    return {};
  }
};

class StubTimeouts : public ::testing::Test {
 protected:
  StubTimeouts() {
    slow_.add_to(services_);
    server_ = std::make_unique<RunningServer>(services_);
  }

  SlowEchoExamples slow_;
  ServiceTable services_;
  std::unique_ptr<RunningServer> server_;
};

TEST_F(StubTimeouts, CallLongerThanItsTimeoutIsDeadlineExceeded) {
  JsonRpcChannel channel(server_->uri("tcp"), 5s);
  JsonRpcExamplesStub examples(channel);
  const auto started = std::chrono::steady_clock::now();
  const Status status = rpc_error_of([&] { examples.echo(listed(1), {.timeout = 50ms}); });
  EXPECT_EQ(status_code_name(status.code()), "DEADLINE_EXCEEDED") << status.message();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 250ms) << "the timeout was not honoured";
}

TEST_F(StubTimeouts, CallAfterATimedOutOneGetsItsOwnReply) {
  JsonRpcChannel channel(server_->uri("http"), 5s);
  JsonRpcExamplesStub examples(channel);
  pb::Value unused;
  ASSERT_EQ(status_code_name(examples.echo(listed(1), &unused, {.timeout = 50ms}).code()),
            "DEADLINE_EXCEEDED");
  // The late reply to the echo must not be taken for this call's.
  EXPECT_EQ(examples.subtract(subtraction(3, 1)).number_value(), 2);
}

TEST_F(StubTimeouts, ChannelsTimeoutAppliesUnlessTheCallSetsItsOwn) {
  JsonRpcChannel channel(server_->uri("unix"), 50ms);
  JsonRpcExamplesStub examples(channel);
  pb::Value echoed;
  EXPECT_EQ(status_code_name(examples.echo(listed(7), &echoed).code()), "DEADLINE_EXCEEDED");
  const Status status = examples.echo(listed(8), &echoed, {.timeout = 5s});
  ASSERT_TRUE(status.ok()) << status.to_string();
  ASSERT_EQ(echoed.list_value().values_size(), 1);
  EXPECT_EQ(echoed.list_value().values(0).number_value(), 8);
}

// ---- the generated service base ----

class NoMethodsOverridden : public JsonRpcExamples {};

TEST(GeneratedService, MethodNotOverriddenAnswersUnimplementedNamingIt) {
  NoMethodsOverridden service;
  CallContext context;
  pb::Value difference;
  EXPECT_EQ(service.subtract(context, subtraction(1, 2), difference).to_string(),
            "UNIMPLEMENTED: " + kExamples + "subtract is not implemented");
  pb::ListValue data;
  EXPECT_EQ(service.get_data(context, pb::Empty(), data).to_string(),
            "UNIMPLEMENTED: " + kExamples + "get_data is not implemented");
}

TEST(GeneratedService, AddToRegistersEveryMethodByItsFullName) {
  NoMethodsOverridden service;
  ServiceTable table;
  service.add_to(table);
  const pb::ServiceDescriptor& descriptor = JsonRpcExamples::descriptor();
  EXPECT_EQ(descriptor.full_name(), "conduit.interop.JsonRpcExamples");
  ASSERT_EQ(table.methods().size(), static_cast<std::size_t>(descriptor.method_count()));
  for (int i = 0; i < descriptor.method_count(); ++i) {
    const Method* method = table.find(kExamples + descriptor.method(i)->name());
    ASSERT_NE(method, nullptr) << descriptor.method(i)->name();
    EXPECT_EQ(&method->descriptor(), descriptor.method(i));
  }
}

TEST(GeneratedService, TableCallsTheOverridingMethod) {
  SlowEchoExamples service;
  ServiceTable table;
  service.add_to(table);
  CallContext context;
  pb::Value difference;
  ASSERT_TRUE(table.find("subtract")->invoke(context, subtraction(9, 4), difference).ok());
  EXPECT_EQ(difference.number_value(), 5);
  pb::Value sum;
  EXPECT_EQ(table.find("sum")->invoke(context, list_of({number(1)}), sum).to_string(),
            "UNIMPLEMENTED: " + kExamples + "sum is not implemented");
}

TEST(GeneratedService, AddingTwiceToOneTableThrows) {
  NoMethodsOverridden service;
  ServiceTable table;
  service.add_to(table);
  EXPECT_THROW(service.add_to(table), Error);
}

// ---- JsonRpcChannel against a scripted peer ----

// A JSON-RPC peer on loopback TCP that reads one request line and answers
// it with `reply`, in which "ID" stands for the request's id.
class OneReplyPeer {
 public:
  explicit OneReplyPeer(std::string reply)
      : listener_(ipc::TcpListener::bind("127.0.0.1", 0)),
        thread_([this, reply = std::move(reply)] { serve(reply); }) {}
  ~OneReplyPeer() {
    if (thread_.joinable()) thread_.join();
  }
  OneReplyPeer(const OneReplyPeer&) = delete;
  OneReplyPeer& operator=(const OneReplyPeer&) = delete;

  std::string uri() const { return listener_.local_uri(); }
  // The request line as it arrived (without its newline); waits for the
  // peer to finish. Fails the test when the peer failed.
  std::string request() {
    if (thread_.joinable()) thread_.join();
    if (!failure_.empty()) ADD_FAILURE() << "the peer failed: " << failure_;
    return request_;
  }

 private:
  void serve(std::string reply) {
    try {
      ipc::TcpSocket connection = testing::accept_within(listener_, 5s);
      while (request_.find('\n') == std::string::npos) {
        if (!testing::readable(connection.fd(), 5s)) throw std::runtime_error("no request came");
        char chunk[4096];
        const ssize_t n = ::recv(connection.fd(), chunk, sizeof chunk, 0);
        if (n <= 0) throw std::runtime_error("the client closed before a whole request");
        request_.append(chunk, static_cast<std::size_t>(n));
      }
      request_.erase(request_.find('\n'));
      const std::size_t id_at = request_.find("\"id\":");
      if (id_at == std::string::npos) throw std::runtime_error("no id in " + request_);
      const std::string id =
          request_.substr(id_at + 5, request_.find_first_of(",}", id_at) - (id_at + 5));
      reply.replace(reply.find("ID"), 2, id);
      reply += "\n";
      if (::send(connection.fd(), reply.data(), reply.size(), MSG_NOSIGNAL) !=
          static_cast<ssize_t>(reply.size())) {
        throw std::runtime_error("the reply was not sent whole");
      }
    } catch (const std::exception& error) {
      failure_ = error.what();
    }
  }

  ipc::TcpListener listener_;
  std::string request_;
  std::string failure_;
  std::thread thread_;
};

// What JsonRpcChannel makes of `reply` to a call of get_data.
Status status_for_reply(const std::string& reply) {
  OneReplyPeer peer(reply);
  JsonRpcChannel channel(peer.uri(), 5s);
  JsonRpcExamplesStub examples(channel);
  pb::ListValue data;
  Status status = examples.get_data(pb::Empty(), &data);
  peer.request();
  return status;
}

TEST(JsonRpcChannel, CallsTheBareMethodNameWithTheRequestAsParams) {
  OneReplyPeer peer(R"({"jsonrpc":"2.0","result":19,"id":ID})");
  JsonRpcChannel channel(peer.uri(), 5s);
  JsonRpcExamplesStub examples(channel);
  EXPECT_EQ(examples.subtract(subtraction(42, 23)).number_value(), 19);
  const std::string request = peer.request();
  EXPECT_CONTAINS(request, R"("method":"subtract")");
  EXPECT_CONTAINS(request, R"("params":{"minuend":42,"subtrahend":23})");
}

TEST(JsonRpcChannel, EmptyRequestSendsNoParams) {
  OneReplyPeer peer(R"({"jsonrpc":"2.0","result":["hello",5],"id":ID})");
  JsonRpcChannel channel(peer.uri(), 5s);
  JsonRpcExamplesStub examples(channel);
  EXPECT_EQ(examples.get_data(pb::Empty()).values_size(), 2);
  const std::string request = peer.request();
  EXPECT_CONTAINS(request, R"("method":"get_data")");
  EXPECT_EQ(request.find("params"), std::string::npos) << request;
}

TEST(JsonRpcChannel, NullResultFillsAnEmptyResponse) {
  OneReplyPeer peer(R"({"jsonrpc":"2.0","result":null,"id":ID})");
  JsonRpcChannel channel(peer.uri(), 5s);
  JsonRpcExamplesStub examples(channel);
  pb::Empty nothing;
  EXPECT_TRUE(examples.update(list_of({number(1)}), &nothing).ok());
  peer.request();
}

TEST(JsonRpcChannel, ResultThatDoesNotFitTheResponseIsInternal) {
  const Status status = status_for_reply(R"({"jsonrpc":"2.0","result":"hello","id":ID})");
  EXPECT_EQ(status_code_name(status.code()), "INTERNAL") << status.message();
  EXPECT_CONTAINS(status.message(), "the result of get_data is not a google.protobuf.ListValue");
}

TEST(JsonRpcChannel, ErrorCodesBecomeStatusCodes) {
  const auto error = [](int code, const std::string& message) {
    return R"({"jsonrpc":"2.0","error":{"code":)" + std::to_string(code) + R"(,"message":")" +
           message + R"("},"id":ID})";
  };
  EXPECT_EQ(status_for_reply(error(-32601, "Method not found")).to_string(),
            "UNIMPLEMENTED: Method not found");
  EXPECT_EQ(status_for_reply(error(-32602, "Invalid params")).to_string(),
            "INVALID_ARGUMENT: Invalid params");
  EXPECT_EQ(status_for_reply(error(-32600, "Invalid Request")).to_string(),
            "INTERNAL: Invalid Request");
  EXPECT_EQ(status_for_reply(error(-32700, "Parse error")).to_string(), "INTERNAL: Parse error");
  EXPECT_EQ(status_for_reply(error(-32603, "Internal error")).to_string(),
            "INTERNAL: Internal error");
  EXPECT_EQ(status_for_reply(error(-32050, "Server busy")).to_string(), "UNKNOWN: Server busy");
  EXPECT_EQ(status_for_reply(error(7, "Application says no")).to_string(),
            "UNKNOWN: Application says no");
}

TEST(JsonRpcChannel, GrpcCodeInTheErrorDataWinsOverTheErrorCode) {
  const Status status =
      status_for_reply(R"({"jsonrpc":"2.0","error":{"code":-32007,"message":"not yours",)"
                       R"("data":{"grpc_code":7,"grpc_status":"PERMISSION_DENIED"}},"id":ID})");
  EXPECT_EQ(status.to_string(), "PERMISSION_DENIED: not yours");
}

TEST(JsonRpcChannel, StringErrorDataIsAddedToTheMessage) {
  const Status status =
      status_for_reply(R"({"jsonrpc":"2.0","error":{"code":-32602,"message":"Invalid params",)"
                       R"("data":"params[0] is missing"},"id":ID})");
  EXPECT_EQ(status.to_string(), "INVALID_ARGUMENT: Invalid params: params[0] is missing");
}

TEST(JsonRpcChannel, ReplyThatIsNotJsonRpcIsInternal) {
  const Status status = status_for_reply(R"({"jsonrpc":"1.0","result":[],"id":ID})");
  EXPECT_EQ(status_code_name(status.code()), "INTERNAL") << status.message();
}

// Params the server cannot fit into the request of its own method: here a
// subtract whose request is a list, from a file of this test's own.
TEST(JsonRpcChannel, ParamsTheServerCannotReadAreInvalidArgument) {
  pb::DescriptorPool pool(pb::DescriptorPool::generated_pool());
  pb::FileDescriptorProto file;
  file.set_name("test/mismatch.proto");
  file.set_package("test");
  file.set_syntax("proto3");
  file.add_dependency("google/protobuf/struct.proto");
  pb::MethodDescriptorProto& method = *file.add_service()->add_method();
  file.mutable_service(0)->set_name("Mismatch");
  method.set_name("subtract");
  method.set_input_type(".google.protobuf.ListValue");
  method.set_output_type(".google.protobuf.Value");
  const pb::FileDescriptor* built = pool.BuildFile(file);
  ASSERT_NE(built, nullptr);

  ServiceTable services;
  add_jsonrpc_examples(services);
  RunningServer server(services);
  JsonRpcChannel channel(server.uri("tcp"), 5s);
  pb::Value result;
  const Status status = channel.call(*built->service(0)->method(0),
                                     list_of({number(1), number(2), number(3)}), result, {});
  EXPECT_EQ(status_code_name(status.code()), "INVALID_ARGUMENT") << status.message();
  EXPECT_EQ(status.message().rfind("Invalid params: ", 0), 0u) << status.message();
}

TEST(JsonRpcChannel, ScalarRequestCannotBeParamsAndIsNotSent) {
  // Nothing listens there: a request that were sent would be UNAVAILABLE.
  testing::TempDir directory;
  JsonRpcChannel channel("unix:" + directory.path() + "/nobody.sock", 2s);
  JsonRpcExamplesStub examples(channel);
  const Status status = rpc_error_of([&] { examples.echo(number(5)); });
  EXPECT_EQ(status_code_name(status.code()), "INVALID_ARGUMENT") << status.message();
  EXPECT_CONTAINS(status.message(), "google.protobuf.Value is 5");
}

}  // namespace
}  // namespace conduit::rpc
