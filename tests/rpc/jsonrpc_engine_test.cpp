// The JSON-RPC 2.0 engine against the specification
// (https://www.jsonrpc.org/specification): every example of its section 7,
// then what the specification leaves to implementations, the limits, and the
// client side's request and reply.
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/struct.pb.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "conduit/error.hpp"
#include "conduit/interop/jsonrpc_examples.pb.h"
#include "conduit/rpc/call_context.hpp"
#include "conduit/rpc/service.hpp"
#include "conduit/rpc/status.hpp"
#include "rpc/protocols/jsonrpc/engine.hpp"
#include "rpc/protocols/jsonrpc/proto_json.hpp"
#include "interop/grpc_testing.hpp"
#include "interop/jsonrpc_examples.hpp"

namespace conduit::rpc::jsonrpc {
namespace {

namespace pb = google::protobuf;

// A test file with methods that fail in each way a method can, all taking
// and returning google.protobuf.Value:
//   service test.Fake { protocol, fail, fail_without_message, fail_with_ok,
//                       fail_in_latin1, throws, throws_int, unprintable,
//                       spaced, slow }
//   service rpc { ping }   (no package: the method is "rpc.ping")
void build_fake_protos(pb::DescriptorPool& pool) {
  for (const char* package : {"test", ""}) {
    pb::FileDescriptorProto file;
    file.set_name(std::string(package) + "/fake.proto");
    file.set_package(package);
    file.set_syntax("proto3");
    file.add_dependency("google/protobuf/struct.proto");
    pb::ServiceDescriptorProto& service = *file.add_service();
    service.set_name(*package ? "Fake" : "rpc");
    const std::vector<std::string> names =
        *package
            ? std::vector<std::string>{"protocol",     "fail",           "fail_without_message",
                                       "fail_with_ok", "fail_in_latin1", "throws",
                                       "throws_int",   "unprintable",    "spaced",
                                       "slow"}
            : std::vector<std::string>{"ping"};
    for (const std::string& name : names) {
      pb::MethodDescriptorProto& method = *service.add_method();
      method.set_name(name);
      method.set_input_type(".google.protobuf.Value");
      method.set_output_type(".google.protobuf.Value");
    }
    if (pool.BuildFile(file) == nullptr) throw std::runtime_error("cannot build fake.proto");
  }
}

// The specification's example methods (conduit.interop.JsonRpcExamples,
// served here by handlers that count), and the fakes above. Records every
// call: the method's name and its request as JSON.
class ExampleMethods : public ServiceTable {
 public:
  struct Call {
    std::string method;
    std::string params;
  };

  ExampleMethods() {
    const pb::DescriptorPool& generated = *pb::DescriptorPool::generated_pool();
    auto example = [&](const std::string& name, Handler handler) {
      const pb::MethodDescriptor* method =
          generated.FindMethodByName("conduit.interop.JsonRpcExamples." + name);
      add_dynamic(*method, recorded(name, std::move(handler)));
    };
    example("subtract", [](CallContext&, const pb::Message& request, pb::Message& response) {
      const auto& operands = static_cast<const interop::SubtractRequest&>(request);
      static_cast<pb::Value&>(response).set_number_value(operands.minuend() -
                                                         operands.subtrahend());
      return Status();
    });
    example("sum", [](CallContext&, const pb::Message& request, pb::Message& response) {
      double total = 0;
      for (const pb::Value& term : static_cast<const pb::ListValue&>(request).values())
        total += term.number_value();
      static_cast<pb::Value&>(response).set_number_value(total);
      return Status();
    });
    example("get_data", [](CallContext&, const pb::Message&, pb::Message& response) {
      auto& data = static_cast<pb::ListValue&>(response);
      data.add_values()->set_string_value("hello");
      data.add_values()->set_number_value(5);
      return Status();
    });
    for (const char* name : {"notify_hello", "notify_sum", "update"}) {
      example(name, [](CallContext&, const pb::Message&, pb::Message&) { return Status(); });
    }
    example("echo", [](CallContext&, const pb::Message& request, pb::Message& response) {
      response.CopyFrom(request);
      return Status();
    });

    build_fake_protos(pool_);
    auto fake = [&](const std::string& name, Handler handler) {
      const pb::MethodDescriptor* method = pool_.FindMethodByName(name);
      add_dynamic(*method, recorded(name.substr(name.rfind('.') + 1), std::move(handler)));
    };
    auto fails_with = [](Status status) {
      return [status](CallContext&, const pb::Message&, pb::Message&) { return status; };
    };
    auto answers = [](std::function<void(CallContext&, pb::Value&)> fill) {
      return [fill](CallContext& context, const pb::Message&, pb::Message& response) {
        fill(context, static_cast<pb::Value&>(response));
        return Status();
      };
    };
    fake("rpc.ping", answers([](CallContext&, pb::Value& v) { v.set_string_value("pong"); }));
    fake("test.Fake.protocol",
         answers([](CallContext& context, pb::Value& v) { v.set_string_value(context.protocol); }));
    fake("test.Fake.fail",
         fails_with(Status(StatusCode::invalid_argument, "minuend must be a number")));
    fake("test.Fake.fail_without_message", fails_with(Status(StatusCode::not_found, "")));
    fake("test.Fake.fail_with_ok", fails_with(Status(static_cast<StatusCode>(99), "")));
    fake("test.Fake.fail_in_latin1", fails_with(Status(StatusCode::internal, "bad \xff byte")));
    fake("test.Fake.throws", [](CallContext&, const pb::Message&, pb::Message&) -> Status {
      throw std::runtime_error("boom");
    });
    fake("test.Fake.throws_int",
         [](CallContext&, const pb::Message&, pb::Message&) -> Status { throw 42; });
    fake("test.Fake.unprintable",
         answers([](CallContext&, pb::Value& v) { v.set_string_value("not \xff UTF-8"); }));
    fake("test.Fake.spaced", answers([](CallContext&, pb::Value& v) {
           pb::ListValue& list =
               *(*v.mutable_struct_value()->mutable_fields())["a"].mutable_list_value();
           list.add_values()->set_number_value(1);
           list.add_values()->set_number_value(2);
         }));
    fake("test.Fake.slow", [](CallContext& context, const pb::Message&, pb::Message&) {
      // Waits out the call's deadline, then gives up as a handler would.
      while (!context.expired()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      return Status(StatusCode::cancelled, "gave up");
    });
  }

  std::vector<Call> calls() const {
    std::lock_guard lock(mutex_);
    return calls_;
  }
  std::size_t call_count() const { return calls().size(); }

 private:
  Handler recorded(std::string name, Handler handler) {
    return [this, name, handler](CallContext& context, const pb::Message& request,
                                 pb::Message& response) {
      {
        std::lock_guard lock(mutex_);
        calls_.push_back({name, message_to_json(request)});
      }
      return handler(context, request, response);
    };
  }

  pb::DescriptorPool pool_{pb::DescriptorPool::generated_pool()};
  mutable std::mutex mutex_;
  mutable std::vector<Call> calls_;
};

rapidjson::Document parse_json(std::string_view text) {
  rapidjson::Document document;
  document.Parse<rapidjson::kParseValidateEncodingFlag>(text.data(), text.size());
  return document;
}

// Whether `actual` is JSON equal in value to `expected` (members in any
// order, array elements in order), saying where they differ when not.
::testing::AssertionResult same_json(const std::optional<std::string>& actual,
                                     std::string_view expected) {
  if (!actual) return ::testing::AssertionFailure() << "no response; expected " << expected;
  const rapidjson::Document got = parse_json(*actual);
  const rapidjson::Document want = parse_json(expected);
  if (want.HasParseError()) return ::testing::AssertionFailure() << "bad expectation " << expected;
  if (got.HasParseError()) {
    return ::testing::AssertionFailure() << "response is not valid JSON: " << *actual;
  }
  if (want.IsArray()) {
    if (!got.IsArray()) return ::testing::AssertionFailure() << "not an array: " << *actual;
    if (got.Size() != want.Size()) {
      return ::testing::AssertionFailure()
             << got.Size() << " responses, expected " << want.Size() << ": " << *actual;
    }
    for (rapidjson::SizeType i = 0; i < want.Size(); ++i) {
      if (got[i] != want[i]) {
        return ::testing::AssertionFailure()
               << "response " << i << " differs: " << *actual << "\nexpected " << expected;
      }
    }
    return ::testing::AssertionSuccess();
  }
  if (got != want) {
    return ::testing::AssertionFailure() << "got " << *actual << "\nexpected " << expected;
  }
  return ::testing::AssertionSuccess();
}

bool contains(const std::optional<std::string>& text, std::string_view part) {
  return text && text->find(part) != std::string::npos;
}

// The error code of a single error response; 0 when it is none.
int error_code(const std::optional<std::string>& response) {
  if (!response) return 0;
  const rapidjson::Document document = parse_json(*response);
  if (!document.IsObject() || !document.HasMember("error")) return 0;
  return document["error"]["code"].GetInt();
}

// error.data of a single error response as a string; "" when it is none.
std::string error_data(const std::optional<std::string>& response) {
  if (!response) return "";
  const rapidjson::Document document = parse_json(*response);
  if (!document.IsObject() || !document.HasMember("error")) return "";
  const rapidjson::Value& error = document["error"];
  if (!error.HasMember("data") || !error["data"].IsString()) return "";
  return error["data"].GetString();
}

class JsonRpcTest : public ::testing::Test {
 protected:
  std::optional<std::string> handle(std::string_view text) {
    return engine_.handle(text, context_);
  }

