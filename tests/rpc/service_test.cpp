#include "conduit/rpc/service.hpp"

#include <google/protobuf/any.pb.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/empty.pb.h>
#include <google/protobuf/struct.pb.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "conduit/error.hpp"
#include "conduit/interop/jsonrpc_examples.pb.h"
#include "grpc/testing/messages.pb.h"
#include "rpc/services/grpc_testing.hpp"
#include "rpc/services/jsonrpc_examples.hpp"

namespace conduit::rpc {
namespace {

namespace pb = google::protobuf;
using interop::SubtractRequest;
using Outcome = JsonCall::Outcome;

const std::string kExamples = "conduit.interop.JsonRpcExamples/";

// Equal as JSON values: object members in any order, 19 equal to 19.0.
testing::AssertionResult same_json(std::string_view actual, std::string_view expected) {
  rapidjson::Document got;
  rapidjson::Document want;
  got.Parse(actual.data(), actual.size());
  want.Parse(expected.data(), expected.size());
  if (got.HasParseError()) return testing::AssertionFailure() << "not JSON: " << actual;
  if (want.HasParseError()) return testing::AssertionFailure() << "bad expectation: " << expected;
  if (got != want) return testing::AssertionFailure() << actual << " is not " << expected;
  return testing::AssertionSuccess();
}

// A test-only file, "test/other.proto":
//   message Point { int64 x = 1; string label = 2; }
//   message Order { string item_name = 1; int32 quantity = 2; }
//   service Other {
//     rpc echo(google.protobuf.Value) returns (google.protobuf.Value);
//     rpc mirror(Point) returns (Point);
//     rpc wrap(google.protobuf.Empty) returns (google.protobuf.Any);
//   }
// built into `pool`, which has either the generated pool as underlay or its
// own copies of struct.proto, empty.proto and any.proto.
const pb::FileDescriptor& build_other_proto(pb::DescriptorPool& pool, bool own_well_known_types) {
  if (own_well_known_types) {
    for (const pb::FileDescriptor* file :
         {pb::Value::descriptor()->file(), pb::Empty::descriptor()->file(),
          pb::Any::descriptor()->file()}) {
      pb::FileDescriptorProto copy;
      file->CopyTo(&copy);
      if (pool.BuildFile(copy) == nullptr) throw std::runtime_error("cannot copy " + file->name());
    }
  }
  pb::FileDescriptorProto file;
  file.set_name("test/other.proto");
  file.set_package("test");
  file.set_syntax("proto3");
  file.add_dependency("google/protobuf/struct.proto");
  file.add_dependency("google/protobuf/empty.proto");
  file.add_dependency("google/protobuf/any.proto");
  auto add_field = [](pb::DescriptorProto& message, const char* name, int number,
                      pb::FieldDescriptorProto::Type type) {
    pb::FieldDescriptorProto& field = *message.add_field();
    field.set_name(name);
    field.set_number(number);
    field.set_label(pb::FieldDescriptorProto::LABEL_OPTIONAL);
    field.set_type(type);
  };
  pb::DescriptorProto& point = *file.add_message_type();
  point.set_name("Point");
  add_field(point, "x", 1, pb::FieldDescriptorProto::TYPE_INT64);
  add_field(point, "label", 2, pb::FieldDescriptorProto::TYPE_STRING);
  pb::DescriptorProto& order = *file.add_message_type();
  order.set_name("Order");
  add_field(order, "item_name", 1, pb::FieldDescriptorProto::TYPE_STRING);
  add_field(order, "quantity", 2, pb::FieldDescriptorProto::TYPE_INT32);
  pb::ServiceDescriptorProto& service = *file.add_service();
  service.set_name("Other");
  auto add_method = [&service](const char* name, const char* input, const char* output) {
    pb::MethodDescriptorProto& method = *service.add_method();
    method.set_name(name);
    method.set_input_type(input);
    method.set_output_type(output);
  };
  add_method("echo", ".google.protobuf.Value", ".google.protobuf.Value");
  add_method("mirror", ".test.Point", ".test.Point");
  add_method("wrap", ".google.protobuf.Empty", ".google.protobuf.Any");
  const pb::FileDescriptor* built = pool.BuildFile(file);
  if (built == nullptr) throw std::runtime_error("cannot build test/other.proto");
  return *built;
}

Status copy_request(CallContext&, const pb::Message& request, pb::Message& response) {
  response.CopyFrom(request);
  return {};
}

// test.Other/mirror: x becomes -x, the label stays.
Status mirror_point(CallContext&, const pb::Message& request, pb::Message& response) {
  const pb::Descriptor& type = *request.GetDescriptor();
  const pb::Reflection& in = *request.GetReflection();
  const pb::Reflection& out = *response.GetReflection();
  const pb::FieldDescriptor* x = type.FindFieldByName("x");
  const pb::FieldDescriptor* label = type.FindFieldByName("label");
  out.SetInt64(&response, x, -in.GetInt64(request, x));
  out.SetString(&response, label, in.GetString(request, label));
  return {};
}

// ---- json_params_to_message and message_to_json ----

TEST(ServiceJsonParams, NamedParamsFillFieldsByName) {
  SubtractRequest request;
  ASSERT_TRUE(json_params_to_message(R"({"subtrahend": 23, "minuend": 42})", request).ok());
  EXPECT_EQ(request.minuend(), 42);
  EXPECT_EQ(request.subtrahend(), 23);
}

TEST(ServiceJsonParams, NulByteInParamsIsRefusedWhereverItIs) {
  using namespace std::string_literals;
  for (const std::string& params : {"{\"minuend\": 42}\0"s, "{\"minuend\": 42}\0{}"s,
                                    "{\"minuend\":\0 42}"s}) {
    SubtractRequest request;
    const Status status = json_params_to_message(params, request);
    EXPECT_EQ(status.code(), StatusCode::invalid_argument) << status.to_string();
  }
  google::protobuf::Value value;
  EXPECT_EQ(json_params_to_message("[\"a\0b\"]"s, value).code(), StatusCode::invalid_argument);
}

TEST(ServiceJsonParams, NamedParamsTakeJsonNamesAndProtoNames) {
  pb::DescriptorPool pool(pb::DescriptorPool::generated_pool());
  const pb::FileDescriptor& file = build_other_proto(pool, false);
  pb::DynamicMessageFactory factory;
  const pb::Descriptor& order_type = *file.FindMessageTypeByName("Order");
  const pb::FieldDescriptor& item_name = *order_type.FindFieldByName("item_name");
  ASSERT_EQ(item_name.json_name(), "itemName");

  for (const char* params : {R"({"itemName": "tea"})", R"({"item_name": "tea"})"}) {
    std::unique_ptr<pb::Message> order(factory.GetPrototype(&order_type)->New());
    const Status status = json_params_to_message(params, *order);
    ASSERT_TRUE(status.ok()) << params << ": " << status.to_string();
    EXPECT_EQ(order->GetReflection()->GetString(*order, &item_name), "tea") << params;
  }
}

TEST(ServiceJsonParams, UnknownNamedParamIsInvalidArgumentNamingIt) {
  SubtractRequest request;
  const Status status = json_params_to_message(R"({"minuend": 1, "divisor": 2})", request);
  EXPECT_EQ(status.code(), StatusCode::invalid_argument);
  EXPECT_NE(status.message().find("divisor"), std::string::npos) << status.message();
}

TEST(ServiceJsonParams, PositionalParamsFillFieldsInDeclarationOrder) {
  SubtractRequest request;
  ASSERT_TRUE(json_params_to_message("[42, 23]", request).ok());
  EXPECT_EQ(request.minuend(), 42);
  EXPECT_EQ(request.subtrahend(), 23);
}

TEST(ServiceJsonParams, PositionalParamsKeepTheirTextExactly) {
  pb::DescriptorPool pool(pb::DescriptorPool::generated_pool());
  const pb::FileDescriptor& file = build_other_proto(pool, false);
  pb::DynamicMessageFactory factory;
  const pb::Descriptor& point_type = *file.FindMessageTypeByName("Point");
  std::unique_ptr<pb::Message> point(factory.GetPrototype(&point_type)->New());

  // 2^63 - 1 has no exact double; a comma and a bracket inside the string
  // are not element boundaries.
  const Status status = json_params_to_message(R"([9223372036854775807, "a,]\"b"])", *point);
  ASSERT_TRUE(status.ok()) << status.to_string();
  const pb::Reflection& reflection = *point->GetReflection();
  EXPECT_EQ(reflection.GetInt64(*point, point_type.FindFieldByName("x")), INT64_MAX);
  EXPECT_EQ(reflection.GetString(*point, point_type.FindFieldByName("label")), "a,]\"b");
}

