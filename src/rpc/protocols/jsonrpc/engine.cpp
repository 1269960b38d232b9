#include "rpc/protocols/jsonrpc/engine.hpp"

#include <google/protobuf/arena.h>
#include <google/protobuf/message.h>
#include <rapidjson/error/en.h>
#include <rapidjson/reader.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <array>
#include <charconv>
#include <cstddef>
#include <cstring>
#include <exception>
#include <limits>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "conduit/error.hpp"
#include "conduit/rpc/status.hpp"
#include "rpc/call_runner.hpp"
#include "rpc/protocols/jsonrpc/json_document.hpp"
#include "rpc/protocols/jsonrpc/json_writer.hpp"
#include "rpc/protocols/jsonrpc/proto_json.hpp"
#include "rpc/protocols/jsonrpc/status_mapping.hpp"
#include "rpc/protocols/jsonrpc/utf8.hpp"

namespace conduit::rpc::jsonrpc {
namespace {

namespace pb = google::protobuf;

// ---- the server side ----

std::string json_string(std::string_view text) {
  std::string json;
  JsonWriter(json).string(to_valid_utf8(text));
  return json;
}

ErrorObject invalid_request(std::string_view why = {}) {
  return {kInvalidRequestCode, "Invalid Request", why.empty() ? std::string() : json_string(why)};
}

ErrorObject internal_error(std::string_view why) {
  return {kInternalErrorCode, "Internal error", json_string(why)};
}

ErrorObject invalid_params(std::string_view why) {
  return {kInvalidParamsCode, "Invalid params", why.empty() ? std::string() : json_string(why)};
}

// Responses as one text: a single response, or a batch's array, opened with
// its first response. Results are written straight into it.
class ResponseText {
 public:
  // `storage`: a buffer whose capacity the text reuses (its contents are
  // dropped).
  explicit ResponseText(bool batch, std::string storage = {})
      : batch_(batch), text_(std::move(storage)) {
    text_.clear();
  }

  // `id` is compact JSON; empty: null. Returns the status of writing the
  // result; when it fails, nothing of this response is left in the text.
  Status add_result(std::string_view id, const pb::Message& result) {
    const std::size_t mark = text_.size();
    const std::size_t count = count_;
    text_.reserve(text_.size() + result.ByteSizeLong() + id.size() + 64);
    begin();
    text_ += R"("result":)";
    JsonWriter writer(text_);
    if (Status written = write_message(result, writer); !written.ok()) {
      text_.resize(mark);
      count_ = count;
      return written;
    }
    end(id);
    return {};
  }

  void add_error(std::string_view id, const ErrorObject& error) {
    begin();
    text_ += R"("error":)";
    JsonWriter writer(text_);
    writer.start_object();
    writer.key("code");
    writer.number(static_cast<std::int64_t>(error.code));
    writer.key("message");
    writer.string(to_valid_utf8(error.message));
    if (!error.data.empty()) {
      writer.key("data");
      writer.raw(error.data);
    }
    writer.end_object();
    end(id);
  }

  // The text, or std::nullopt when no response was added.
  std::optional<std::string> take() {
    if (count_ == 0) return std::nullopt;
    if (batch_) text_ += ']';
    return std::move(text_);
  }

 private:
  void begin() {
    if (batch_) text_ += count_ == 0 ? '[' : ',';
    ++count_;
    text_ += R"({"jsonrpc":"2.0",)";
  }

  void end(std::string_view id) {
    text_ += R"(,"id":)";
    text_ += id.empty() ? std::string_view("null") : id;
    text_ += '}';
  }

  bool batch_;
  std::size_t count_ = 0;
  std::string text_;
};

std::string single_error(const ErrorObject& error) {
  ResponseText response(false);
  response.add_error({}, error);
  return *response.take();
}

// The members of a request object the engine reads: the first of each
// name, and whether it came again.
struct RequestMembers {
  struct Member {
    const rapidjson::Value* value = nullptr;
    bool repeated = false;
  };
  Member version, method, params, id;

