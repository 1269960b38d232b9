#include "conduit/rpc/service.hpp"

#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "conduit/error.hpp"
#include "rpc/call_runner.hpp"

namespace conduit::rpc {

namespace {

namespace pb = google::protobuf;

// The well-known types that take the params JSON whole.
enum class WholeJson { no, value, list_value, struct_value };

WholeJson takes_whole_json(const pb::Descriptor& type) {
  // Compared by name, not by descriptor: a dynamic pool has its own copy of
  // struct.proto.
  const std::string& name = type.full_name();
  if (name == "google.protobuf.Value") return WholeJson::value;
  if (name == "google.protobuf.ListValue") return WholeJson::list_value;
  if (name == "google.protobuf.Struct") return WholeJson::struct_value;
  return WholeJson::no;
}

std::string_view trim(std::string_view text) {
  constexpr std::string_view kSpace = " \t\r\n";
  const auto first = text.find_first_not_of(kSpace);
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(kSpace);
  return text.substr(first, last - first + 1);
}

Status invalid_argument(std::string message) {
  return {StatusCode::invalid_argument, std::move(message)};
}

std::string_view json_type_name(const rapidjson::Value& value) {
  switch (value.GetType()) {
    case rapidjson::kNullType:
      return "null";
    case rapidjson::kFalseType:
    case rapidjson::kTrueType:
      return "a boolean";
    case rapidjson::kObjectType:
      return "an object";
    case rapidjson::kArrayType:
      return "an array";
    case rapidjson::kStringType:
      return "a string";
    case rapidjson::kNumberType:
      return "a number";
  }
  return "a JSON value";
}

std::string quoted(std::string_view text) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  writer.String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
  return {buffer.GetString(), buffer.GetSize()};
}

// Whether `key` names a field of `type` the way protobuf's JSON parser
// accepts it: the proto3 JSON name or the name in the .proto.
bool has_field_named(const pb::Descriptor& type, std::string_view key) {
  for (int i = 0; i < type.field_count(); ++i) {
    const pb::FieldDescriptor& field = *type.field(i);
    if (field.json_name() == key || field.name() == key) return true;
  }
  return false;
}

// The text of each element of `array`, which must be a valid JSON array.
// Slicing the text (rather than re-printing parsed values) keeps numbers
// exactly as the caller wrote them, e.g. int64 values beyond double's range.
std::vector<std::string_view> split_array(std::string_view array) {
  std::vector<std::string_view> elements;
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  std::size_t start = 1;
  const std::size_t end = array.size() - 1;  // the closing ']'
  for (std::size_t i = 1; i < end; ++i) {
    const char c = array[i];
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      ++depth;
    } else if (c == ']' || c == '}') {
      --depth;
    } else if (c == ',' && depth == 0) {
      elements.push_back(trim(array.substr(start, i - start)));
      start = i + 1;
    }
  }
  const std::string_view last = trim(array.substr(start, end - start));
  if (!last.empty()) elements.push_back(last);
  return elements;
}

// ---- the well-known JSON types, without protobuf's JSON parser ---------------
// google.protobuf.Value, ListValue and Struct are JSON itself; they are
// converted straight from and to RapidJSON, many times faster than through
// protobuf's JSON layer (echo of a 4 KiB string: from about 500 us to tens).
// Only the generated classes take this path; copies of struct.proto in other
// pools go through protobuf.

constexpr int kMaxJsonDepth = 512;

bool to_value(const rapidjson::Value& json, pb::Value& out, int depth);

bool to_list(const rapidjson::Value& json, pb::ListValue& out, int depth) {
  out.mutable_values()->Reserve(static_cast<int>(json.Size()));
  for (const auto& element : json.GetArray())
    if (!to_value(element, *out.add_values(), depth + 1)) return false;
  return true;
}

bool to_struct(const rapidjson::Value& json, pb::Struct& out, int depth) {
  auto& fields = *out.mutable_fields();
  for (const auto& member : json.GetObject()) {
    std::string key(member.name.GetString(), member.name.GetStringLength());
    if (!to_value(member.value, fields[key], depth + 1)) return false;
  }
  return true;
}