  ExampleMethods methods_;
  CallContext context_;
  Engine engine_{methods_};
};

// ---- Section 7 of the specification, request texts byte for byte ----

using JsonRpcSpecExamples = JsonRpcTest;

TEST_F(JsonRpcSpecExamples, CallWithPositionalParameters) {
  EXPECT_TRUE(
      same_json(handle(R"({"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1})"),
                R"({"jsonrpc": "2.0", "result": 19, "id": 1})"));
}

TEST_F(JsonRpcSpecExamples, CallWithPositionalParametersReversed) {
  EXPECT_TRUE(
      same_json(handle(R"({"jsonrpc": "2.0", "method": "subtract", "params": [23, 42], "id": 2})"),
                R"({"jsonrpc": "2.0", "result": -19, "id": 2})"));
}

TEST_F(JsonRpcSpecExamples, CallWithNamedParameters) {
  EXPECT_TRUE(same_json(
      handle(
          R"({"jsonrpc": "2.0", "method": "subtract", "params": {"subtrahend": 23, "minuend": 42}, "id": 3})"),
      R"({"jsonrpc": "2.0", "result": 19, "id": 3})"));
}

TEST_F(JsonRpcSpecExamples, CallWithNamedParametersInAnotherOrder) {
  EXPECT_TRUE(same_json(
      handle(
          R"({"jsonrpc": "2.0", "method": "subtract", "params": {"minuend": 42, "subtrahend": 23}, "id": 4})"),
      R"({"jsonrpc": "2.0", "result": 19, "id": 4})"));
}

TEST_F(JsonRpcSpecExamples, NotificationIsCalledAndUnanswered) {
  EXPECT_EQ(handle(R"({"jsonrpc": "2.0", "method": "update", "params": [1,2,3,4,5]})"),
            std::nullopt);
  ASSERT_EQ(methods_.call_count(), 1u);
  EXPECT_EQ(methods_.calls()[0].method, "update");
  EXPECT_EQ(methods_.calls()[0].params, "[1,2,3,4,5]");
}

TEST_F(JsonRpcSpecExamples, NotificationOfUnknownMethodIsUnanswered) {
  EXPECT_EQ(handle(R"({"jsonrpc": "2.0", "method": "foobar"})"), std::nullopt);
}

TEST_F(JsonRpcSpecExamples, CallOfNonExistentMethod) {
  EXPECT_TRUE(same_json(
      handle(R"({"jsonrpc": "2.0", "method": "foobar", "id": "1"})"),
      R"({"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": "1"})"));
}

TEST_F(JsonRpcSpecExamples, CallWithInvalidJson) {
  EXPECT_TRUE(same_json(
      handle(R"({"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz])"),
      R"({"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": null})"));
}

TEST_F(JsonRpcSpecExamples, CallWithInvalidRequestObject) {
  EXPECT_TRUE(same_json(
      handle(R"({"jsonrpc": "2.0", "method": 1, "params": "bar"})"),
      R"({"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null})"));
}

TEST_F(JsonRpcSpecExamples, BatchWithInvalidJson) {
  EXPECT_TRUE(same_json(
      handle(R"([
  {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
  {"jsonrpc": "2.0", "method"
])"),
      R"({"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": null})"));
  EXPECT_EQ(methods_.call_count(), 0u);
}

TEST_F(JsonRpcSpecExamples, EmptyArray) {
  const auto response = handle("[]");
  EXPECT_TRUE(same_json(
      response,
      R"({"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null})"));
}

TEST_F(JsonRpcSpecExamples, InvalidBatchOfOne) {
  EXPECT_TRUE(same_json(
      handle("[1]"),
      R"([{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null}])"));
}

TEST_F(JsonRpcSpecExamples, InvalidBatch) {
  EXPECT_TRUE(same_json(handle("[1,2,3]"), R"([
  {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null},
  {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null},
  {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null}
])"));
}

TEST_F(JsonRpcSpecExamples, Batch) {
  EXPECT_TRUE(same_json(handle(R"([
        {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
        {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},
        {"jsonrpc": "2.0", "method": "subtract", "params": [42,23], "id": "2"},
        {"foo": "boo"},
        {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
        {"jsonrpc": "2.0", "method": "get_data", "id": "9"} 
    ])"),
                        R"([
        {"jsonrpc": "2.0", "result": 7, "id": "1"},
        {"jsonrpc": "2.0", "result": 19, "id": "2"},
        {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null},
        {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": "5"},
        {"jsonrpc": "2.0", "result": ["hello", 5], "id": "9"}
    ])"));
}

TEST_F(JsonRpcSpecExamples, BatchOfNotificationsIsUnanswered) {
  EXPECT_EQ(handle(R"([
        {"jsonrpc": "2.0", "method": "notify_sum", "params": [1,2,4]},
        {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}
    ])"),
            std::nullopt);
  ASSERT_EQ(methods_.call_count(), 2u);
  EXPECT_EQ(methods_.calls()[0].method, "notify_sum");
  EXPECT_EQ(methods_.calls()[1].method, "notify_hello");
}

// ---- Ids ----

using JsonRpcIds = JsonRpcTest;

TEST_F(JsonRpcIds, StringIdIsEchoed) {
  EXPECT_TRUE(same_json(handle(R"({"jsonrpc":"2.0","method":"sum","params":[1],"id":"abc"})"),
                        R"({"jsonrpc":"2.0","result":1,"id":"abc"})"));
}

TEST_F(JsonRpcIds, StringIdWithEscapesIsEchoedAsTheSameString) {
  EXPECT_TRUE(
      same_json(handle(R"({"jsonrpc":"2.0","method":"sum","params":[1],"id":"a\"b\u00e9\n"})"),
                R"({"jsonrpc":"2.0","result":1,"id":"a\"b\u00e9\n"})"));
}

TEST_F(JsonRpcIds, IntegerIdIsEchoed) {
  EXPECT_TRUE(
      contains(handle(R"({"jsonrpc":"2.0","method":"sum","params":[1],"id":-7})"), R"("id":-7})"));
}

TEST_F(JsonRpcIds, FractionalIdKeepsItsDigits) {
  EXPECT_TRUE(contains(handle(R"({"jsonrpc":"2.0","method":"sum","params":[1],"id":1.50})"),
                       R"("id":1.50})"));
}

TEST_F(JsonRpcIds, ExponentIdKeepsItsForm) {
  EXPECT_TRUE(contains(handle(R"({"jsonrpc":"2.0","method":"sum","params":[1],"id":1E+2})"),
                       R"("id":1E+2})"));
}

TEST_F(JsonRpcIds, BigIntegerIdKeepsItsDigits) {
  EXPECT_TRUE(contains(
      handle(
          R"({"jsonrpc":"2.0","method":"sum","params":[1],"id":123456789012345678901234567890})"),
      R"("id":123456789012345678901234567890})"));
}

TEST_F(JsonRpcIds, NullIdIsACallAnsweredWithIdNull) {
  EXPECT_TRUE(same_json(handle(R"({"jsonrpc":"2.0","method":"subtract","params":[5,2],"id":null})"),
                        R"({"jsonrpc":"2.0","result":3,"id":null})"));
}

TEST_F(JsonRpcIds, IdOfAnotherTypeIsInvalidRequestWithIdNull) {
  for (std::string_view id : {"true", "[1]", R"({"a":1})"}) {
    const std::string request =
        R"({"jsonrpc":"2.0","method":"sum","params":[1],"id":)" + std::string(id) + "}";
    EXPECT_TRUE(same_json(
        handle(request),
        R"({"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null})"))
        << request;
  }
  EXPECT_EQ(methods_.call_count(), 0u);
}

// ---- Notifications ----

using JsonRpcNotifications = JsonRpcTest;

TEST_F(JsonRpcNotifications, FailuresAreNotAnswered) {
  for (std::string_view method :
       {"foobar", "fail", "throws", "throws_int", "unprintable", "subtract"}) {
    const std::string request =
        R"({"jsonrpc":"2.0","method":")" + std::string(method) + R"(","params":["x"]})";
    EXPECT_EQ(handle(request), std::nullopt) << request;
  }
  // Not foobar, which is not there, nor subtract, whose params do not fit.
  EXPECT_EQ(methods_.call_count(), 4u);
}

TEST_F(JsonRpcNotifications, InvalidRequestWithoutIdIsStillAnswered) {
  EXPECT_TRUE(same_json(
      handle(R"({"jsonrpc":"2.0","method":"update","params":"x"})"),
      R"({"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null})"));
  EXPECT_EQ(methods_.call_count(), 0u);
}

TEST_F(JsonRpcNotifications, BatchAnswersOnlyItsCalls) {
  EXPECT_TRUE(same_json(handle(R"([{"jsonrpc":"2.0","method":"update"},
                                   {"jsonrpc":"2.0","method":"sum","params":[2,3],"id":1},
                                   {"jsonrpc":"2.0","method":"foobar"}])"),
                        R"([{"jsonrpc":"2.0","result":5,"id":1}])"));
}

// ---- Requests ----

using JsonRpcRequests = JsonRpcTest;

TEST_F(JsonRpcRequests, ReservedRpcMethodIsNotFound) {
  EXPECT_TRUE(same_json(
      handle(R"({"jsonrpc":"2.0","method":"rpc.x","id":1})"),
      R"({"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":1})"));
}

TEST_F(JsonRpcRequests, RegisteredRpcMethodIsCalled) {
  EXPECT_TRUE(same_json(handle(R"({"jsonrpc":"2.0","method":"rpc.ping","id":1})"),
                        R"({"jsonrpc":"2.0","result":"pong","id":1})"));
}

TEST_F(JsonRpcRequests, VersionMustBeExactly2Point0) {
  for (std::string_view version : {R"("1.0")", R"("2.00")", "2.0", "2", "null", R"(" 2.0")"}) {
    const std::string request =
        R"({"jsonrpc":)" + std::string(version) + R"(,"method":"sum","params":[1],"id":1})";
    EXPECT_TRUE(same_json(
        handle(request),
        R"({"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":1})"))
        << request;
  }
  EXPECT_EQ(methods_.call_count(), 0u);
}

TEST_F(JsonRpcRequests, VersionIsRequired) {
  EXPECT_EQ(error_code(handle(R"({"method":"sum","params":[1],"id":1})")), -32600);
}

TEST_F(JsonRpcRequests, MethodMustBeAString) {
  EXPECT_EQ(error_code(handle(R"({"jsonrpc":"2.0","params":[1],"id":1})")), -32600);
  EXPECT_EQ(error_code(handle(R"({"jsonrpc":"2.0","method":["sum"],"id":1})")), -32600);
  EXPECT_EQ(error_code(handle(R"({"jsonrpc":"2.0","method":null,"id":1})")), -32600);
  EXPECT_EQ(methods_.call_count(), 0u);
}

TEST_F(JsonRpcRequests, ParamsMustBeAnArrayOrAnObject) {
  for (std::string_view params : {R"("bar")", "3", "null", "true"}) {
    const std::string request =
        R"({"jsonrpc":"2.0","method":"echo","params":)" + std::string(params) + R"(,"id":1})";
    EXPECT_TRUE(same_json(
        handle(request),
        R"({"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":1})"))
        << request;
  }
  EXPECT_EQ(methods_.call_count(), 0u);
}

TEST_F(JsonRpcRequests, AbsentParamsReachAValueMethodAsNull) {
  EXPECT_TRUE(same_json(handle(R"({"jsonrpc":"2.0","method":"echo","id":1})"),
                        R"({"jsonrpc":"2.0","result":null,"id":1})"));
  ASSERT_EQ(methods_.call_count(), 1u);
  EXPECT_EQ(methods_.calls()[0].params, "null");
}

TEST_F(JsonRpcRequests, ParamsReachTheMethodAsTheValuesTheyWrite) {
  handle(
      R"({"jsonrpc":"2.0","method":"echo","params":[ 1.50 , {"a" : 123456789012345678901234567890},
            "x\u00e9\t", -0, 1e-400, [] ],"id":1})");
  ASSERT_EQ(methods_.call_count(), 1u);
  EXPECT_EQ(methods_.calls()[0].params,
            "[1.5,{\"a\":1.2345678901234568e+29},\"x\xC3\xA9\\t\",0,0,[]]");
}