TEST(ServiceJsonParams, FewerPositionalParamsLeaveTheRestDefault) {
  SubtractRequest request;
  request.set_subtrahend(7);  // cleared: the params say nothing about it
  ASSERT_TRUE(json_params_to_message("[42]", request).ok());
  EXPECT_EQ(request.minuend(), 42);
  EXPECT_EQ(request.subtrahend(), 0);
}

TEST(ServiceJsonParams, TooManyPositionalParamsIsInvalidArgument) {
  SubtractRequest request;
  const Status status = json_params_to_message("[1, 2, 3]", request);
  EXPECT_EQ(status,
            Status(StatusCode::invalid_argument, "3 params given, SubtractRequest takes 2"));
}

TEST(ServiceJsonParams, WrongTypeIsInvalidArgumentNamingTheField) {
  SubtractRequest request;
  const Status named = json_params_to_message(R"({"minuend": 1, "subtrahend": "abc"})", request);
  EXPECT_EQ(named.code(), StatusCode::invalid_argument);
  EXPECT_NE(named.message().find("subtrahend"), std::string::npos) << named.message();

  const Status positional = json_params_to_message(R"([1, "abc"])", request);
  EXPECT_EQ(positional.code(), StatusCode::invalid_argument);
  EXPECT_NE(positional.message().find("params[1]"), std::string::npos) << positional.message();
  EXPECT_NE(positional.message().find("subtrahend"), std::string::npos) << positional.message();

  const Status list = json_params_to_message(R"([[1], 2])", request);
  EXPECT_EQ(list.code(), StatusCode::invalid_argument);
  EXPECT_NE(list.message().find("params[0]"), std::string::npos) << list.message();
}