bool to_value(const rapidjson::Value& json, pb::Value& out, int depth) {
  if (depth > kMaxJsonDepth) return false;
  switch (json.GetType()) {
    case rapidjson::kNullType:
      out.set_null_value(pb::NULL_VALUE);
      return true;
    case rapidjson::kFalseType:
    case rapidjson::kTrueType:
      out.set_bool_value(json.GetBool());
      return true;
    case rapidjson::kNumberType:
      out.set_number_value(json.GetDouble());
      return true;
    case rapidjson::kStringType:
      out.set_string_value(json.GetString(), json.GetStringLength());
      return true;
    case rapidjson::kArrayType:
      return to_list(json, *out.mutable_list_value(), depth);
    case rapidjson::kObjectType:
      return to_struct(json, *out.mutable_struct_value(), depth);
  }
  return false;
}

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

// As protobuf prints them: integral values without a fraction, NaN and the
// infinities as strings.
void write_number(double number, JsonWriter& writer) {
  if (std::isnan(number)) {
    writer.String("NaN");
  } else if (std::isinf(number)) {
    writer.String(number > 0 ? "Infinity" : "-Infinity");
  } else if (std::trunc(number) == number && std::fabs(number) < 9007199254740992.0) {
    writer.Int64(static_cast<std::int64_t>(number));
  } else {
    writer.Double(number);
  }
}

void write_value(const pb::Value& value, JsonWriter& writer);

void write_list(const pb::ListValue& list, JsonWriter& writer) {
  writer.StartArray();
  for (const auto& element : list.values()) write_value(element, writer);
  writer.EndArray();
}

void write_struct(const pb::Struct& object, JsonWriter& writer) {
  // Sorted keys, as protobuf prints a Struct (its map has no order).
  std::vector<const std::string*> keys;
  keys.reserve(static_cast<std::size_t>(object.fields_size()));
  for (const auto& [key, value] : object.fields()) keys.push_back(&key);
  std::sort(keys.begin(), keys.end(), [](auto* a, auto* b) { return *a < *b; });
  writer.StartObject();
  for (const std::string* key : keys) {
    writer.Key(key->data(), static_cast<rapidjson::SizeType>(key->size()));
    write_value(object.fields().at(*key), writer);
  }
  writer.EndObject();
}

void write_value(const pb::Value& value, JsonWriter& writer) {
  switch (value.kind_case()) {
    case pb::Value::kNullValue:
    case pb::Value::KIND_NOT_SET:
      writer.Null();
      break;
    case pb::Value::kBoolValue:
      writer.Bool(value.bool_value());
      break;
    case pb::Value::kNumberValue:
      write_number(value.number_value(), writer);
      break;
    case pb::Value::kStringValue:
      writer.String(value.string_value().data(),
                    static_cast<rapidjson::SizeType>(value.string_value().size()));
      break;
    case pb::Value::kListValue:
      write_list(value.list_value(), writer);
      break;
    case pb::Value::kStructValue:
      write_struct(value.struct_value(), writer);
      break;
  }
}

// Fills a generated Value, ListValue or Struct from `json`; std::nullopt when
// `out` is none of them.
std::optional<Status> fill_well_known(const rapidjson::Value& json, pb::Message& out) {
  bool ok;
  if (auto* value = dynamic_cast<pb::Value*>(&out))
    ok = to_value(json, *value, 0);
  else if (auto* list = dynamic_cast<pb::ListValue*>(&out))
    ok = to_list(json, *list, 0);
  else if (auto* object = dynamic_cast<pb::Struct*>(&out))
    ok = to_struct(json, *object, 0);
  else
    return std::nullopt;
  if (!ok)
    return invalid_argument("params nest deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  return Status();
}

Status parse_json(std::string_view json, pb::Message& out) {
  const auto status = pb::util::JsonStringToMessage(json, &out);
  if (status.ok()) return {};
  return invalid_argument(std::string(status.message()));
}

// Positional params: element i goes to field i in declaration order.
Status parse_positional(std::string_view array, std::size_t count, pb::Message& out) {
  const pb::Descriptor& type = *out.GetDescriptor();
  const auto fields = static_cast<std::size_t>(type.field_count());
  if (count > fields) {
    return invalid_argument(std::to_string(count) + (count == 1 ? " param" : " params") +
                            " given, " + type.name() + " takes " + std::to_string(fields));
  }
  const std::vector<std::string_view> elements = split_array(array);
  std::string object = "{";
  for (std::size_t i = 0; i < elements.size(); ++i) {
    if (i > 0) object += ',';
    object += quoted(type.field(static_cast<int>(i))->json_name());
    object += ':';
    object += elements[i];
  }
  object += '}';
  Status status = parse_json(object, out);
  if (status.ok()) return status;

  // Find the position that did not fit, to name it; parsing each element on
  // its own costs nothing on the path that succeeds.
  for (std::size_t i = 0; i < elements.size(); ++i) {
    const std::unique_ptr<pb::Message> scratch(out.New());
    const std::string one = "{" + quoted(type.field(static_cast<int>(i))->json_name()) + ":" +
                            std::string(elements[i]) + "}";
    Status element_status = parse_json(one, *scratch);
    if (!element_status.ok()) {
      return invalid_argument("params[" + std::to_string(i) + "]: " + element_status.message());
    }
  }
  return status;
}

}  // namespace

