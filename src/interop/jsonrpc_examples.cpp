#include "jsonrpc_examples.hpp"

#include <google/protobuf/empty.pb.h>
#include <google/protobuf/struct.pb.h>

#include <string>

#include "conduit/interop/jsonrpc_examples.conduit.h"

namespace conduit::rpc {

namespace {

namespace pb = google::protobuf;
using interop::SubtractRequest;

std::string kind_name(const pb::Value& value) {
  switch (value.kind_case()) {
    case pb::Value::kNullValue:
      return "null";
    case pb::Value::kNumberValue:
      return "a number";
    case pb::Value::kStringValue:
      return "a string";
    case pb::Value::kBoolValue:
      return "a boolean";
    case pb::Value::kStructValue:
      return "an object";
    case pb::Value::kListValue:
      return "an array";
    case pb::Value::KIND_NOT_SET:
      break;
  }
  return "nothing";
}

class JsonRpcExamplesService final : public interop::JsonRpcExamples {
 public:
  Status subtract(CallContext&, const SubtractRequest& request, pb::Value& difference) override {
    difference.set_number_value(request.minuend() - request.subtrahend());
    return {};
  }

  Status sum(CallContext&, const pb::ListValue& numbers, pb::Value& sum) override {
    double total = 0;
    for (int i = 0; i < numbers.values_size(); ++i) {
      const pb::Value& number = numbers.values(i);
      if (number.kind_case() != pb::Value::kNumberValue) {
        return Status(StatusCode::invalid_argument, "params[" + std::to_string(i) + "] is " +
                                                        kind_name(number) + ", not a number");
      }
      total += number.number_value();
    }
    sum.set_number_value(total);
    return {};
  }

  Status get_data(CallContext&, const pb::Empty&, pb::ListValue& data) override {
    data.add_values()->set_string_value("hello");
    data.add_values()->set_number_value(5);
    return {};
  }

  Status notify_hello(CallContext&, const pb::ListValue&, pb::Empty&) override { return {}; }
  Status notify_sum(CallContext&, const pb::ListValue&, pb::Empty&) override { return {}; }
  Status update(CallContext&, const pb::ListValue&, pb::Empty&) override { return {}; }

  Status echo(CallContext&, const pb::Value& params, pb::Value& result) override {
    result = params;
    return {};
  }
};

}  // namespace

void add_jsonrpc_examples(ServiceTable& table) {
  // The service keeps no state, so one instance serves every table, and
  // outlives them all.
  static JsonRpcExamplesService service;
  service.add_to(table);
}

}  // namespace conduit::rpc