TEST(ServiceJsonParams, EmptyParamsMeanNoParams) {
  for (const char* params : {"", "  \n"}) {
    SubtractRequest request;
    request.set_minuend(1);
    EXPECT_TRUE(json_params_to_message(params, request).ok());
    EXPECT_EQ(request.minuend(), 0) << '"' << params << '"';
  }
}

TEST(ServiceJsonParams, ParamsMustBeAnArrayOrAnObject) {
  for (const char* params : {"42", R"("text")", "null", "true"}) {
    SubtractRequest request;
    EXPECT_EQ(json_params_to_message(params, request).code(), StatusCode::invalid_argument)
        << params;
  }
}

TEST(ServiceJsonParams, MalformedJsonIsInvalidArgument) {
  for (const char* params : {"[1, 2", R"({"minuend": 1,})", "[1,,2]", "{minuend: 1}", "[1] x"}) {
    SubtractRequest request;
    const Status status = json_params_to_message(params, request);
    EXPECT_EQ(status.code(), StatusCode::invalid_argument) << params;
    EXPECT_NE(status.message().find("not valid JSON"), std::string::npos) << status.message();
  }
}

TEST(ServiceJsonParams, ValueTakesAnyJsonWhole) {
  for (const char* params : {"[1, 2]", R"({"a": [true, null]})", R"("text")", "-1.5", "null"}) {
    pb::Value value;
    ASSERT_TRUE(json_params_to_message(params, value).ok()) << params;
    EXPECT_TRUE(same_json(message_to_json(value), params));
  }
}

TEST(ServiceJsonParams, ValueWithoutParamsIsNull) {
  pb::Value value;
  value.set_number_value(1);
  ASSERT_TRUE(json_params_to_message("", value).ok());
  EXPECT_EQ(value.kind_case(), pb::Value::kNullValue);
}

TEST(ServiceJsonParams, ListValueTakesAnArrayWholeAndNoObject) {
  pb::ListValue list;
  ASSERT_TRUE(json_params_to_message(R"([1, "two", [3]])", list).ok());
  ASSERT_EQ(list.values_size(), 3);
  EXPECT_EQ(list.values(1).string_value(), "two");

  EXPECT_EQ(json_params_to_message(R"({"a": 1})", list).code(), StatusCode::invalid_argument);
  EXPECT_EQ(json_params_to_message("", list).code(), StatusCode::ok);
  EXPECT_EQ(list.values_size(), 0);
}

TEST(ServiceJsonParams, StructTakesAnObjectWholeAndNoArray) {
  pb::Struct object;
  ASSERT_TRUE(json_params_to_message(R"({"anything": {"goes": 1}})", object).ok());
  EXPECT_EQ(object.fields().at("anything").struct_value().fields().at("goes").number_value(), 1);

  EXPECT_EQ(json_params_to_message("[1]", object).code(), StatusCode::invalid_argument);
}

TEST(ServiceJsonParams, EmptyTakesNothingOrEmptyContainers) {
  for (const char* params : {"", "[]", "{}", " [ ] "}) {
    pb::Empty empty;
    EXPECT_TRUE(json_params_to_message(params, empty).ok()) << params;
  }
  for (const char* params : {"[1]", R"({"a": 1})", "0"}) {
    pb::Empty empty;
    EXPECT_EQ(json_params_to_message(params, empty).code(), StatusCode::invalid_argument) << params;
  }
}