// ---- Method ----

Method::Method(const pb::MethodDescriptor& descriptor, const pb::Message& request_prototype,
               const pb::Message& response_prototype, Handler handler)
    : descriptor_(&descriptor),
      request_prototype_(&request_prototype),
      response_prototype_(&response_prototype),
      handler_(std::move(handler)),
      full_name_(descriptor.service()->full_name() + "/" + descriptor.name()) {
  check_types();
  if (descriptor.client_streaming() || descriptor.server_streaming()) {
    throw Error("method " + full_name_ +
                " streams: add it with add_server_stream, add_client_stream or add_bidi_stream");
  }
  if (!handler_) throw Error("method " + full_name_ + " has no handler");
}

Method::Method(const pb::MethodDescriptor& descriptor, const pb::Message& request_prototype,
               const pb::Message& response_prototype, StreamHandler handler)
    : descriptor_(&descriptor),
      request_prototype_(&request_prototype),
      response_prototype_(&response_prototype),
      stream_handler_(std::move(handler)),
      full_name_(descriptor.service()->full_name() + "/" + descriptor.name()) {
  check_types();
  if (!descriptor.client_streaming() && !descriptor.server_streaming())
    throw Error("method " + full_name_ + " is unary: add it with add()");
  if (!stream_handler_) throw Error("method " + full_name_ + " has no handler");
}

void Method::check_types() const {
  if (request_prototype_->GetDescriptor() != descriptor_->input_type()) {
    throw Error("method " + full_name_ + " takes " + descriptor_->input_type()->full_name() +
                ", but its request prototype is " +
                request_prototype_->GetDescriptor()->full_name());
  }
  if (response_prototype_->GetDescriptor() != descriptor_->output_type()) {
    throw Error("method " + full_name_ + " returns " + descriptor_->output_type()->full_name() +
                ", but its response prototype is " +
                response_prototype_->GetDescriptor()->full_name());
  }
}

Status Method::invoke(CallContext& context, const pb::Message& request,
                      pb::Message& response) const {
  if (streams()) {
    return {StatusCode::unimplemented,
            full_name_ + " streams, and cannot be called with one request and one response"};
  }
  try {
    return handler_(context, request, response);
  } catch (const std::exception& error) {
    return {StatusCode::internal, error.what()};
  } catch (...) {
    return {StatusCode::internal,
            "the handler of " + full_name_ + " threw a non-standard exception"};
  }
}

Status Method::invoke_stream(CallContext& context, MessageReader& requests,
                             MessageWriter& responses) const {
  if (!streams()) return {StatusCode::internal, full_name_ + " is unary"};
  try {
    return stream_handler_(context, requests, responses);
  } catch (const std::exception& error) {
    return {StatusCode::internal, error.what()};
  } catch (...) {
    return {StatusCode::internal,
            "the handler of " + full_name_ + " threw a non-standard exception"};
  }
}

// ---- ServiceTable ----

struct ServiceTable::State {
  // Declared before `methods`, which point into it.
  pb::DynamicMessageFactory factory;
  // In the order they were added.
  std::vector<std::unique_ptr<Method>> methods;
  // Every name find() accepts (without a leading '/'): "package.Service/Method",
  // "package.Service.Method", and the bare "Method", which maps to nullptr
  // when more than one service has it. The three forms cannot collide: only
  // the first has a '/', and only the bare name has no '.'.
  std::map<std::string, const Method*, std::less<>> names;

  const pb::Message& prototype(const pb::Descriptor& type) {
    if (type.file()->pool() == pb::DescriptorPool::generated_pool()) {
      // nullptr for a type of the generated pool whose class is not linked in.
      if (const pb::Message* generated =
              pb::MessageFactory::generated_factory()->GetPrototype(&type)) {
        return *generated;
      }
    }
    return *factory.GetPrototype(&type);
  }