  explicit RequestMembers(const rapidjson::Value& request) {
    for (const auto& member : request.GetObject()) {
      const std::string_view name(member.name.GetString(), member.name.GetStringLength());
      Member* slot = name == "jsonrpc"  ? &version
                     : name == "method" ? &method
                     : name == "params" ? &params
                     : name == "id"     ? &id
                                        : nullptr;
      if (slot == nullptr) continue;
      if (slot->value != nullptr) {
        slot->repeated = true;
      } else {
        slot->value = &member.value;
      }
    }
  }
};

bool is_string(const rapidjson::Value* value, std::string_view text) {
  return value != nullptr && value->IsString() &&
         std::string_view(value->GetString(), value->GetStringLength()) == text;
}

// Runs one call: params into the request, the handler, and the status of
// it all. `response` is filled when the status is OK.
Status run(const Method& method, const rapidjson::Value* params, CallContext& context,
           pb::Message& request, pb::Message& response, bool& params_fit) {
  params_fit = false;
  if (Status mapped = params_to_message(params, request); !mapped.ok()) return mapped;
  params_fit = true;
  return run_unary(method, context, request, response);
}

// Checks one request (or batch element), calls its method, and adds the
// response, if one is due, to `response`. `kept_id` is the request's id as
// written when it is a number.
void serve(const rapidjson::Value& entry, std::string_view kept_id, const ServiceTable& methods,
           CallContext& context, ResponseText& response) {
  if (!entry.IsObject()) {
    response.add_error({}, invalid_request());
    return;
  }
  const RequestMembers members(entry);
  const rapidjson::Value* id = members.id.value;
  const bool id_valid =
      !members.id.repeated && (id == nullptr || id->IsNull() || id->IsNumber() || id->IsString());
  std::string id_json;
  if (id_valid && id != nullptr) {
    if (id->IsNumber()) {
      id_json = kept_id;
    } else if (id->IsString()) {
      id_json = json_string({id->GetString(), id->GetStringLength()});
    } else {
      id_json = "null";
    }
  }
  const rapidjson::Value* params = members.params.value;
  const bool valid = id_valid && !members.version.repeated &&
                     is_string(members.version.value, "2.0") && !members.method.repeated &&
                     members.method.value != nullptr && members.method.value->IsString() &&
                     !members.params.repeated &&
                     (params == nullptr || params->IsArray() || params->IsObject());
  if (!valid) {
    response.add_error(id_json, invalid_request());
    return;
  }

  const bool notification = id == nullptr;
  const std::string_view name(members.method.value->GetString(),
                              members.method.value->GetStringLength());
  const Method* method = methods.find(name);
  if (method == nullptr) {
    if (!notification) response.add_error(id_json, {kMethodNotFoundCode, "Method not found", {}});
    return;
  }
  // The call's messages live on an arena whose first block is on the
  // stack: a small call allocates nothing, and no message is destroyed
  // field by field.
  alignas(std::max_align_t) char first_block[4096];
  pb::ArenaOptions arena_options;
  arena_options.initial_block = first_block;
  arena_options.initial_block_size = sizeof first_block;
  pb::Arena arena(arena_options);
  pb::Message* request = method->request_prototype().New(&arena);
  pb::Message* result = method->response_prototype().New(&arena);
  bool params_fit = false;
  const Status status = run(*method, params, context, *request, *result, params_fit);
  if (notification) return;
  if (!params_fit) {
    response.add_error(id_json, invalid_params(status.message()));
  } else if (!status.ok()) {
    response.add_error(id_json, error_for_status(status));
  } else if (Status written = response.add_result(id_json, *result); !written.ok()) {
    response.add_error(id_json, error_for_status(written));
  }
}

std::optional<std::string> respond(std::string_view text, const ServiceTable& methods,
                                   const Limits& limits, CallContext& context,
                                   std::string storage) {
  if (context.protocol.empty()) context.protocol = "jsonrpc";
  if (text.size() > limits.max_body_bytes) {
    return single_error(invalid_request(
        "the request is " + std::to_string(text.size()) + " bytes, over the limit of " +
        std::to_string(limits.max_body_bytes) + " bytes (max_body_bytes)"));
  }

  JsonDocument::Limits parse_limits;
  parse_limits.max_depth = static_cast<std::size_t>(limits.max_depth);
  parse_limits.max_root_elements = limits.max_batch;
  parse_limits.kept_number_member = "id";
  const JsonDocument document(text, parse_limits);
  // Too deep and too many are Invalid Request rather than Parse error: the
  // text may well be JSON, it is just more than a request may be.
  switch (document.failure()) {
    case JsonDocument::Failure::too_deep:
      return single_error(invalid_request("arrays and objects nest deeper than the limit of " +
                                          std::to_string(limits.max_depth) +
                                          " levels (max_depth)"));
    case JsonDocument::Failure::too_many:
      return single_error(invalid_request("the batch holds more than the limit of " +
                                          std::to_string(limits.max_batch) +
                                          " requests (max_batch)"));
    case JsonDocument::Failure::not_json:
      return single_error({kParseErrorCode, "Parse error", {}});
    case JsonDocument::Failure::none:
      break;
  }

  const rapidjson::Value& root = document.root();
  if (root.IsObject()) {
    ResponseText response(false, std::move(storage));
    serve(root, document.kept_number(0), methods, context, response);
    return response.take();
  }
  if (root.IsArray() && !root.Empty()) {
    ResponseText response(true, std::move(storage));
    for (rapidjson::SizeType i = 0; i < root.Size(); ++i)
      serve(root[i], document.kept_number(i), methods, context, response);
    return response.take();
  }
  // An empty batch, or a lone string, number, boolean or null.
  return single_error(invalid_request());
}

// ---- the client side ----

// Iterative, numbers as written, strings decoded in place in a copy of the
// text (which is never read back): for checking and slicing a text.
constexpr unsigned kScanFlags = rapidjson::kParseIterativeFlag | rapidjson::kParseInsituFlag |
                                rapidjson::kParseStopWhenDoneFlag |
                                rapidjson::kParseNumbersAsStringsFlag;

// A SAX handler that only checks what RapidJSON lets through: strings must
// hold no surrogate escape, nor numbers exceed a double.
class JsonChecker : public rapidjson::BaseReaderHandler<rapidjson::UTF8<>, JsonChecker> {
 public:
  bool saw_bad_string() const { return bad_string_; }