TEST_F(JsonRpcRequests, ObjectParamsReachTheMethod) {
  handle(
      R"({"jsonrpc":"2.0","method":"echo","params": { "b" : { } , "a" : [ null , true ] },"id":1})");
  ASSERT_EQ(methods_.call_count(), 1u);
  EXPECT_EQ(methods_.calls()[0].params, R"({"a":[null,true],"b":{}})");
}

TEST_F(JsonRpcRequests, MembersMayComeInAnyOrder) {
  EXPECT_TRUE(same_json(handle(R"({"id":1,"params":[4,1],"method":"subtract","jsonrpc":"2.0"})"),
                        R"({"jsonrpc":"2.0","result":3,"id":1})"));
}

TEST_F(JsonRpcRequests, UnknownMembersAreIgnored) {
  EXPECT_TRUE(same_json(
      handle(
          R"({"jsonrpc":"2.0","method":"sum","params":[1],"id":1,"extra":{"id":2,"method":"x"}})"),
      R"({"jsonrpc":"2.0","result":1,"id":1})"));
}

// Duplicate names: parsers disagree on which copy counts, so a request whose
// protocol members repeat is refused rather than guessed at.
TEST_F(JsonRpcRequests, RepeatedIdIsInvalidRequestWithIdNull) {
  EXPECT_TRUE(same_json(
      handle(R"({"jsonrpc":"2.0","method":"sum","params":[1],"id":1,"id":2})"),
      R"({"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null})"));
  EXPECT_EQ(methods_.call_count(), 0u);
}