TEST(ServiceJsonParams, ParamsOfDynamicWellKnownTypesAreTakenWhole) {
  pb::DescriptorPool pool;  // its own struct.proto: no generated classes
  const pb::FileDescriptor& file = build_other_proto(pool, true);
  pb::DynamicMessageFactory factory;
  const pb::Descriptor& value_type = *file.service(0)->FindMethodByName("echo")->input_type();
  ASSERT_NE(&value_type, pb::Value::descriptor());
  std::unique_ptr<pb::Message> value(factory.GetPrototype(&value_type)->New());

  ASSERT_TRUE(json_params_to_message(R"([1, {"a": "b"}])", *value).ok());
  EXPECT_TRUE(same_json(message_to_json(*value), R"([1, {"a": "b"}])"));
}

TEST(ServiceJsonOutput, WholeNumberPrintsWithoutAFraction) {
  pb::Value value;
  value.set_number_value(19.0);
  EXPECT_EQ(message_to_json(value), "19");
  value.set_number_value(-0.5);
  EXPECT_EQ(message_to_json(value), "-0.5");
}

TEST(ServiceJsonOutput, WellKnownTypesPrintAsPlainJson) {
  pb::ListValue list;
  list.add_values()->set_string_value("hello");
  list.add_values()->set_number_value(5);
  EXPECT_EQ(message_to_json(list), R"(["hello",5])");

  pb::Struct object;
  (*object.mutable_fields())["ok"].set_bool_value(true);
  EXPECT_EQ(message_to_json(object), R"({"ok":true})");

  EXPECT_EQ(message_to_json(pb::Empty()), "{}");
}

TEST(ServiceJsonOutput, ValueWithoutKindPrintsAsNull) {
  EXPECT_EQ(message_to_json(pb::Value()), "null");
}

TEST(ServiceJsonOutput, MessagesUseJsonNamesAndOmitDefaults) {
  SubtractRequest request;
  request.set_subtrahend(2);
  EXPECT_EQ(message_to_json(request), R"({"subtrahend":2})");

  pb::DescriptorPool pool(pb::DescriptorPool::generated_pool());
  const pb::FileDescriptor& file = build_other_proto(pool, false);
  pb::DynamicMessageFactory factory;
  const pb::Descriptor& order_type = *file.FindMessageTypeByName("Order");
  std::unique_ptr<pb::Message> order(factory.GetPrototype(&order_type)->New());
  order->GetReflection()->SetString(order.get(), order_type.FindFieldByName("item_name"), "tea");
  EXPECT_EQ(message_to_json(*order), R"({"itemName":"tea"})");
}

// ---- ServiceTable ----

class ServiceTableTest : public testing::Test {
 protected:
  ServiceTableTest() { add_jsonrpc_examples(table_); }

  JsonCall call(std::string_view method, std::string_view params) {
    std::optional<JsonCall> result = table_.call_json(method, params, context_);
    if (!result) {
      ADD_FAILURE() << "no method " << method;
      return {JsonCall::Outcome::failed, {}, Status(StatusCode::not_found, "no method")};
    }
    return *result;
  }

  // Declared before the table, which refers to their descriptors: one over
  // the generated pool, one with its own copies of the well-known types.
  pb::DescriptorPool pool_{pb::DescriptorPool::generated_pool()};
  pb::DescriptorPool own_pool_;
  ServiceTable table_;
  CallContext context_;
};

TEST_F(ServiceTableTest, FindsAMethodByEverySpellingOfItsName) {
  const Method* method = table_.find(kExamples + "subtract");
  ASSERT_NE(method, nullptr);
  EXPECT_EQ(method->full_name(), "conduit.interop.JsonRpcExamples/subtract");
  EXPECT_EQ(method->descriptor().full_name(), "conduit.interop.JsonRpcExamples.subtract");
  EXPECT_EQ(table_.find("/conduit.interop.JsonRpcExamples/subtract"), method);
  EXPECT_EQ(table_.find("conduit.interop.JsonRpcExamples.subtract"), method);
  EXPECT_EQ(table_.find("subtract"), method);
}

TEST_F(ServiceTableTest, FindsNothingForOtherNames) {
  for (const char* name : {"foobar", "foo.get", "", "/", "/subtract", "Subtract",
                           "conduit.interop.JsonRpcExamples/nope", "JsonRpcExamples/subtract",
                           "conduit.interop.JsonRpcExamples"}) {
    EXPECT_EQ(table_.find(name), nullptr) << name;
  }
}

TEST_F(ServiceTableTest, CallOfAnUnknownMethodIsNullopt) {
  EXPECT_FALSE(table_.call_json("foobar", "[]", context_).has_value());
  EXPECT_FALSE(table_.call_json("foo.get", R"({"name": "myself"})", context_).has_value());
}