  bool RawNumber(const char* text, rapidjson::SizeType length, bool) {
    double value;
    return json_number_to_double({text, length}, value);
  }
  bool String(const char* text, rapidjson::SizeType length, bool) {
    bad_string_ = bad_string_ || has_surrogate({text, length});
    return !bad_string_;
  }
  bool Key(const char* text, rapidjson::SizeType length, bool copy) {
    return String(text, length, copy);
  }

 private:
  bool bad_string_ = false;
};

// Where each member of an object lies in its text.
struct MemberSlice {
  std::string name;
  std::size_t begin = 0, end = 0;
};

struct Sliced {
  std::string error;  // empty when the text is JSON
  bool is_object = false;
  std::vector<MemberSlice> members;
};

constexpr std::string_view kWhitespace = " \t\n\r";

// The end of the string that opens at text[at], which is valid JSON. The
// quotes are found with memchr, fast on long strings.
std::size_t skip_string(std::string_view text, std::size_t at) {
  for (std::size_t from = at + 1;;) {
    const auto* quote =
        static_cast<const char*>(std::memchr(text.data() + from, '"', text.size() - from));
    const auto close = static_cast<std::size_t>(quote - text.data());
    std::size_t backslashes = 0;
    while (text[close - 1 - backslashes] == '\\') ++backslashes;
    if (backslashes % 2 == 0) return close + 1;
    from = close + 1;
  }
}

// The end of the value that begins at text[at], in valid JSON.
std::size_t skip_value(std::string_view text, std::size_t at) {
  const char first = text[at];
  if (first == '"') return skip_string(text, at);
  if (first != '[' && first != '{') {
    const std::size_t end = text.find_first_of(",]} \t\n\r", at);
    return end == std::string_view::npos ? text.size() : end;
  }
  std::size_t depth = 0;
  for (std::size_t i = at;;) {
    const char c = text[i];
    if (c == '"') {
      i = skip_string(text, i);
      continue;
    }
    if (c == '[' || c == '{') ++depth;
    if ((c == ']' || c == '}') && --depth == 0) return i + 1;
    ++i;
  }
}

// Checks that `text` is one JSON value and, when it is an object, where its
// members lie.
Sliced slice_members(std::string_view text) {
  Sliced sliced;
  auto describe = [](std::string_view what, std::size_t offset) {
    return std::string(what) + " (at offset " + std::to_string(offset) + ")";
  };
  if (const std::size_t bad = invalid_utf8_at(text); bad != std::string_view::npos) {
    sliced.error =
        describe(rapidjson::GetParseError_En(rapidjson::kParseErrorStringInvalidEncoding), bad);
    return sliced;
  }
  {
    ParseBuffer copy(text);
    rapidjson::InsituStringStream stream(copy.data());
    JsonChecker checker;
    rapidjson::Reader reader;
    const rapidjson::ParseResult result = reader.Parse<kScanFlags>(stream, checker);
    if (result.IsError()) {
      sliced.error =
          describe(checker.saw_bad_string() ? "A string holds an unpaired UTF-16 surrogate."
                                            : rapidjson::GetParseError_En(result.Code()),
                   result.Offset());
      return sliced;
    }
    const std::size_t rest = text.find_first_not_of(kWhitespace, stream.Tell());
    if (rest != std::string_view::npos) {
      sliced.error = describe(
          rapidjson::GetParseError_En(rapidjson::kParseErrorDocumentRootNotSingular), rest);
      return sliced;
    }
  }
  // Valid JSON: the members are found by its structure alone.
  std::size_t at = text.find_first_not_of(kWhitespace);
  if (text[at] != '{') return sliced;
  sliced.is_object = true;
  for (at = text.find_first_not_of(kWhitespace, at + 1); text[at] != '}';) {
    const std::size_t key_end = skip_string(text, at);
    std::string name(text.substr(at + 1, key_end - at - 2));
    if (name.find('\\') != std::string::npos) {
      rapidjson::Document key;
      key.Parse(text.data() + at, key_end - at);
      name.assign(key.GetString(), key.GetStringLength());
    }
    at = text.find_first_not_of(kWhitespace, text.find(':', key_end) + 1);
    const std::size_t value_end = skip_value(text, at);
    sliced.members.push_back({std::move(name), at, value_end});
    at = text.find_first_not_of(kWhitespace, value_end);
    if (text[at] == ',') at = text.find_first_not_of(kWhitespace, at + 1);
  }
  return sliced;
}

// A SAX handler that writes what it is given as compact JSON, numbers as
// written (Writer::RawNumber of RapidJSON 1.1.0 would quote them).
class JsonCopier {
 public:
  explicit JsonCopier(rapidjson::StringBuffer& buffer) : writer_(buffer) {}
  bool Null() { return writer_.Null(); }
  bool Bool(bool value) { return writer_.Bool(value); }
  bool Int(int value) { return writer_.Int(value); }
  bool Uint(unsigned value) { return writer_.Uint(value); }
  bool Int64(std::int64_t value) { return writer_.Int64(value); }
  bool Uint64(std::uint64_t value) { return writer_.Uint64(value); }
  bool Double(double value) { return writer_.Double(value); }
  bool RawNumber(const char* text, rapidjson::SizeType length, bool) {
    return writer_.RawValue(text, length, rapidjson::kNumberType);
  }
  bool String(const char* text, rapidjson::SizeType length, bool) {
    return writer_.String(text, length);
  }
  bool Key(const char* text, rapidjson::SizeType length, bool) { return writer_.Key(text, length); }
  bool StartObject() { return writer_.StartObject(); }
  bool EndObject(rapidjson::SizeType) { return writer_.EndObject(); }
  bool StartArray() { return writer_.StartArray(); }
  bool EndArray(rapidjson::SizeType) { return writer_.EndArray(); }