TEST_F(JsonRpcRequests, RepeatedMethodIsInvalidRequest) {
  EXPECT_TRUE(same_json(
      handle(R"({"jsonrpc":"2.0","method":"sum","method":"subtract","params":[1,1],"id":1})"),
      R"({"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":1})"));
  EXPECT_EQ(
      error_code(handle(R"({"jsonrpc":"2.0","jsonrpc":"2.0","method":"sum","params":[1],"id":1})")),
      -32600);
  EXPECT_EQ(
      error_code(handle(R"({"jsonrpc":"2.0","method":"sum","params":[1],"params":[2],"id":1})")),
      -32600);
  EXPECT_EQ(methods_.call_count(), 0u);
}

TEST_F(JsonRpcRequests, RepeatedNameInsideParamsTakesItsLastValue) {
  handle(R"({"jsonrpc":"2.0","method":"echo","params":{"a":1,"a":2},"id":1})");
  ASSERT_EQ(methods_.call_count(), 1u);
  EXPECT_EQ(methods_.calls()[0].params, R"({"a":2})");
}

TEST_F(JsonRpcRequests, LoneValueIsInvalidRequest) {
  for (std::string_view text : {"1", R"("x")", "null", "true"}) {
    EXPECT_TRUE(same_json(
        handle(text),
        R"({"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null})"))
        << text;
  }
}

TEST_F(JsonRpcRequests, BatchElementThatIsAnArrayIsInvalidRequest) {
  EXPECT_TRUE(same_json(
      handle(R"([[{"jsonrpc":"2.0","method":"sum","params":[1],"id":1}]])"),
      R"([{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null}])"));
  EXPECT_EQ(methods_.call_count(), 0u);
}

TEST_F(JsonRpcRequests, BatchKeepsRequestOrder) {
  EXPECT_TRUE(same_json(handle(R"([{"jsonrpc":"2.0","method":"get_data","id":3},
                                   {"jsonrpc":"2.0","method":"nothing","id":1},
                                   {"jsonrpc":"2.0","method":"sum","params":[1,1],"id":2}])"),
                        R"([{"jsonrpc":"2.0","result":["hello",5],"id":3},
                            {"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":1},
                            {"jsonrpc":"2.0","result":2,"id":2}])"));
  ASSERT_EQ(methods_.call_count(), 2u);
  EXPECT_EQ(methods_.calls()[0].method, "get_data");
  EXPECT_EQ(methods_.calls()[1].method, "sum");
}

TEST_F(JsonRpcRequests, ContextProtocolIsSetWhenEmpty) {
  EXPECT_TRUE(same_json(handle(R"({"jsonrpc":"2.0","method":"protocol","id":1})"),
                        R"({"jsonrpc":"2.0","result":"jsonrpc","id":1})"));
  context_.protocol = "jsonrpc-over-carrier-pigeon";
  EXPECT_TRUE(same_json(handle(R"({"jsonrpc":"2.0","method":"protocol","id":1})"),
                        R"({"jsonrpc":"2.0","result":"jsonrpc-over-carrier-pigeon","id":1})"));
}

// ---- Text that is not JSON ----

using JsonRpcParsing = JsonRpcTest;

constexpr std::string_view kParseError =
    R"({"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null})";

TEST_F(JsonRpcParsing, TrailingGarbageIsAParseError) {
  EXPECT_TRUE(
      same_json(handle(R"({"jsonrpc":"2.0","method":"update","params":[1]} x)"), kParseError));
  EXPECT_TRUE(
      same_json(handle(R"({"jsonrpc":"2.0","method":"update","params":[1]}{})"), kParseError));
  EXPECT_TRUE(
      same_json(handle(std::string(R"({"jsonrpc":"2.0","method":"update"})") + '\0'), kParseError));
  EXPECT_EQ(methods_.call_count(), 0u);
}

TEST_F(JsonRpcParsing, TrailingWhitespaceIsAllowed) {
  EXPECT_TRUE(same_json(
      handle(" \t\r\n{\"jsonrpc\":\"2.0\",\"method\":\"sum\",\"params\":[1],\"id\":1} \t\r\n"),
      R"({"jsonrpc":"2.0","result":1,"id":1})"));
}

TEST_F(JsonRpcParsing, EmptyTextIsAParseError) {
  EXPECT_TRUE(same_json(handle(""), kParseError));
  EXPECT_TRUE(same_json(handle(" \r\n\t"), kParseError));
}

TEST_F(JsonRpcParsing, InvalidUtf8IsAParseError) {
  EXPECT_TRUE(same_json(
      handle("{\"jsonrpc\":\"2.0\",\"method\":\"su\xffm\",\"params\":[1],\"id\":1}"), kParseError));
  EXPECT_TRUE(same_json(
      handle("{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"params\":{\"\xC0\xAF\":1},\"id\":1}"),
      kParseError));
  // A UTF-8-encoded surrogate (CESU-8) is not UTF-8 either.
  EXPECT_TRUE(same_json(
      handle("{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"params\":[\"\xED\xA0\x80\"],\"id\":1}"),
      kParseError));
  EXPECT_EQ(methods_.call_count(), 0u);
}

TEST_F(JsonRpcParsing, InvalidUtf8IsFoundAtEveryPositionOfALongString) {
  // ASCII is skipped in blocks; a bad byte must be seen wherever it falls.
  const std::string head = R"({"jsonrpc":"2.0","method":"echo","params":[")";
  for (std::size_t at = 0; at < 70; ++at) {
    std::string payload(70, 'a');
    payload[at] = '\xff';
    ASSERT_TRUE(same_json(handle(head + payload + R"("],"id":1})"), kParseError)) << "at " << at;
    payload[at] = '\xC3';  // a lead byte cut short by the ASCII after it
    ASSERT_TRUE(same_json(handle(head + payload + R"("],"id":1})"), kParseError)) << "at " << at;
  }
  EXPECT_EQ(methods_.call_count(), 0u);
  const std::string fine =
      head + std::string(33, 'a') + "\xC3\xA9" + std::string(33, 'b') + R"("],"id":1})";
  handle(fine);
  EXPECT_EQ(methods_.call_count(), 1u);
}

TEST_F(JsonRpcParsing, NulByteAnywhereIsAParseError) {
  using namespace std::string_literals;
  // Inside a string, between tokens, and after the value: never a cut-off
  // text that parses.
  EXPECT_TRUE(
      same_json(handle("{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"params\":[\"a\0b\"],\"id\":1}"s),
                kParseError));
  EXPECT_TRUE(
      same_json(handle("{\"jsonrpc\":\"2.0\",\0\"method\":\"echo\",\"id\":1}"s), kParseError));
  EXPECT_TRUE(
      same_json(handle("{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"id\":1}\0"s), kParseError));
  EXPECT_TRUE(
      same_json(handle("{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"id\":1}\0{}"s), kParseError));
  EXPECT_EQ(methods_.call_count(), 0u);
}