TEST_F(ServiceTableTest, ListsMethodsInTheOrderAdded) {
  std::vector<std::string> names;
  for (const Method* method : table_.methods()) names.push_back(method->full_name());
  const std::vector<std::string> expected = {kExamples + "subtract",   kExamples + "sum",
                                             kExamples + "get_data",   kExamples + "notify_hello",
                                             kExamples + "notify_sum", kExamples + "update",
                                             kExamples + "echo"};
  EXPECT_EQ(names, expected);
}

TEST_F(ServiceTableTest, BareNameOfTwoServicesFindsNothing) {
  const pb::FileDescriptor& file = build_other_proto(pool_, false);
  table_.add_dynamic(*file.service(0)->FindMethodByName("echo"), copy_request);

  EXPECT_EQ(table_.find("echo"), nullptr);
  EXPECT_FALSE(table_.call_json("echo", "[1]", context_).has_value());
  ASSERT_NE(table_.find("test.Other/echo"), nullptr);
  ASSERT_NE(table_.find(kExamples + "echo"), nullptr);
  EXPECT_NE(table_.find("test.Other/echo"), table_.find(kExamples + "echo"));
  EXPECT_EQ(table_.find("subtract"), table_.find(kExamples + "subtract"));

  const JsonCall other = call("test.Other.echo", R"({"from": "other"})");
  ASSERT_EQ(other.outcome, Outcome::ok) << other.status.to_string();
  EXPECT_TRUE(same_json(other.result, R"({"from": "other"})"));
}

TEST_F(ServiceTableTest, DynamicMethodUsesGeneratedPrototypesForGeneratedTypes) {
  const pb::FileDescriptor& file = build_other_proto(pool_, false);
  table_.add_dynamic(*file.service(0)->FindMethodByName("echo"), copy_request);
  const Method* method = table_.find("test.Other/echo");
  ASSERT_NE(method, nullptr);
  EXPECT_EQ(&method->request_prototype(), &pb::Value::default_instance());
  EXPECT_EQ(&method->response_prototype(), &pb::Value::default_instance());
}

TEST_F(ServiceTableTest, DynamicMethodOfAnotherPoolTakesAndGivesJson) {
  const pb::FileDescriptor& file = build_other_proto(own_pool_, true);
  table_.add_dynamic(*file.service(0)->FindMethodByName("mirror"), mirror_point);
  table_.add_dynamic(*file.service(0)->FindMethodByName("echo"), copy_request);
  const Method* mirror = table_.find("mirror");
  ASSERT_NE(mirror, nullptr);
  EXPECT_EQ(mirror->request_prototype().GetDescriptor()->file()->pool(), &own_pool_);

  // proto3 JSON prints int64 as a string.
  JsonCall positional = call("mirror", R"([5, "p"])");
  ASSERT_EQ(positional.outcome, Outcome::ok) << positional.status.to_string();
  EXPECT_TRUE(same_json(positional.result, R"({"x": "-5", "label": "p"})"));
  JsonCall named = call("test.Other/mirror", R"({"x": "3"})");
  ASSERT_EQ(named.outcome, Outcome::ok) << named.status.to_string();
  EXPECT_TRUE(same_json(named.result, R"({"x": "-3"})"));

  JsonCall echo = call("test.Other/echo", R"([1, [2, {"three": null}]])");
  ASSERT_EQ(echo.outcome, Outcome::ok) << echo.status.to_string();
  EXPECT_TRUE(same_json(echo.result, R"([1, [2, {"three": null}]])"));
}

TEST(ServiceTable, AddRejectsARequestTypeThatIsNotTheMethods) {
  ServiceTable table;
  try {
    table.add<SubtractRequest, pb::Value>(
        kExamples + "sum",
        [](CallContext&, const SubtractRequest&, pb::Value&) { return Status(); });
    FAIL() << "added sum with SubtractRequest";
  } catch (const Error& error) {
    const std::string what = error.what();
    EXPECT_NE(what.find("conduit.interop.SubtractRequest"), std::string::npos) << what;
    EXPECT_NE(what.find("google.protobuf.ListValue"), std::string::npos) << what;
  }
  EXPECT_EQ(table.find("sum"), nullptr);
}

TEST(ServiceTable, AddRejectsAResponseTypeThatIsNotTheMethods) {
  ServiceTable table;
  try {
    table.add<SubtractRequest, pb::ListValue>(
        kExamples + "subtract",
        [](CallContext&, const SubtractRequest&, pb::ListValue&) { return Status(); });
    FAIL() << "added subtract returning ListValue";
  } catch (const Error& error) {
    const std::string what = error.what();
    EXPECT_NE(what.find("google.protobuf.Value"), std::string::npos) << what;
    EXPECT_NE(what.find("google.protobuf.ListValue"), std::string::npos) << what;
  }
}