  template <typename AnyHandler>
  void insert(const pb::MethodDescriptor& descriptor, const pb::Message& request,
              const pb::Message& response, AnyHandler handler) {
    auto method = std::make_unique<Method>(descriptor, request, response, std::move(handler));
    if (names.contains(method->full_name())) {
      throw Error("ServiceTable: method " + method->full_name() + " is already there");
    }
    const Method* added = method.get();
    names.emplace(added->full_name(), added);
    names.emplace(descriptor.full_name(), added);
    auto [bare, inserted] = names.emplace(descriptor.name(), added);
    if (!inserted) bare->second = nullptr;  // ambiguous
    methods.push_back(std::move(method));
  }
};

ServiceTable::ServiceTable() : state_(std::make_unique<State>()) {}

ServiceTable::~ServiceTable() = default;

namespace {

// A method of the generated pool by "package.Service/Method"; throws Error
// naming it when there is none.
const pb::MethodDescriptor& generated_method(const std::string& full_name) {
  // "package.Service/Method" as the pool spells it: "package.Service.Method".
  std::string pool_name = full_name;
  if (const auto slash = pool_name.rfind('/'); slash != std::string::npos) pool_name[slash] = '.';
  const pb::MethodDescriptor* descriptor =
      pb::DescriptorPool::generated_pool()->FindMethodByName(pool_name);
  if (descriptor == nullptr) {
    throw Error("ServiceTable::add(" + full_name +
                "): no such method in the generated descriptor pool (is its .pb.cc linked in?)");
  }
  return *descriptor;
}

}  // namespace

void ServiceTable::add_method(const std::string& full_name, const pb::Message& request,
                              const pb::Message& response, Handler handler) {
  state_->insert(generated_method(full_name), request, response, std::move(handler));
}

void ServiceTable::add_dynamic(const pb::MethodDescriptor& method, Handler handler) {
  state_->insert(method, state_->prototype(*method.input_type()),
                 state_->prototype(*method.output_type()), std::move(handler));
}

void ServiceTable::add_dynamic(const pb::MethodDescriptor& method, StreamHandler handler) {
  state_->insert(method, state_->prototype(*method.input_type()),
                 state_->prototype(*method.output_type()), std::move(handler));
}

void ServiceTable::add_stream_method(const std::string& full_name, const pb::Message& request,
                                     const pb::Message& response, StreamHandler handler) {
  state_->insert(generated_method(full_name), request, response, std::move(handler));
}

const Method* ServiceTable::find(std::string_view name) const {
  if (name.starts_with('/')) {
    name.remove_prefix(1);
    // Only the gRPC path form has a leading '/'.
    if (name.find('/') == std::string_view::npos) return nullptr;
  }
  const auto found = state_->names.find(name);
  return found == state_->names.end() ? nullptr : found->second;
}

std::vector<const Method*> ServiceTable::methods() const {
  std::vector<const Method*> all;
  all.reserve(state_->methods.size());
  for (const auto& method : state_->methods) all.push_back(method.get());
  return all;
}

std::optional<JsonCall> ServiceTable::call_json(std::string_view method, std::string_view params,
                                                CallContext& context) const {
  const Method* found = find(method);
  if (found == nullptr) return std::nullopt;
  return call_with_json(*found, params, context);
}

// ---- JSON ----

JsonCall call_with_json(const Method& method, std::string_view params, CallContext& context) {
  JsonCall call;
  const std::unique_ptr<pb::Message> request(method.request_prototype().New());
  const std::unique_ptr<pb::Message> response(method.response_prototype().New());
  if (Status status = json_params_to_message(params, *request); !status.ok()) {
    call.outcome = JsonCall::Outcome::invalid_params;
    call.status = std::move(status);
    return call;
  }
  if (Status status = run_unary(method, context, *request, *response); !status.ok()) {
    call.outcome = JsonCall::Outcome::failed;
    call.status = std::move(status);
    return call;
  }
  try {
    call.result = message_to_json(*response);
    call.result_is_compact_json = true;  // RapidJSON's or protobuf's compact printer
  } catch (const Error& error) {
    call.outcome = JsonCall::Outcome::failed;
    call.status = Status(StatusCode::internal, error.what());
  }
  return call;
}