TEST_F(JsonRpcParsing, UnpairedSurrogateEscapeIsAParseError) {
  EXPECT_TRUE(same_json(handle(R"({"jsonrpc":"2.0","method":"echo","params":["\uDC00"],"id":1})"),
                        kParseError));
  EXPECT_TRUE(same_json(
      handle(R"({"jsonrpc":"2.0","method":"echo","params":{"\uDFFFx":1},"id":1})"), kParseError));
  EXPECT_TRUE(same_json(handle(R"({"jsonrpc":"2.0","method":"echo","params":["\uD800"],"id":1})"),
                        kParseError));
  EXPECT_EQ(methods_.call_count(), 0u);
}

TEST_F(JsonRpcParsing, SurrogatePairEscapeReachesTheMethodAsUtf8) {
  handle(R"({"jsonrpc":"2.0","method":"echo","params":["\uD83D\uDE00"],"id":1})");
  ASSERT_EQ(methods_.call_count(), 1u);
  EXPECT_EQ(methods_.calls()[0].params, "[\"\xF0\x9F\x98\x80\"]");
}

// RFC 8259 lets implementations limit the range of numbers; RapidJSON stops
// at a double's.
TEST_F(JsonRpcParsing, NumberBeyondADoublesRangeIsAParseError) {
  EXPECT_TRUE(same_json(handle(R"({"jsonrpc":"2.0","method":"echo","params":[1],"id":1e400})"),
                        kParseError));
  EXPECT_TRUE(same_json(handle(R"({"jsonrpc":"2.0","method":"echo","params":[)" +
                               std::string(400, '9') + R"(],"id":1})"),
                        kParseError));
  EXPECT_EQ(methods_.call_count(), 0u);
}

TEST_F(JsonRpcParsing, NumberWithinADoublesRangeReachesTheMethodAsTheNearestDouble) {
  const std::string digits(300, '7');
  handle(R"({"jsonrpc":"2.0","method":"echo","params":[)" + digits + R"(],"id":1})");
  ASSERT_EQ(methods_.call_count(), 1u);
  rapidjson::Document params;
  params.Parse<rapidjson::kParseFullPrecisionFlag>(methods_.calls()[0].params.data(),
                                                   methods_.calls()[0].params.size());
  ASSERT_TRUE(params.IsArray() && params.Size() == 1) << methods_.calls()[0].params;
  EXPECT_EQ(params[0].GetDouble(), std::strtod(digits.c_str(), nullptr));
}

TEST_F(JsonRpcParsing, NonJsonLiteralsAreParseErrors) {
  for (std::string_view text : {R"({"jsonrpc":"2.0","method":"echo","params":[NaN],"id":1})",
                                R"({"jsonrpc":"2.0","method":"echo","params":[Infinity],"id":1})",
                                R"({"jsonrpc":"2.0","method":"echo","params":[01],"id":1})",
                                R"({"jsonrpc":"2.0","method":"echo","params":[1,],"id":1})",
                                R"({"jsonrpc":"2.0","method":"echo",/*x*/"id":1})",
                                R"({'jsonrpc':'2.0','method':'echo','id':1})"}) {
    EXPECT_TRUE(same_json(handle(text), kParseError)) << text;
  }
  EXPECT_EQ(methods_.call_count(), 0u);
}

// ---- Outcomes of methods ----

using JsonRpcOutcomes = JsonRpcTest;

TEST_F(JsonRpcOutcomes, FailedCallBecomesServerErrorWithTheGrpcStatus) {
  EXPECT_TRUE(
      same_json(handle(R"({"jsonrpc":"2.0","method":"fail","id":1})"),
                R"({"jsonrpc":"2.0","error":{"code":-32003,"message":"minuend must be a number",
                            "data":{"grpc_code":3,"grpc_status":"INVALID_ARGUMENT"}},"id":1})"));
}

TEST_F(JsonRpcOutcomes, FailedCallWithoutMessageIsNamedByItsCode) {
  EXPECT_TRUE(same_json(handle(R"({"jsonrpc":"2.0","method":"fail_without_message","id":1})"),
                        R"({"jsonrpc":"2.0","error":{"code":-32005,"message":"NOT_FOUND",
                            "data":{"grpc_code":5,"grpc_status":"NOT_FOUND"}},"id":1})"));
}

TEST_F(JsonRpcOutcomes, FailedCallWithAnUnknownCodeIsUnknown) {
  EXPECT_TRUE(same_json(handle(R"({"jsonrpc":"2.0","method":"fail_with_ok","id":1})"),
                        R"({"jsonrpc":"2.0","error":{"code":-32002,"message":"UNKNOWN",
                            "data":{"grpc_code":2,"grpc_status":"UNKNOWN"}},"id":1})"));
}

TEST_F(JsonRpcOutcomes, FailureMessageIsMadeValidUtf8) {
  const auto response = handle(R"({"jsonrpc":"2.0","method":"fail_in_latin1","id":1})");
  EXPECT_TRUE(
      same_json(response, R"({"jsonrpc":"2.0","error":{"code":-32013,"message":"bad \uFFFD byte",
                                      "data":{"grpc_code":13,"grpc_status":"INTERNAL"}},"id":1})"));
}

TEST_F(JsonRpcOutcomes, ParamsThatDoNotFitAreInvalidParamsNamingTheParam) {
  EXPECT_TRUE(same_json(handle(R"({"jsonrpc":"2.0","method":"subtract","params":[1,true],"id":1})"),
                        R"({"jsonrpc":"2.0","error":{"code":-32602,"message":"Invalid params",
                            "data":"params[1] (subtrahend): expected a number, got a boolean"},"id":1})"));
  EXPECT_TRUE(same_json(
      handle(R"({"jsonrpc":"2.0","method":"subtract","params":{"minuend":1,"divisor":2},"id":2})"),
      R"({"jsonrpc":"2.0","error":{"code":-32602,"message":"Invalid params",
          "data":"conduit.interop.SubtractRequest has no field \"divisor\""},"id":2})"));
  EXPECT_EQ(error_code(handle(R"({"jsonrpc":"2.0","method":"subtract","params":[1,2,3],"id":3})")),
            -32602);
  EXPECT_EQ(error_code(handle(R"({"jsonrpc":"2.0","method":"sum","params":{"a":1},"id":4})")),
            -32602);
  EXPECT_EQ(methods_.call_count(), 0u) << "the handler never sees params that do not fit";
}

TEST_F(JsonRpcOutcomes, CallWhoseDeadlinePassedIsDeadlineExceeded) {
  context_.deadline = CallContext::Clock::now() - std::chrono::seconds(1);
  EXPECT_TRUE(same_json(handle(R"({"jsonrpc":"2.0","method":"sum","params":[1],"id":1})"),
                        R"({"jsonrpc":"2.0","error":{"code":-32004,
                            "message":"the deadline passed before the call started",
                            "data":{"grpc_code":4,"grpc_status":"DEADLINE_EXCEEDED"}},"id":1})"));
  EXPECT_EQ(methods_.call_count(), 0u);
  context_.deadline = CallContext::Clock::now() + std::chrono::milliseconds(20);
  EXPECT_EQ(error_code(handle(R"({"jsonrpc":"2.0","method":"slow","id":2})")), -32004);
}