TEST(ServiceTable, AddRejectsNamesUnknownToTheGeneratedPool) {
  ServiceTable table;
  auto handler = [](CallContext&, const pb::Value&, pb::Value&) { return Status(); };
  EXPECT_THROW((table.add<pb::Value, pb::Value>(kExamples + "nope", handler)), Error);
  // Only in a test pool, never in the generated one.
  pb::DescriptorPool pool(pb::DescriptorPool::generated_pool());
  build_other_proto(pool, false);
  EXPECT_THROW((table.add<pb::Value, pb::Value>("test.Other/echo", handler)), Error);
  EXPECT_TRUE(table.methods().empty());
}

TEST(ServiceTable, AddRejectsAMethodAlreadyThere) {
  ServiceTable table;
  add_jsonrpc_examples(table);
  EXPECT_THROW(
      (table.add<pb::Value, pb::Value>(
          kExamples + "echo", [](CallContext&, const pb::Value&, pb::Value&) { return Status(); })),
      Error);
  EXPECT_THROW(table.add_dynamic(*pb::DescriptorPool::generated_pool()->FindMethodByName(
                                     "conduit.interop.JsonRpcExamples.echo"),
                                 copy_request),
               Error);
  EXPECT_EQ(table.methods().size(), 7u);
}

// A table with one method, conduit.interop.JsonRpcExamples/echo, served by
// `handler`.
JsonCall call_echo_served_by(Handler handler, std::string_view params) {
  ServiceTable table;
  table.add_dynamic(*pb::DescriptorPool::generated_pool()->FindMethodByName(
                        "conduit.interop.JsonRpcExamples.echo"),
                    std::move(handler));
  CallContext context;
  return table.call_json("echo", params, context).value();
}

TEST(ServiceTable, HandlerThatThrowsFailsWithInternal) {
  const JsonCall call =
      call_echo_served_by([](CallContext&, const pb::Message&,
                             pb::Message&) -> Status { throw std::runtime_error("boom"); },
                          "[]");
  EXPECT_EQ(call.outcome, Outcome::failed);
  EXPECT_EQ(call.status, Status(StatusCode::internal, "boom"));
}

TEST(ServiceTable, HandlerThatThrowsANonStandardExceptionFailsWithInternal) {
  const JsonCall call = call_echo_served_by(
      [](CallContext&, const pb::Message&, pb::Message&) -> Status { throw 42; }, "[]");
  EXPECT_EQ(call.outcome, Outcome::failed);
  EXPECT_EQ(call.status.code(), StatusCode::internal);
}

TEST(ServiceTable, HandlerStatusIsTheCallsStatus) {
  const Status refusal(StatusCode::permission_denied, "not you", "details");
  const JsonCall call = call_echo_served_by(
      [&](CallContext&, const pb::Message&, pb::Message&) { return refusal; }, "[]");
  EXPECT_EQ(call.outcome, Outcome::failed);
  EXPECT_EQ(call.status, refusal);
  EXPECT_EQ(call.result, "");
}

TEST(ServiceTable, InvalidParamsNeverReachTheHandler) {
  ServiceTable table;
  int calls = 0;
  table.add<SubtractRequest, pb::Value>(kExamples + "subtract",
                                        [&](CallContext&, const SubtractRequest&, pb::Value&) {
                                          ++calls;
                                          return Status();
                                        });
  CallContext context;
  const JsonCall call = table.call_json("subtract", "[1, 2, 3]", context).value();
  EXPECT_EQ(call.outcome, Outcome::invalid_params);
  EXPECT_EQ(call.status.code(), StatusCode::invalid_argument);
  EXPECT_EQ(calls, 0);
}

TEST(ServiceTable, HandlerSeesTheCallContext) {
  ServiceTable table;
  std::string seen;
  table.add<pb::Value, pb::Value>(kExamples + "echo",
                                  [&](CallContext& context, const pb::Value&, pb::Value&) {
                                    seen = context.protocol;
                                    return Status();
                                  });
  CallContext context;
  context.protocol = "jsonrpc";
  ASSERT_TRUE(table.call_json("echo", "", context).has_value());
  EXPECT_EQ(seen, "jsonrpc");
}