Status json_params_to_message(std::string_view params, pb::Message& out) {
  out.Clear();
  const pb::Descriptor& type = *out.GetDescriptor();
  const WholeJson whole = takes_whole_json(type);
  const std::string_view text = trim(params);
  if (text.empty()) {
    // No params: a Value is null; every other message keeps its defaults.
    return whole == WholeJson::value ? parse_json("null", out) : Status();
  }

  // Protobuf's parser is lenient (it takes trailing commas, for one); the
  // params must be strict JSON. Iterative parsing: no recursion on deep input.
  // From a NUL-terminated copy: RapidJSON scans strings sixteen bytes at a
  // time only from a StringStream, which ends at a NUL (so a NUL inside the
  // text must be caught after the parse). The scan reads whole aligned
  // 16-byte blocks: 16 NULs of padding keep the last one inside the buffer.
  rapidjson::Document document;
  std::string terminated(text);
  terminated.append(16, '\0');
  rapidjson::StringStream stream(terminated.c_str());
  document.ParseStream<rapidjson::kParseIterativeFlag>(stream);
  if (document.HasParseError()) {
    return invalid_argument("params are not valid JSON: " +
                            std::string(rapidjson::GetParseError_En(document.GetParseError())) +
                            " (at offset " + std::to_string(document.GetErrorOffset()) + ")");
  }
  if (stream.Tell() != text.size())
    return invalid_argument("params are not valid JSON: a NUL byte at offset " +
                            std::to_string(stream.Tell()));

  if (whole != WholeJson::no && (whole == WholeJson::value ||
                                 (whole == WholeJson::list_value && document.IsArray()) ||
                                 (whole == WholeJson::struct_value && document.IsObject()))) {
    if (auto status = fill_well_known(document, out)) return *status;
  }
  switch (whole) {
    case WholeJson::value:
      return parse_json(text, out);
    case WholeJson::list_value:
      if (!document.IsArray()) {
        return invalid_argument(type.name() + " takes an array of params, not " +
                                std::string(json_type_name(document)));
      }
      return parse_json(text, out);
    case WholeJson::struct_value:
      if (!document.IsObject()) {
        return invalid_argument(type.name() + " takes an object of named params, not " +
                                std::string(json_type_name(document)));
      }
      return parse_json(text, out);
    case WholeJson::no:
      break;
  }

  if (document.IsObject()) {
    for (const auto& member : document.GetObject()) {
      const std::string_view key(member.name.GetString(), member.name.GetStringLength());
      if (!has_field_named(type, key)) {
        return invalid_argument(type.name() + " has no field " + quoted(key));
      }
    }
    return parse_json(text, out);
  }
  if (document.IsArray()) return parse_positional(text, document.Size(), out);
  return invalid_argument("params must be an array or an object, not " +
                          std::string(json_type_name(document)));
}

std::string message_to_json(const pb::Message& message) {
  const pb::Descriptor& type = *message.GetDescriptor();
  if (takes_whole_json(type) == WholeJson::value) {
    // Protobuf prints a Value with no kind set as nothing at all.
    const pb::OneofDescriptor* kind = type.FindOneofByName("kind");
    if (kind != nullptr && !message.GetReflection()->HasOneof(message, kind)) return "null";
  }
  // Buffers sized from the message at the start: grown from RapidJSON's
  // default 256 bytes, a 4 KiB string costs seven reallocations.
  const std::size_t estimate = message.ByteSizeLong() + 64;
  if (auto* value = dynamic_cast<const pb::Value*>(&message)) {
    rapidjson::StringBuffer buffer(nullptr, estimate);
    JsonWriter writer(buffer);
    write_value(*value, writer);
    return {buffer.GetString(), buffer.GetSize()};
  }
  if (auto* list = dynamic_cast<const pb::ListValue*>(&message)) {
    rapidjson::StringBuffer buffer(nullptr, estimate);
    JsonWriter writer(buffer);
    write_list(*list, writer);
    return {buffer.GetString(), buffer.GetSize()};
  }
  if (auto* object = dynamic_cast<const pb::Struct*>(&message)) {
    rapidjson::StringBuffer buffer(nullptr, estimate);
    JsonWriter writer(buffer);
    write_struct(*object, writer);
    return {buffer.GetString(), buffer.GetSize()};
  }
  std::string json;
  const auto status = pb::util::MessageToJsonString(message, &json);
  if (!status.ok()) {
    throw Error("message_to_json(" + type.full_name() + "): " + std::string(status.message()));
  }
  return json;
}

}  // namespace conduit::rpc