TEST_F(JsonRpcOutcomes, ThrowingMethodIsInternal) {
  const auto response = handle(R"({"jsonrpc":"2.0","method":"throws","id":"t"})");
  EXPECT_TRUE(same_json(response, R"({"jsonrpc":"2.0","error":{"code":-32013,"message":"boom",
                                      "data":{"grpc_code":13,"grpc_status":"INTERNAL"}},"id":"t"})"));
  EXPECT_EQ(error_code(handle(R"({"jsonrpc":"2.0","method":"throws_int","id":1})")), -32013);
}

TEST_F(JsonRpcOutcomes, ResultThatCannotBePrintedIsInternalAndSparesTheRestOfItsBatch) {
  const auto response = handle(R"([{"jsonrpc":"2.0","method":"unprintable","id":1},
                                   {"jsonrpc":"2.0","method":"sum","params":[1],"id":2}])");
  const std::string_view expected = R"json([
      {"jsonrpc":"2.0","error":{"code":-32013,
       "message":"google.protobuf.Value: the string is not valid UTF-8",
       "data":{"grpc_code":13,"grpc_status":"INTERNAL"}},"id":1},
      {"jsonrpc":"2.0","result":1,"id":2}])json";
  EXPECT_TRUE(same_json(response, expected));
}

TEST_F(JsonRpcOutcomes, ResultIsWrittenAsCompactJson) {
  const auto response = handle(R"({"jsonrpc":"2.0","method":"spaced","id":1})");
  EXPECT_TRUE(contains(response, R"("result":{"a":[1,2]})")) << response.value_or("(none)");
  EXPECT_FALSE(contains(response, "\n"));
}

TEST_F(JsonRpcOutcomes, StreamingMethodIsUnimplementedSayingItStreams) {
  ServiceTable table;
  add_grpc_testing(table);
  Engine engine(table);
  for (std::string_view name : {"grpc.testing.TestService/FullDuplexCall", "StreamingOutputCall"}) {
    const auto response = engine.handle(
        R"({"jsonrpc":"2.0","method":")" + std::string(name) + R"(","params":{},"id":1})",
        context_);
    EXPECT_EQ(error_code(response), -32012) << response.value_or("(none)");
    EXPECT_TRUE(contains(response, "streams, and cannot be called with one request"))
        << response.value_or("(none)");
    EXPECT_FALSE(contains(response, "Method not found"));
  }
}

// ---- conduit.interop.JsonRpcExamples, the service itself ----

class JsonRpcExamplesService : public ::testing::Test {
 protected:
  JsonRpcExamplesService() { add_jsonrpc_examples(table_); }
  std::optional<std::string> call(std::string_view method, std::string_view params) {
    std::string request = R"({"jsonrpc":"2.0","method":")" + std::string(method) + '"';
    if (!params.empty()) request += R"(,"params":)" + std::string(params);
    request += R"(,"id":1})";
    return engine_.handle(request, context_);
  }
  std::string result_of(std::string_view method, std::string_view params) {
    const std::optional<std::string> response = call(method, params);
    const rapidjson::Document document = parse_json(response.value_or(""));
    if (!document.IsObject() || !document.HasMember("result")) {
      ADD_FAILURE() << method << " " << params << ": " << response.value_or("(none)");
      return {};
    }
    const std::size_t at = response->find(R"("result":)") + 9;
    return response->substr(at, response->rfind(R"(,"id":)") - at);
  }

  ServiceTable table_;
  CallContext context_;
  Engine engine_{table_};
};

TEST_F(JsonRpcExamplesService, SubtractTakesPositionalAndNamedParams) {
  EXPECT_EQ(result_of("subtract", "[42, 23]"), "19");
  EXPECT_EQ(result_of("subtract", "[0.5, 0.25]"), "0.25");
  EXPECT_EQ(result_of("subtract", R"({"subtrahend": 23, "minuend": 42})"), "19");
}

TEST_F(JsonRpcExamplesService, SumAddsEveryNumberAndRejectsTheRest) {
  EXPECT_EQ(result_of("sum", "[1, 2, 4, 8, 16]"), "31");
  EXPECT_EQ(result_of("sum", "[]"), "0");
  const auto refused = call("sum", R"([1, "2", 4])");
  EXPECT_EQ(error_code(refused), -32003) << refused.value_or("(none)");
  EXPECT_TRUE(contains(refused, "params[1]"));
}

TEST_F(JsonRpcExamplesService, GetDataReturnsHelloAndFive) {
  EXPECT_EQ(result_of("get_data", ""), R"(["hello",5])");
  EXPECT_EQ(result_of("get_data", "[]"), R"(["hello",5])");
  EXPECT_EQ(error_code(call("get_data", "[1]")), -32602);
}

TEST_F(JsonRpcExamplesService, NotificationsAcceptAnyListAndReturnEmpty) {
  EXPECT_EQ(result_of("update", R"([{"any": "thing"}, null, "x"])"), "{}");
}

TEST_F(JsonRpcExamplesService, EchoReturnsItsParamsUnchanged) {
  for (const char* params :
       {R"({"name": "myself", "tags": ["a", "b"], "n": 1.25})",
        R"([1, "two", true, null, {"five": [6, 7]}])",
        R"({"deep": {"deeper": {"deepest": [[[]]], "empty": {}}}})", "[]", "{}"}) {
    EXPECT_TRUE(same_json(result_of("echo", params), params)) << params;
  }
  EXPECT_EQ(result_of("echo", ""), "null");
}

// ---- Limits ----

using JsonRpcLimits = JsonRpcTest;

std::string nested_arrays(std::size_t depth) {
  return std::string(depth, '[') + std::string(depth, ']');
}