TEST_F(ServiceTableTest, ResponseThatCannotBePrintedFailsWithInternal) {
  const pb::FileDescriptor& file = build_other_proto(pool_, false);
  table_.add_dynamic(*file.service(0)->FindMethodByName("wrap"),
                     [](CallContext&, const pb::Message&, pb::Message& response) {
                       auto& any = static_cast<pb::Any&>(response);
                       any.set_type_url("type.googleapis.com/no.such.Type");
                       any.set_value(std::string("\x08\x01", 2));
                       return Status();
                     });
  const JsonCall wrapped = call("wrap", "");
  EXPECT_EQ(wrapped.outcome, Outcome::failed);
  EXPECT_EQ(wrapped.status.code(), StatusCode::internal);
  EXPECT_NE(wrapped.status.message().find("google.protobuf.Any"), std::string::npos)
      << wrapped.status.message();
}

// ---- conduit.interop.JsonRpcExamples ----

class JsonRpcExamples : public ServiceTableTest {
 protected:
  // The result of a call that must succeed.
  std::string result_of(std::string_view method, std::string_view params) {
    const JsonCall made = call(method, params);
    EXPECT_EQ(made.outcome, Outcome::ok)
        << method << " " << params << ": " << made.status.to_string();
    return made.result;
  }
};

TEST_F(JsonRpcExamples, SubtractTakesPositionalParams) {
  EXPECT_EQ(result_of("subtract", "[42, 23]"), "19");
  EXPECT_EQ(result_of("subtract", "[23, 42]"), "-19");
  EXPECT_EQ(result_of("subtract", "[0.5, 0.25]"), "0.25");
}

TEST_F(JsonRpcExamples, SubtractTakesNamedParams) {
  EXPECT_EQ(result_of("subtract", R"({"subtrahend": 23, "minuend": 42})"), "19");
  EXPECT_EQ(result_of("subtract", R"({"minuend": 42, "subtrahend": 23})"), "19");
}

TEST_F(JsonRpcExamples, SubtractRejectsAnUnknownName) {
  const JsonCall made = call("subtract", R"({"minuend": 42, "subtrahend": 23, "extra": 1})");
  EXPECT_EQ(made.outcome, Outcome::invalid_params);
  EXPECT_NE(made.status.message().find("extra"), std::string::npos) << made.status.message();
}

TEST_F(JsonRpcExamples, SumAddsEveryNumber) {
  EXPECT_EQ(result_of("sum", "[1, 2, 4, 8, 16]"), "31");
  EXPECT_EQ(result_of("sum", "[1, 2, 4]"), "7");
  EXPECT_EQ(result_of("sum", "[]"), "0");
}

TEST_F(JsonRpcExamples, SumRejectsWhatIsNotANumber) {
  const JsonCall made = call("sum", R"([1, "2", 4])");
  EXPECT_EQ(made.outcome, Outcome::failed);
  EXPECT_EQ(made.status.code(), StatusCode::invalid_argument);
  EXPECT_NE(made.status.message().find("params[1]"), std::string::npos) << made.status.message();
}

TEST_F(JsonRpcExamples, SumRejectsNamedParams) {
  EXPECT_EQ(call("sum", R"({"a": 1})").outcome, Outcome::invalid_params);
}

TEST_F(JsonRpcExamples, GetDataReturnsHelloAndFive) {
  EXPECT_EQ(result_of("get_data", ""), R"(["hello",5])");
  EXPECT_EQ(result_of("get_data", "[]"), R"(["hello",5])");
  EXPECT_EQ(call("get_data", "[1]").outcome, Outcome::invalid_params);
}

TEST_F(JsonRpcExamples, NotificationsAcceptAnyListAndReturnEmpty) {
  EXPECT_EQ(result_of("notify_hello", "[7]"), "{}");
  EXPECT_EQ(result_of("notify_sum", "[1, 2, 4]"), "{}");
  EXPECT_EQ(result_of("update", "[1, 2, 3, 4, 5]"), "{}");
  EXPECT_EQ(result_of("update", R"([{"any": "thing"}, null, "x"])"), "{}");
}

TEST_F(JsonRpcExamples, EchoReturnsItsParamsUnchanged) {
  for (const char* params : {
           R"({"name": "myself", "tags": ["a", "b"], "n": 1.25})",
           R"([1, "two", true, null, {"five": [6, 7]}])",
           R"("a string with \"quotes\" and \u00e9")",
           "null",
           "false",
           "-12.5",
           R"({"deep": {"deeper": {"deepest": [[[]]], "empty": {}}}})",
           "[]",
           "{}",
       }) {
    EXPECT_TRUE(same_json(result_of("echo", params), params)) << params;
  }
}

TEST_F(JsonRpcExamples, EchoWithoutParamsReturnsNull) {
  EXPECT_EQ(result_of("echo", ""), "null");
}

