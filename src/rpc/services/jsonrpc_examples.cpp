#include "jsonrpc_examples.hpp"

#include <google/protobuf/empty.pb.h>
#include <google/protobuf/struct.pb.h>

#include <string>

#include "conduit/interop/jsonrpc_examples.pb.h"

namespace conduit::rpc {

namespace {

namespace pb = google::protobuf;
using interop::SubtractRequest;

const std::string kService = "conduit.interop.JsonRpcExamples/";

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

Status accept_anything(CallContext&, const pb::ListValue&, pb::Empty&) {
  return {};
}

}  // namespace

void add_jsonrpc_examples(ServiceTable& table) {
  table.add<SubtractRequest, pb::Value>(
      kService + "subtract",
      [](CallContext&, const SubtractRequest& request, pb::Value& difference) {
        difference.set_number_value(request.minuend() - request.subtrahend());
        return Status();
      });

  table.add<pb::ListValue, pb::Value>(
      kService + "sum", [](CallContext&, const pb::ListValue& numbers, pb::Value& sum) {
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
        return Status();
      });

  table.add<pb::Empty, pb::ListValue>(kService + "get_data",
                                      [](CallContext&, const pb::Empty&, pb::ListValue& data) {
                                        data.add_values()->set_string_value("hello");
                                        data.add_values()->set_number_value(5);
                                        return Status();
                                      });

  for (const char* notification : {"notify_hello", "notify_sum", "update"}) {
    table.add<pb::ListValue, pb::Empty>(kService + notification, accept_anything);
  }

  table.add<pb::Value, pb::Value>(kService + "echo",
                                  [](CallContext&, const pb::Value& params, pb::Value& result) {
                                    result = params;
                                    return Status();
                                  });
}

}  // namespace conduit::rpc