TEST_F(JsonRpcLimits, TenThousandDeepArrayIsRefused) {
  const auto response = handle(nested_arrays(10'000));
  EXPECT_EQ(error_code(response), -32600) << response.value_or("(none)");
  EXPECT_NE(error_data(response).find("64"), std::string::npos) << error_data(response);
}

TEST_F(JsonRpcLimits, DeepParamsAreRefusedBeforeTheCall) {
  std::string nested_objects;
  for (int i = 0; i < 10'000; ++i) nested_objects += R"({"a":)";
  nested_objects += "1" + std::string(10'000, '}');
  const auto response =
      handle(R"({"jsonrpc":"2.0","method":"echo","params":)" + nested_objects + R"(,"id":1})");
  EXPECT_EQ(error_code(response), -32600) << response.value_or("(none)");
  EXPECT_NE(error_data(response).find("max_depth"), std::string::npos) << error_data(response);
  EXPECT_EQ(methods_.call_count(), 0u);
}

TEST_F(JsonRpcLimits, NestingUpToTheLimitIsAccepted) {
  Engine engine(methods_, Limits{.max_depth = 4});
  // The request object, then three arrays: 4 deep.
  EXPECT_TRUE(same_json(
      engine.handle(R"({"jsonrpc":"2.0","method":"echo","params":[[[1]]],"id":1})", context_),
      R"({"jsonrpc":"2.0","result":[[[1]]],"id":1})"));
  EXPECT_EQ(error_code(engine.handle(
                R"({"jsonrpc":"2.0","method":"echo","params":[[[[1]]]],"id":1})", context_)),
            -32600);
  // In a batch, the batch's array is one more level.
  EXPECT_EQ(error_code(engine.handle(
                R"([{"jsonrpc":"2.0","method":"echo","params":[[[1]]],"id":1}])", context_)),
            -32600);
}

TEST_F(JsonRpcLimits, MillionDeepArrayWithoutDepthLimitDoesNotOverflowTheStack) {
  Engine engine(methods_, Limits{.max_depth = std::numeric_limits<int>::max()});
  EXPECT_TRUE(same_json(
      engine.handle(nested_arrays(1'000'000), context_),
      R"([{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null}])"));
}

TEST_F(JsonRpcLimits, BodyOverTheLimitIsRefusedUnparsed) {
  const std::string request = R"({"jsonrpc":"2.0","method":"sum","params":[1],"id":1})";
  Engine engine(methods_, Limits{.max_body_bytes = request.size() - 1});
  const auto response = engine.handle(request, context_);
  EXPECT_EQ(error_code(response), -32600) << response.value_or("(none)");
  EXPECT_NE(error_data(response).find(std::to_string(request.size() - 1)), std::string::npos)
      << error_data(response);
  // Not parsed: broken JSON over the limit is not a Parse error.
  EXPECT_EQ(error_code(engine.handle(std::string(request.size(), '{'), context_)), -32600);
  EXPECT_EQ(methods_.call_count(), 0u);
}

TEST_F(JsonRpcLimits, BodyAtTheLimitIsAccepted) {
  const std::string request = R"({"jsonrpc":"2.0","method":"sum","params":[1],"id":1})";
  Engine engine(methods_, Limits{.max_body_bytes = request.size()});
  EXPECT_TRUE(
      same_json(engine.handle(request, context_), R"({"jsonrpc":"2.0","result":1,"id":1})"));
}

TEST_F(JsonRpcLimits, BatchOverTheLimitIsOneError) {
  Engine engine(methods_, Limits{.max_batch = 2});
  const auto response = engine.handle(R"([{"jsonrpc":"2.0","method":"sum","params":[1],"id":1},
                                          {"jsonrpc":"2.0","method":"sum","params":[2],"id":2},
                                          {"jsonrpc":"2.0","method":"sum","params":[3],"id":3}])",
                                      context_);
  EXPECT_EQ(error_code(response), -32600) << response.value_or("(none)");
  EXPECT_NE(error_data(response).find("limit of 2 "), std::string::npos) << error_data(response);
  EXPECT_EQ(methods_.call_count(), 0u);
}

TEST_F(JsonRpcLimits, BatchAtTheLimitIsServed) {
  Engine engine(methods_, Limits{.max_batch = 2});
  EXPECT_TRUE(
      same_json(engine.handle(R"([{"jsonrpc":"2.0","method":"sum","params":[1,2,3],"id":1},
                                          {"jsonrpc":"2.0","method":"sum","params":[2],"id":2}])",
                              context_),
                R"([{"jsonrpc":"2.0","result":6,"id":1},{"jsonrpc":"2.0","result":2,"id":2}])"));
}

TEST_F(JsonRpcLimits, DefaultBatchLimitIs1024) {
  auto batch_of = [](std::size_t size) {
    std::string text = "[";
    for (std::size_t i = 0; i < size; ++i) {
      text += R"({"jsonrpc":"2.0","method":"update"},)";
    }
    text.back() = ']';
    return text;
  };
  EXPECT_EQ(handle(batch_of(1024)), std::nullopt);
  const auto response = handle(batch_of(1025));
  EXPECT_EQ(error_code(response), -32600);
  EXPECT_NE(error_data(response).find("1024"), std::string::npos) << error_data(response);
  EXPECT_EQ(methods_.call_count(), 1024u);
}

TEST_F(JsonRpcLimits, ConstructorRefusesDepthBelowOne) {
  EXPECT_THROW(Engine(methods_, Limits{.max_depth = 0}), Error);
}

// ---- Robustness ----

using JsonRpcRobustness = JsonRpcTest;

// Whatever comes in, the engine answers with one JSON object or array (valid
// UTF-8), or not at all, and never crashes or throws.
TEST_F(JsonRpcRobustness, MutatedRequestsGetWellFormedAnswers) {
  const std::vector<std::string> seeds = {
      R"({"jsonrpc": "2.0", "method": "subtract", "params": {"subtrahend": 23, "minuend": 42}, "id": 3})",
      R"([{"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
          {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}, {"foo": "boo"},
          {"jsonrpc": "2.0", "method": "get_data", "id": "9"}])",
      R"({"jsonrpc":"2.0","method":"fail","params":["\u00e9\uD83D\uDE00"],"id":1.5e3})",
  };
  const std::string alphabet = "{}[]\",:0123456789.eE+-\\u tnrfalse\x80\xC3\xA9\xED\xFF";
  std::mt19937 random(20240601);
  int answered = 0;
  auto check = [&](const std::string& text) {
    const std::optional<std::string> response = handle(text);
    if (!response) return;
    ++answered;
    const rapidjson::Document document = parse_json(*response);
    ASSERT_FALSE(document.HasParseError()) << "for " << text << "\nanswered " << *response;
    ASSERT_TRUE(document.IsObject() || document.IsArray()) << *response;
  };
  for (const std::string& seed : seeds) {
    for (std::size_t length = 0; length <= seed.size(); ++length) check(seed.substr(0, length));
    for (int round = 0; round < 3000; ++round) {
      std::string text = seed;
      const int edits = 1 + static_cast<int>(random() % 4);
      for (int edit = 0; edit < edits; ++edit) {
        const std::size_t at = random() % (text.size() + 1);
        const char c = alphabet[random() % alphabet.size()];
        switch (random() % 3) {
          case 0:
            text.insert(at, 1, c);
            break;
          case 1:
            if (at < text.size()) text.erase(at, 1);
            break;
          default:
            if (at < text.size()) text[at] = c;
            break;
        }
      }
      check(text);
    }
  }
  EXPECT_GT(answered, 1000);
}