 private:
  rapidjson::Writer<rapidjson::StringBuffer> writer_;
};

// Whether `json`, which is valid JSON, has no whitespace outside strings.
bool is_compact(std::string_view json) {
  for (std::size_t i = 0; i < json.size();) {
    const char c = json[i];
    if (c == '"') {
      i = skip_string(json, i);
    } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      return false;
    } else {
      ++i;
    }
  }
  return true;
}

// Writes `json`, which is valid JSON, compact: as it is when it already is,
// else rewritten with numbers as written.
void write_compact(std::string_view json, JsonWriter& writer) {
  const std::size_t first = json.find_first_not_of(" \t\n\r");
  const std::size_t last = json.find_last_not_of(" \t\n\r");
  json = json.substr(first, last - first + 1);
  if (is_compact(json)) return writer.raw(json);
  rapidjson::StringBuffer buffer;
  JsonCopier copier(buffer);
  // RapidJSON's SSE2 scans read whole aligned 16-byte blocks, up to 15 bytes
  // past the NUL that ends the text: 16 NULs of padding keep them inside.
  std::string terminated(json);
  terminated.append(16, '\0');
  rapidjson::StringStream stream(terminated.c_str());
  rapidjson::Reader reader;
  reader.Parse<rapidjson::kParseIterativeFlag | rapidjson::kParseNumbersAsStringsFlag>(stream,
                                                                                       copier);
  writer.raw({buffer.GetString(), buffer.GetSize()});
}

char first_char(std::string_view json) {
  const std::size_t first = json.find_first_not_of(" \t\n\r");
  return first == std::string_view::npos ? '\0' : json[first];
}

std::string_view kind_name(char first) {
  switch (first) {
    case '\0':
      return "nothing";
    case 'n':
      return "null";
    case 't':
    case 'f':
      return "a boolean";
    case '"':
      return "a string";
    case '[':
      return "an array";
    case '{':
      return "an object";
    default:
      return "a number";
  }
}

std::int64_t parse_int64(std::string_view text, bool& ok) {
  std::int64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  ok = error == std::errc() && end == text.data() + text.size();
  return value;
}

[[noreturn]] void bad_reply(const std::string& why) {
  throw ProtocolError("malformed JSON-RPC reply: " + why);
}

// The members of object `text` named in `names`, as slices of it; empty
// where absent. Throws ProtocolError when `text` is not an object, or names
// a member twice.
template <std::size_t N>
std::array<std::string_view, N> read_object(std::string_view text,
                                            const std::array<std::string_view, N>& names,
                                            std::string_view what) {
  const Sliced sliced = slice_members(text);
  if (!sliced.error.empty()) bad_reply(sliced.error);
  if (!sliced.is_object) {
    bad_reply(std::string(what) + " is " + std::string(kind_name(first_char(text))) +
              ", not an object");
  }
  std::array<std::string_view, N> found{};
  for (const MemberSlice& member : sliced.members) {
    for (std::size_t i = 0; i < N; ++i) {
      if (member.name != names[i]) continue;
      if (!found[i].empty()) {
        bad_reply(std::string(what) + " has more than one \"" + std::string(names[i]) +
                  "\" member");
      }
      found[i] = text.substr(member.begin, member.end - member.begin);
    }
  }
  return found;
}

// A string value's text, decoded; std::nullopt when `json` is no string.
std::optional<std::string> decoded_string(std::string_view json) {
  if (first_char(json) != '"') return std::nullopt;
  rapidjson::Document document;
  document.Parse(json.data(), json.size());
  if (document.HasParseError() || !document.IsString()) return std::nullopt;
  return std::string(document.GetString(), document.GetStringLength());
}

constexpr std::array<std::string_view, 4> kResponseMembers = {"jsonrpc", "result", "error", "id"};
constexpr std::array<std::string_view, 2> kErrorMembers = {"code", "message"};

}  // namespace