TEST_F(JsonRpcExamples, ConcurrentCallsGiveCorrectResults) {
  constexpr int kThreads = 8;
  constexpr int kCallsPerThread = 300;
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      CallContext context;
      for (int i = 0; i < kCallsPerThread; ++i) {
        const std::string positional =
            "[" + std::to_string(i * kThreads + t) + ", " + std::to_string(t) + "]";
        const auto difference = table_.call_json("subtract", positional, context);
        if (!difference || difference->result != std::to_string(i * kThreads)) ++wrong;

        const std::string object =
            R"({"thread": )" + std::to_string(t) + R"(, "call": )" + std::to_string(i) + "}";
        const auto echoed = table_.call_json(kExamples + "echo", object, context);
        if (!echoed || !same_json(echoed->result, object)) ++wrong;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(wrong.load(), 0);
}

}  // namespace
}  // namespace conduit::rpc

// ---- streaming methods ----

namespace conduit::rpc {
namespace {

TEST(ServiceStreaming, EachKindOfMethodTakesOnlyItsKindOfHandler) {
  ServiceTable table;
  add_grpc_testing(table);  // unary and streaming methods of grpc.testing.TestService
  const Method* unary = table.find("grpc.testing.TestService/UnaryCall");
  const Method* bidi = table.find("grpc.testing.TestService/FullDuplexCall");
  ASSERT_TRUE(unary && bidi);
  EXPECT_FALSE(unary->streams());
  EXPECT_TRUE(bidi->streams());

  ServiceTable other;
  using Request = ::grpc::testing::StreamingOutputCallRequest;
  using Response = ::grpc::testing::StreamingOutputCallResponse;
  EXPECT_THROW((other.add<Request, Response>(
                   "grpc.testing.TestService/FullDuplexCall",
                   [](CallContext&, const Request&, Response&) { return Status(); })),
               Error);
  EXPECT_THROW((other.add_bidi_stream<::grpc::testing::SimpleRequest,
                                      ::grpc::testing::SimpleResponse>(
                   "grpc.testing.TestService/UnaryCall",
                   [](CallContext&, StreamReader<::grpc::testing::SimpleRequest>&,
                      StreamWriter<::grpc::testing::SimpleResponse>&) { return Status(); })),
               Error);
}

TEST(ServiceStreaming, StreamingMethodCalledWithOneJsonRequestIsUnimplemented) {
  ServiceTable table;
  add_grpc_testing(table);
  CallContext context;
  std::optional<JsonCall> call = table.call_json("grpc.testing.TestService/FullDuplexCall", "{}",
                                                 context);
  ASSERT_TRUE(call);
  EXPECT_EQ(call->outcome, JsonCall::Outcome::failed);
  EXPECT_EQ(call->status.code(), StatusCode::unimplemented) << call->status.to_string();
}

// A handler fed by hand: what the typed wrappers do with the requests and
// responses a protocol hands them.
class ScriptedStream : public MessageReader, public MessageWriter {
 public:
  explicit ScriptedStream(std::vector<std::string> requests) : requests_(std::move(requests)) {}
  bool read(google::protobuf::Message& message) override {
    if (next_ == requests_.size()) return false;
    return message.ParseFromString(requests_[next_++]);
  }
  bool write(const google::protobuf::Message& message) override {
    written_.push_back(message.SerializeAsString());
    return true;
  }
  const std::vector<std::string>& written() const { return written_; }

 private:
  std::vector<std::string> requests_;
  std::size_t next_ = 0;
  std::vector<std::string> written_;
};

TEST(ServiceStreaming, TypedHandlersReadAndWriteThroughTheStream) {
  ServiceTable table;
  add_grpc_testing(table);
  ::grpc::testing::StreamingInputCallRequest part;
  std::vector<std::string> parts;
  for (int size : {3, 5, 7}) {
    part.mutable_payload()->set_body(std::string(static_cast<std::size_t>(size), 'x'));
    parts.push_back(part.SerializeAsString());
  }
  ScriptedStream stream(parts);
  CallContext context;
  Status status = table.find("grpc.testing.TestService/StreamingInputCall")
                      ->invoke_stream(context, stream, stream);
  ASSERT_TRUE(status.ok()) << status.to_string();
  ASSERT_EQ(stream.written().size(), 1u);
  ::grpc::testing::StreamingInputCallResponse total;
  ASSERT_TRUE(total.ParseFromString(stream.written()[0]));
  EXPECT_EQ(total.aggregated_payload_size(), 15);

  ScriptedStream none({});
  status = table.find("grpc.testing.TestService/StreamingOutputCall")
               ->invoke_stream(context, none, none);
  EXPECT_EQ(status.code(), StatusCode::internal) << "a server stream without its request";
}

}  // namespace
}  // namespace conduit::rpc
