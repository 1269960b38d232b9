#include "conduit/rpc/service.hpp"

#include <google/protobuf/any.pb.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/empty.pb.h>
#include <google/protobuf/struct.pb.h>
#include <gtest/gtest.h>

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
#include "interop/grpc_testing.hpp"
#include "interop/jsonrpc_examples.hpp"

namespace conduit::rpc {
namespace {

namespace pb = google::protobuf;
using interop::SubtractRequest;

const std::string kExamples = "conduit.interop.JsonRpcExamples/";

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

// ---- ServiceTable ----

class ServiceTableTest : public testing::Test {
 protected:
  ServiceTableTest() { add_jsonrpc_examples(table_); }

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
  ASSERT_NE(table_.find("test.Other/echo"), nullptr);
  ASSERT_NE(table_.find(kExamples + "echo"), nullptr);
  EXPECT_NE(table_.find("test.Other/echo"), table_.find(kExamples + "echo"));
  EXPECT_EQ(table_.find("subtract"), table_.find(kExamples + "subtract"));
  EXPECT_EQ(table_.find("test.Other.echo"), table_.find("test.Other/echo"));
}

TEST_F(ServiceTableTest, DynamicMethodUsesGeneratedPrototypesForGeneratedTypes) {
  const pb::FileDescriptor& file = build_other_proto(pool_, false);
  table_.add_dynamic(*file.service(0)->FindMethodByName("echo"), copy_request);
  const Method* method = table_.find("test.Other/echo");
  ASSERT_NE(method, nullptr);
  EXPECT_EQ(&method->request_prototype(), &pb::Value::default_instance());
  EXPECT_EQ(&method->response_prototype(), &pb::Value::default_instance());
}

TEST_F(ServiceTableTest, DynamicMethodOfAnotherPoolTakesAndGivesItsOwnMessages) {
  const pb::FileDescriptor& file = build_other_proto(own_pool_, true);
  table_.add_dynamic(*file.service(0)->FindMethodByName("mirror"), mirror_point);
  const Method* mirror = table_.find("mirror");
  ASSERT_NE(mirror, nullptr);
  EXPECT_EQ(mirror->request_prototype().GetDescriptor()->file()->pool(), &own_pool_);

  const std::unique_ptr<pb::Message> request(mirror->request_prototype().New());
  const std::unique_ptr<pb::Message> response(mirror->response_prototype().New());
  const pb::FieldDescriptor* x = request->GetDescriptor()->FindFieldByName("x");
  request->GetReflection()->SetInt64(request.get(), x, 5);
  ASSERT_TRUE(mirror->invoke(context_, *request, *response).ok());
  EXPECT_EQ(response->GetReflection()->GetInt64(*response, x), -5);
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

// The status of conduit.interop.JsonRpcExamples/echo, served by `handler`.
Status call_echo_served_by(Handler handler) {
  ServiceTable table;
  table.add_dynamic(*pb::DescriptorPool::generated_pool()->FindMethodByName(
                        "conduit.interop.JsonRpcExamples.echo"),
                    std::move(handler));
  CallContext context;
  pb::Value request;
  pb::Value response;
  return table.find("echo")->invoke(context, request, response);
}

TEST(ServiceTable, HandlerThatThrowsFailsWithInternal) {
  EXPECT_EQ(call_echo_served_by([](CallContext&, const pb::Message&, pb::Message&) -> Status {
              throw std::runtime_error("boom");
            }),
            Status(StatusCode::internal, "boom"));
}

TEST(ServiceTable, HandlerThatThrowsANonStandardExceptionFailsWithInternal) {
  EXPECT_EQ(call_echo_served_by([](CallContext&, const pb::Message&, pb::Message&) -> Status {
              throw 42;
            }).code(),
            StatusCode::internal);
}

TEST(ServiceTable, HandlerStatusIsTheCallsStatus) {
  const Status refusal(StatusCode::permission_denied, "not you", "details");
  EXPECT_EQ(
      call_echo_served_by([&](CallContext&, const pb::Message&, pb::Message&) { return refusal; }),
      refusal);
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
  pb::Value request;
  pb::Value response;
  ASSERT_TRUE(table.find("echo")->invoke(context, request, response).ok());
  EXPECT_EQ(seen, "jsonrpc");
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
  EXPECT_THROW(
      (other.add_bidi_stream<::grpc::testing::SimpleRequest, ::grpc::testing::SimpleResponse>(
          "grpc.testing.TestService/UnaryCall",
          [](CallContext&, StreamReader<::grpc::testing::SimpleRequest>&,
             StreamWriter<::grpc::testing::SimpleResponse>&) { return Status(); })),
      Error);
}

TEST(ServiceStreaming, StreamingMethodInvokedWithOneRequestIsUnimplemented) {
  ServiceTable table;
  add_grpc_testing(table);
  const Method* method = table.find("grpc.testing.TestService/FullDuplexCall");
  ASSERT_NE(method, nullptr);
  CallContext context;
  const std::unique_ptr<pb::Message> request(method->request_prototype().New());
  const std::unique_ptr<pb::Message> response(method->response_prototype().New());
  const Status status = method->invoke(context, *request, *response);
  EXPECT_EQ(status.code(), StatusCode::unimplemented) << status.to_string();
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