Engine::Engine(const ServiceTable& methods, Limits limits) : methods_(&methods), limits_(limits) {
  if (limits_.max_depth < 1) {
    throw Error("jsonrpc::Engine: Limits::max_depth must be at least 1, not " +
                std::to_string(limits_.max_depth));
  }
}

std::optional<std::string> Engine::handle(std::string_view text, CallContext& context,
                                          std::string storage) const noexcept {
  try {
    return respond(text, *methods_, limits_, context, std::move(storage));
  } catch (const std::exception& e) {
    try {
      return single_error(internal_error(e.what()));
    } catch (...) {
    }
  } catch (...) {
    try {
      return single_error(internal_error("unknown exception"));
    } catch (...) {
    }
  }
  // Out of memory even for an error: there is nothing left to say.
  return std::nullopt;
}

std::string make_request(std::string_view method, std::string_view params_json, std::int64_t id) {
  if (!is_valid_utf8(method))
    throw InvalidArgument("JSON-RPC request: the method name is not valid UTF-8");
  if (!params_json.empty()) {
    const Sliced checked = slice_members(params_json);
    if (!checked.error.empty()) {
      throw InvalidArgument("JSON-RPC request: params are not valid JSON: " + checked.error);
    }
    const char kind = first_char(params_json);
    if (kind != '[' && kind != '{') {
      throw InvalidArgument("JSON-RPC request: params must be a JSON array or object, not " +
                            std::string(kind_name(kind)));
    }
  }
  std::string request;
  request.reserve(params_json.size() + method.size() + 64);
  JsonWriter writer(request);
  writer.start_object();
  writer.key("jsonrpc");
  writer.string("2.0");
  writer.key("method");
  writer.string(method);
  if (!params_json.empty()) {
    writer.key("params");
    write_compact(params_json, writer);
  }
  writer.key("id");
  writer.number(id);
  writer.end_object();
  return request;
}