TEST_F(JsonRpcRobustness, ConcurrentCallsDoNotInterfere) {
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  threads.reserve(8);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      CallContext context;
      for (int i = 0; i < 300; ++i) {
        const int id = t * 1000 + i;
        const std::string request = R"([{"jsonrpc":"2.0","method":"subtract","params":[)" +
                                    std::to_string(id) + R"(,1],"id":)" + std::to_string(id) +
                                    R"(},{"jsonrpc":"2.0","method":"update"}])";
        const std::string expected = R"([{"jsonrpc":"2.0","result":)" + std::to_string(id - 1) +
                                     R"(,"id":)" + std::to_string(id) + "}]";
        if (!same_json(engine_.handle(request, context), expected)) ++wrong;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(methods_.call_count(), 8u * 300u * 2u);
}

// ---- The client side ----

using JsonRpcClient = JsonRpcTest;

TEST_F(JsonRpcClient, RequestHoldsEveryMember) {
  EXPECT_TRUE(same_json(make_request("subtract", "[42, 23]", 1),
                        R"({"jsonrpc":"2.0","method":"subtract","params":[42,23],"id":1})"));
}

TEST_F(JsonRpcClient, RequestWithoutParamsHasNoParamsMember) {
  EXPECT_TRUE(same_json(make_request("get_data", "", 9),
                        R"({"jsonrpc":"2.0","method":"get_data","id":9})"));
}

TEST_F(JsonRpcClient, RequestKeepsParamsAsWrittenButCompact) {
  EXPECT_EQ(
      make_request("echo", " { \"n\" : [ 123456789012345678901234567890 , 1.50 ] } ", -3),
      R"({"jsonrpc":"2.0","method":"echo","params":{"n":[123456789012345678901234567890,1.50]},"id":-3})");
}

TEST_F(JsonRpcClient, RequestEscapesTheMethodName) {
  const rapidjson::Document request = parse_json(make_request("a\"b\\c\n", "", 1));
  ASSERT_TRUE(request.IsObject());
  EXPECT_EQ(std::string(request["method"].GetString()), "a\"b\\c\n");
}

TEST_F(JsonRpcClient, RequestRefusesParamsThatAreNotAnArrayOrObject) {
  for (std::string_view params : {"42", R"("x")", "null", "true"}) {
    try {
      make_request("echo", params, 1);
      ADD_FAILURE() << params << " was accepted";
    } catch (const Error& error) {
      EXPECT_NE(std::string(error.what()).find("array or object"), std::string::npos)
          << error.what();
    }
  }
}

TEST_F(JsonRpcClient, RequestRefusesParamsThatAreNotJson) {
  for (std::string_view params : {"[1,", "[1] x", "{'a':1}", " ", "[\"\xff\"]"}) {
    try {
      make_request("echo", params, 1);
      ADD_FAILURE() << params << " was accepted";
    } catch (const Error& error) {
      EXPECT_NE(std::string(error.what()).find("not valid JSON"), std::string::npos)
          << error.what();
    }
  }
}

TEST_F(JsonRpcClient, RequestRefusesAMethodNameThatIsNotUtf8) {
  EXPECT_THROW(make_request("\xff", "", 1), Error);
}

TEST_F(JsonRpcClient, ResultRoundTrip) {
  const Reply reply = parse_reply(*handle(make_request("subtract", "[42, 23]", 7)), 7);
  EXPECT_TRUE(reply.ok);
  EXPECT_EQ(reply.result_json, "19");
  EXPECT_EQ(reply.error_json, "");
}

TEST_F(JsonRpcClient, ResultRoundTripKeepsStructure) {
  const Reply reply = parse_reply(*handle(make_request("echo", R"({"a": [1, "x", null]})", 1)), 1);
  EXPECT_TRUE(reply.ok);
  EXPECT_EQ(reply.result_json, R"({"a":[1,"x",null]})");
}

TEST_F(JsonRpcClient, ResultIsTakenAsTheServerWroteIt) {
  const Reply reply =
      parse_reply(R"({"jsonrpc":"2.0", "result" : [ 1.50, "\u00e9" ] , "id":1})", 1);
  EXPECT_TRUE(reply.ok);
  EXPECT_EQ(reply.result_json, R"([ 1.50, "\u00e9" ])");
}

TEST_F(JsonRpcClient, MembersAreFoundPastStringsThatLookLikeThem) {
  const Reply reply =
      parse_reply(R"({"x":"\"id\":9,\\","result":{"id":[2,"]}"]},"jsonrpc":"2.0","id":1})", 1);
  EXPECT_TRUE(reply.ok);
  EXPECT_EQ(reply.result_json, R"({"id":[2,"]}"]})");
}

TEST_F(JsonRpcClient, ErrorRoundTrip) {
  const Reply reply = parse_reply(*handle(make_request("foobar", "", 2)), 2);
  EXPECT_FALSE(reply.ok);
  EXPECT_EQ(reply.error_code, -32601);
  EXPECT_EQ(reply.error_message, "Method not found");
  EXPECT_TRUE(same_json(reply.error_json, R"({"code":-32601,"message":"Method not found"})"));
}

TEST_F(JsonRpcClient, FailureRoundTripKeepsTheData) {
  const Reply reply = parse_reply(*handle(make_request("fail", "[]", 3)), 3);
  EXPECT_FALSE(reply.ok);
  EXPECT_EQ(reply.error_code, -32003);
  EXPECT_EQ(reply.error_message, "minuend must be a number");
  EXPECT_TRUE(same_json(reply.error_json, R"({"code":-32003,"message":"minuend must be a number",
                                              "data":{"grpc_code":3,"grpc_status":"INVALID_ARGUMENT"}})"));
}

TEST_F(JsonRpcClient, ExtremeIdsRoundTrip) {
  for (std::int64_t id : {std::numeric_limits<std::int64_t>::min(), std::int64_t{0},
                          std::numeric_limits<std::int64_t>::max()}) {
    const Reply reply = parse_reply(*handle(make_request("sum", "[1]", id)), id);
    EXPECT_TRUE(reply.ok) << id;
  }
}

TEST_F(JsonRpcClient, ErrorReplyWithIdNullIsAccepted) {
  const Reply reply = parse_reply(*handle("{"), 5);
  EXPECT_FALSE(reply.ok);
  EXPECT_EQ(reply.error_code, -32700);
  EXPECT_EQ(reply.error_message, "Parse error");
}

TEST_F(JsonRpcClient, ReplyWithAnotherIdIsRefused) {
  EXPECT_THROW(parse_reply(R"({"jsonrpc":"2.0","result":1,"id":2})", 1), ProtocolError);
  EXPECT_THROW(parse_reply(R"({"jsonrpc":"2.0","result":1,"id":"1"})", 1), ProtocolError);
  EXPECT_THROW(parse_reply(R"({"jsonrpc":"2.0","result":1,"id":1.0})", 1), ProtocolError);
  EXPECT_THROW(parse_reply(R"({"jsonrpc":"2.0","result":1,"id":null})", 1), ProtocolError);
  EXPECT_THROW(parse_reply(R"({"jsonrpc":"2.0","error":{"code":1,"message":"x"},"id":2})", 1),
               ProtocolError);
}

TEST_F(JsonRpcClient, ReplyThatIsNotOneResponseObjectIsRefused) {
  for (std::string_view text : {"", "not json", R"([{"jsonrpc":"2.0","result":1,"id":1}])", "1",
                                R"({"jsonrpc":"2.0","result":1,"id":1} x)"}) {
    EXPECT_THROW(parse_reply(std::string(text), 1), ProtocolError) << text;
  }
}

TEST_F(JsonRpcClient, ReplyBreakingTheProtocolIsRefused) {
  for (std::string_view text : {
           R"({"result":1,"id":1})",
           R"({"jsonrpc":"1.0","result":1,"id":1})",
           R"({"jsonrpc":"2.0","id":1})",
           R"({"jsonrpc":"2.0","result":1})",
           R"({"jsonrpc":"2.0","result":1,"error":{"code":1,"message":"x"},"id":1})",
           R"({"jsonrpc":"2.0","result":1,"id":1,"id":1})",
           R"({"jsonrpc":"2.0","error":"x","id":1})",
           R"({"jsonrpc":"2.0","error":{"message":"x"},"id":1})",
           R"({"jsonrpc":"2.0","error":{"code":1.5,"message":"x"},"id":1})",
           R"({"jsonrpc":"2.0","error":{"code":"1","message":"x"},"id":1})",
           R"({"jsonrpc":"2.0","error":{"code":99999999999,"message":"x"},"id":1})",
           R"({"jsonrpc":"2.0","error":{"code":1},"id":1})",
           R"({"jsonrpc":"2.0","error":{"code":1,"message":2},"id":1})",
       }) {
    EXPECT_THROW(parse_reply(std::string(text), 1), ProtocolError) << text;
  }
}

TEST_F(JsonRpcClient, ReplyMayCarryErrorDataOfAnyKind) {
  const Reply reply = parse_reply(
      R"({"jsonrpc":"2.0","error":{"code":-1,"message":"m","data":[1,{"x":null}]},"id":4})", 4);
  EXPECT_FALSE(reply.ok);
  EXPECT_EQ(reply.error_code, -1);
  EXPECT_EQ(reply.error_json, R"({"code":-1,"message":"m","data":[1,{"x":null}]})");
}

}  // namespace
}  // namespace conduit::rpc::jsonrpc