std::optional<std::int64_t> reply_id(std::string_view text) {
  const auto [version, result, error, id] = read_object(text, kResponseMembers, "the reply");
  bool is_integer = false;
  const std::int64_t value = parse_int64(id, is_integer);
  if (!is_integer) return std::nullopt;
  return value;
}

Reply parse_reply(std::string text, std::int64_t expected_id) {
  const auto [version, result, error, id] = read_object(text, kResponseMembers, "the reply");
  if (version != R"("2.0")" && decoded_string(version) != "2.0") {
    bad_reply("\"jsonrpc\" is " +
              (version.empty() ? std::string("missing") : std::string(version)) + ", not \"2.0\"");
  }
  const bool has_result = !result.empty();
  const bool has_error = !error.empty();
  if (has_result == has_error) bad_reply("it must hold exactly one of \"result\" and \"error\"");
  if (id.empty()) bad_reply("it has no \"id\"");

  bool is_integer = false;
  const bool same_id = parse_int64(id, is_integer) == expected_id && is_integer;
  // A server that could not read the request's id answers with id null.
  const bool anonymous_error = id == "null" && has_error;
  if (!same_id && !anonymous_error) {
    throw ProtocolError("JSON-RPC reply has id " + std::string(id) + ", expected " +
                        std::to_string(expected_id));
  }

  Reply reply;
  if (has_result) {
    reply.ok = true;
    // The result, often most of the text, is cut out of it in place.
    const auto begin = static_cast<std::size_t>(result.data() - text.data());
    text.erase(begin + result.size());
    text.erase(0, begin);
    reply.result_json = std::move(text);
    return reply;
  }
  const auto [code, message] = read_object(error, kErrorMembers, "\"error\"");
  bool code_is_integer = false;
  const std::int64_t code_value = parse_int64(code, code_is_integer);
  if (!code_is_integer || code_value < std::numeric_limits<int>::min() ||
      code_value > std::numeric_limits<int>::max()) {
    bad_reply("error.code is " + (code.empty() ? std::string("missing") : std::string(code)) +
              ", not an integer");
  }
  std::optional<std::string> message_text = decoded_string(message);
  if (!message_text) {
    bad_reply("error.message is " +
              (message.empty() ? std::string("missing") : std::string(message)) + ", not a string");
  }
  reply.ok = false;
  reply.error_code = static_cast<int>(code_value);
  reply.error_message = std::move(*message_text);
  reply.error_json = error;
  return reply;
}

}  // namespace conduit::rpc::jsonrpc
