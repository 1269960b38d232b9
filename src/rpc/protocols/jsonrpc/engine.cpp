#include "rpc/protocols/jsonrpc/engine.hpp"

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <array>
#include <charconv>
#include <cstring>
#include <exception>
#include <limits>
#include <span>
#include <utility>
#include <vector>

#include "conduit/error.hpp"
#include "conduit/rpc/status.hpp"

namespace conduit::rpc::jsonrpc {
namespace {

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

// Iterative: the parser keeps its own stack, so no input can overflow the
// thread's. Numbers as strings: they reach us as written, so ids and params
// keep every digit. Stop when done: trailing text is checked by parse().
// UTF-8 is checked before parsing (is_valid_utf8, eight ASCII bytes at a
// time), which is several times faster than RapidJSON's check of every
// character (kParseValidateEncodingFlag).
constexpr unsigned kParseFlags = rapidjson::kParseIterativeFlag |
                                 rapidjson::kParseStopWhenDoneFlag |
                                 rapidjson::kParseNumbersAsStringsFlag;

constexpr int kParseErrorCode = -32700;
constexpr int kInvalidRequestCode = -32600;
constexpr int kMethodNotFoundCode = -32601;
constexpr int kInvalidParamsCode = -32602;
constexpr int kInternalErrorCode = -32603;
// Handler failures are -32000 - (gRPC status code), in the range the
// specification reserves for implementation-defined server errors.
constexpr int kServerErrorBase = -32000;

enum class Kind { absent, null, boolean, number, string, array, object };

std::string_view kind_name(Kind kind) {
  switch (kind) {
    case Kind::absent:
      return "nothing";
    case Kind::null:
      return "null";
    case Kind::boolean:
      return "a boolean";
    case Kind::number:
      return "a number";
    case Kind::string:
      return "a string";
    case Kind::array:
      return "an array";
    case Kind::object:
      return "an object";
  }
  return "nothing";
}

// The kind of a compact JSON value, from its first character.
Kind kind_of(std::string_view json) {
  if (json.empty()) return Kind::absent;
  switch (json.front()) {
    case 'n':
      return Kind::null;
    case 't':
    case 'f':
      return Kind::boolean;
    case '"':
      return Kind::string;
    case '[':
      return Kind::array;
    case '{':
      return Kind::object;
    default:
      return Kind::number;
  }
}

rapidjson::Type rapidjson_type(Kind kind) {
  switch (kind) {
    case Kind::null:
      return rapidjson::kNullType;
    case Kind::boolean:
      return rapidjson::kTrueType;
    case Kind::string:
      return rapidjson::kStringType;
    case Kind::array:
      return rapidjson::kArrayType;
    case Kind::object:
      return rapidjson::kObjectType;
    default:
      return rapidjson::kNumberType;
  }
}

// True when a string RapidJSON decoded holds a UTF-16 surrogate (ED A0..BF):
// that is how it decodes an unpaired "\uDC00" escape, the one ill-formed
// UTF-8 that kParseValidateEncodingFlag lets through. Everything else in a
// decoded string is well-formed, so an ED byte always leads a sequence.
bool has_surrogate(const char* text, std::size_t length) {
  const char* end = text + length;
  for (const char* at = text;
       (at = static_cast<const char*>(std::memchr(at, 0xED, static_cast<std::size_t>(end - at)))) !=
       nullptr;
       ++at) {
    if (end - at > 1 && static_cast<unsigned char>(at[1]) >= 0xA0) return true;
  }
  return false;
}

// The length of the well-formed UTF-8 sequence `text` starts with, or 0.
std::size_t utf8_sequence_length(std::string_view text) {
  auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(0);
  if (lead < 0x80) return 1;
  std::size_t length = 0;
  unsigned char low = 0x80;
  unsigned char high = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;   // overlong
    if (lead == 0xED) high = 0x9F;  // surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;   // overlong
    if (lead == 0xF4) high = 0x8F;  // beyond U+10FFFF
  } else {
    return 0;
  }
  if (text.size() < length || byte(1) < low || byte(1) > high) return 0;
  for (std::size_t i = 2; i < length; ++i) {
    if (byte(i) < 0x80 || byte(i) > 0xBF) return 0;
  }
  return length;
}

// Where `text` stops being well-formed UTF-8, or npos. ASCII, the common
// case, is skipped sixteen bytes (or eight) at a time.
std::size_t invalid_utf8_at(std::string_view text) {
  for (std::size_t i = 0; i < text.size();) {
#ifdef __SSE2__
    if (i + 16 <= text.size()) {
      const __m128i block = _mm_loadu_si128(reinterpret_cast<const __m128i*>(text.data() + i));
      if (_mm_movemask_epi8(block) == 0) {
        i += 16;
        continue;
      }
    }
#endif
    std::uint64_t word;
    if (i + sizeof word <= text.size()) {
      std::memcpy(&word, text.data() + i, sizeof word);
      if ((word & 0x8080808080808080ull) == 0) {
        i += sizeof word;
        continue;
      }
    }
    const std::size_t length = utf8_sequence_length(text.substr(i));
    if (length == 0) return i;
    i += length;
  }
  return std::string_view::npos;
}

bool is_valid_utf8(std::string_view text) {
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t length = utf8_sequence_length(text.substr(i));
    if (length == 0) return false;
    i += length;
  }
  return true;
}

// `text` with each byte that does not begin well-formed UTF-8 replaced by
// U+FFFD: what methods say about failures goes into responses, which must
// stay valid JSON.
std::string to_valid_utf8(std::string_view text) {
  if (is_valid_utf8(text)) return std::string(text);
  std::string valid;
  valid.reserve(text.size() + 8);
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t length = utf8_sequence_length(text.substr(i));
    if (length == 0) {
      valid += "\xEF\xBF\xBD";
      ++i;
    } else {
      valid.append(text.substr(i, length));
      i += length;
    }
  }
  return valid;
}

rapidjson::SizeType json_size(std::string_view text) {
  return static_cast<rapidjson::SizeType>(text.size());
}

// A SAX handler that writes what it is given as compact JSON, numbers as
// written (Writer::RawNumber of RapidJSON 1.1.0 would quote them), and stops
// on strings holding a surrogate.
class JsonCopier {
 public:
  // Starts a new value in `buffer`, which is cleared.
  void reset(rapidjson::StringBuffer& buffer) {
    buffer.Clear();
    writer_.Reset(buffer);
  }
  bool saw_surrogate() const { return saw_surrogate_; }

  bool Null() { return writer_.Null(); }
  bool Bool(bool value) { return writer_.Bool(value); }
  // kParseNumbersAsStringsFlag sends every number to RawNumber; these are
  // here for the Handler concept.
  bool Int(int value) { return writer_.Int(value); }
  bool Uint(unsigned value) { return writer_.Uint(value); }
  bool Int64(std::int64_t value) { return writer_.Int64(value); }
  bool Uint64(std::uint64_t value) { return writer_.Uint64(value); }
  bool Double(double value) { return writer_.Double(value); }
  bool RawNumber(const char* text, rapidjson::SizeType length, bool) {
    return writer_.RawValue(text, length, rapidjson::kNumberType);
  }
  bool String(const char* text, rapidjson::SizeType length, bool) {
    if (has_surrogate(text, length)) {
      saw_surrogate_ = true;
      return false;
    }
    return writer_.String(text, length);
  }
  bool Key(const char* text, rapidjson::SizeType length, bool copy) {
    return String(text, length, copy);
  }
  bool StartObject() { return writer_.StartObject(); }
  bool EndObject(rapidjson::SizeType) { return writer_.EndObject(); }
  bool StartArray() { return writer_.StartArray(); }
  bool EndArray(rapidjson::SizeType) { return writer_.EndArray(); }

 private:
  JsonWriter writer_;
  bool saw_surrogate_ = false;
};

// Parses `text` into `handler`; a value followed by anything but JSON
// whitespace is an error (kParseErrorDocumentRootNotSingular).
constexpr std::size_t kSimdPadding = 16;

template <typename Handler>
rapidjson::ParseResult parse(std::string_view text, Handler& handler) {
  if (const std::size_t bad = invalid_utf8_at(text); bad != std::string_view::npos)
    return rapidjson::ParseResult(rapidjson::kParseErrorStringInvalidEncoding, bad);
  // RapidJSON scans strings sixteen bytes at a time only from a StringStream,
  // which ends at a NUL: parse a NUL-terminated copy. A NUL inside the text
  // ends the parse early, and the check below turns that into an error. The
  // scan reads whole aligned 16-byte blocks, so the one holding the final
  // NUL must lie inside the buffer: 16 NULs of padding.
  thread_local std::string terminated;
  terminated.assign(text);
  terminated.append(kSimdPadding, '\0');
  rapidjson::StringStream stream(terminated.c_str());
  rapidjson::Reader reader;
  const rapidjson::ParseResult result = reader.Parse<kParseFlags>(stream, handler);
  if (terminated.capacity() > (1u << 20)) std::string().swap(terminated);
  if (result.IsError()) return result;
  const std::size_t rest = text.find_first_not_of(" \t\n\r", stream.Tell());
  if (rest != std::string_view::npos) {
    return rapidjson::ParseResult(rapidjson::kParseErrorDocumentRootNotSingular, rest);
  }
  return result;
}

std::string describe(const rapidjson::ParseResult& result, bool saw_surrogate) {
  std::string text = saw_surrogate ? "A string holds an unpaired UTF-16 surrogate."
                                   : rapidjson::GetParseError_En(result.Code());
  text += " (at offset ";
  text += std::to_string(result.Offset());
  text += ')';
  return text;
}

struct Compacted {
  std::string json;
  std::string error;  // Empty when `text` parsed.
};

// One JSON text as compact JSON, numbers as written.
Compacted compact_json(std::string_view text) {
  rapidjson::StringBuffer buffer;
  JsonCopier copier;
  copier.reset(buffer);
  const rapidjson::ParseResult result = parse(text, copier);
  if (result.IsError()) return {{}, describe(result, copier.saw_surrogate())};
  return {std::string(buffer.GetString(), buffer.GetSize()), {}};
}

// A member of a request or response object, captured while parsing.
struct Member {
  Kind kind = Kind::absent;
  bool repeated = false;
  std::string json;  // The value as compact JSON.
  std::string text;  // The decoded string, when kind is Kind::string.
};

// A request object (or a response), or, in a batch, whatever else stood in
// its place.
struct Entry {
  Entry(bool is_object, std::size_t member_count) : is_object(is_object), members(member_count) {}
  bool is_object;
  std::vector<Member> members;  // Indexed like the names given to Scanner.
};

// A SAX handler reading a JSON-RPC text: a single object, or (with batches)
// an array of them. Of each object it captures the members named, and only
// those; the rest is checked for well-formedness and forgotten.
class Scanner {
 public:
  enum class Stop { none, too_deep, too_many, surrogate };

  // `max_batch`: std::nullopt when a root array is not a batch (its content
  // is ignored).
  // `text_size`: the length of the text, which no captured member exceeds
  // (the capture buffer is made that large at once).
  Scanner(std::span<const std::string_view> names, std::size_t max_depth,
          std::optional<std::size_t> max_batch, std::size_t text_size)
      : names_(names),
        max_depth_(max_depth),
        max_batch_(max_batch),
        buffer_(nullptr, std::min<std::size_t>(text_size + 16, 1 << 20)) {}

  // Why the handler stopped the parse, if it did.
  Stop stop() const { return stop_; }
  // The root value's kind (Kind::absent when there was none).
  Kind root() const { return root_; }
  // The root object, or a batch's elements in order.
  const std::vector<Entry>& entries() const { return entries_; }

  bool Null() {
    return scalar(Kind::null, {}, [this] { return copier_.Null(); });
  }
  bool Bool(bool value) {
    return scalar(Kind::boolean, {}, [&] { return copier_.Bool(value); });
  }
  bool Int(int value) {
    return scalar(Kind::number, {}, [&] { return copier_.Int(value); });
  }
  bool Uint(unsigned value) {
    return scalar(Kind::number, {}, [&] { return copier_.Uint(value); });
  }
  bool Int64(std::int64_t value) {
    return scalar(Kind::number, {}, [&] { return copier_.Int64(value); });
  }
  bool Uint64(std::uint64_t value) {
    return scalar(Kind::number, {}, [&] { return copier_.Uint64(value); });
  }
  bool Double(double value) {
    return scalar(Kind::number, {}, [&] { return copier_.Double(value); });
  }
  bool RawNumber(const char* text, rapidjson::SizeType length, bool copy) {
    return scalar(Kind::number, {}, [&] { return copier_.RawNumber(text, length, copy); });
  }
  bool String(const char* text, rapidjson::SizeType length, bool copy) {
    if (has_surrogate(text, length)) return stop(Stop::surrogate);
    return scalar(Kind::string, std::string_view(text, length),
                  [&] { return copier_.String(text, length, copy); });
  }
  bool Key(const char* text, rapidjson::SizeType length, bool copy) {
    if (has_surrogate(text, length)) return stop(Stop::surrogate);
    if (capturing_) return copier_.Key(text, length, copy);
    if (depth_ == entry_depth_ && entries_.back().is_object) select(std::string_view(text, length));
    return true;
  }
  bool StartObject() {
    return start(Kind::object, [this] { return copier_.StartObject(); });
  }
  bool EndObject(rapidjson::SizeType count) {
    return end([&] { return copier_.EndObject(count); });
  }
  bool StartArray() {
    return start(Kind::array, [this] { return copier_.StartArray(); });
  }
  bool EndArray(rapidjson::SizeType count) {
    return end([&] { return copier_.EndArray(count); });
  }

 private:
  bool stop(Stop why) {
    stop_ = why;
    return false;
  }

  Member& selected() { return entries_.back().members[static_cast<std::size_t>(selected_)]; }

  void select(std::string_view name) {
    selected_ = -1;
    for (std::size_t i = 0; i < names_.size(); ++i) {
      if (names_[i] != name) continue;
      Member& member = entries_.back().members[i];
      // A repeated member keeps its first value and is marked; the caller
      // decides what a repetition means.
      if (member.kind != Kind::absent) {
        member.repeated = true;
      } else {
        selected_ = static_cast<int>(i);
      }
      return;
    }
  }

  bool add_element(bool is_object) {
    if (entries_.size() >= *max_batch_) return stop(Stop::too_many);
    entries_.emplace_back(is_object, names_.size());
    return true;
  }

  template <typename Emit>
  bool scalar(Kind kind, std::string_view string, Emit emit) {
    if (capturing_) return emit();
    if (depth_ == 0) {
      root_ = kind;
      return true;
    }
    if (batch_ && depth_ == 1) return add_element(false);
    if (selected_ < 0) return true;
    Member& member = selected();
    selected_ = -1;
    member.kind = kind;
    member.text = string;
    copier_.reset(buffer_);
    if (!emit()) return false;
    member.json.assign(buffer_.GetString(), buffer_.GetSize());
    return true;
  }

  template <typename Emit>
  bool start(Kind kind, Emit emit) {
    if (++depth_ > max_depth_) return stop(Stop::too_deep);
    if (capturing_) return emit();
    if (depth_ == 1) {
      root_ = kind;
      if (kind == Kind::object) {
        entries_.emplace_back(true, names_.size());
        entry_depth_ = 1;
      } else if (max_batch_) {
        batch_ = true;
        entry_depth_ = 2;
      }
      return true;
    }
    if (batch_ && depth_ == 2) return add_element(kind == Kind::object);
    if (selected_ < 0) return true;
    selected().kind = kind;
    capturing_ = true;
    capture_depth_ = depth_;
    copier_.reset(buffer_);
    return emit();
  }

  template <typename Emit>
  bool end(Emit emit) {
    if (capturing_) {
      if (!emit()) return false;
      if (depth_ == capture_depth_) {
        selected().json.assign(buffer_.GetString(), buffer_.GetSize());
        selected_ = -1;
        capturing_ = false;
      }
    }
    --depth_;
    return true;
  }

  std::span<const std::string_view> names_;
  std::size_t max_depth_;
  std::optional<std::size_t> max_batch_;

  Stop stop_ = Stop::none;
  Kind root_ = Kind::absent;
  bool batch_ = false;
  std::vector<Entry> entries_;
  std::size_t depth_ = 0;        // Containers open.
  std::size_t entry_depth_ = 0;  // The depth inside an entry object; 0: none.
  int selected_ = -1;            // The member whose value comes next; -1: none.
  bool capturing_ = false;       // Copying a selected array or object.
  std::size_t capture_depth_ = 0;
  JsonCopier copier_;
  rapidjson::StringBuffer buffer_;
};

// An error object.
struct Fault {
  int code;
  std::string message;
  std::string data;  // error.data as compact JSON; empty: no data.
};

std::string json_string(std::string_view text) {
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  writer.String(text.data(), json_size(text));
  return {buffer.GetString(), buffer.GetSize()};
}

Fault invalid_request(std::string_view why = {}) {
  return {kInvalidRequestCode, "Invalid Request", why.empty() ? std::string() : json_string(why)};
}

Fault internal_error(std::string_view why) {
  return {kInternalErrorCode, "Internal error", json_string(to_valid_utf8(why))};
}

Fault handler_failure(const Status& status) {
  int number = static_cast<int>(status.code());
  // A failure reported with OK, or with a number gRPC does not define, is
  // still a failure: UNKNOWN, as gRPC itself maps such statuses.
  if (number < 1 || number > static_cast<int>(StatusCode::unauthenticated)) {
    number = static_cast<int>(StatusCode::unknown);
  }
  const std::string_view name = status_code_name(static_cast<StatusCode>(number));
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  writer.StartObject();
  writer.Key("grpc_code");
  writer.Int(number);
  writer.Key("grpc_status");
  writer.String(name.data(), json_size(name));
  writer.EndObject();
  return {kServerErrorBase - number,
          status.message().empty() ? std::string(name) : to_valid_utf8(status.message()),
          std::string(buffer.GetString(), buffer.GetSize())};
}

// Responses as one text: a single response, or a batch's array, opened with
// its first response. Results and ids are compact JSON already and are
// appended as they are (a Writer's RawValue would copy them a byte at a time).
class ResponseText {
 public:
  explicit ResponseText(bool batch) : batch_(batch) {}

  // `id` is compact JSON; empty: null.
  void add_result(std::string_view id, std::string_view result) {
    begin();
    text_ += R"("result":)";
    text_ += result;
    end(id);
  }

  void add_error(std::string_view id, const Fault& fault) {
    rapidjson::StringBuffer buffer;
    JsonWriter writer(buffer);
    writer.StartObject();
    writer.Key("code");
    writer.Int(fault.code);
    writer.Key("message");
    writer.String(fault.message.data(), json_size(fault.message));
    if (!fault.data.empty()) {
      writer.Key("data");
      writer.RawValue(fault.data.data(), fault.data.size(), rapidjson_type(kind_of(fault.data)));
    }
    writer.EndObject();
    begin();
    text_ += R"("error":)";
    text_.append(buffer.GetString(), buffer.GetSize());
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

std::string single_error(const Fault& fault) {
  ResponseText response(false);
  response.add_error({}, fault);
  return *response.take();
}

// The members of a request object the engine reads, in Entry::members.
constexpr std::array<std::string_view, 4> kRequestMembers = {"jsonrpc", "method", "params", "id"};
enum RequestMember { kVersion, kMethod, kParams, kId };

// Checks one request (or batch element), calls its method, and adds the
// response, if one is due, to `response`.
void serve(const Entry& entry, const JsonMethods& methods, CallContext& context,
           ResponseText& response) {
  if (!entry.is_object) {
    response.add_error({}, invalid_request());
    return;
  }
  const Member& version = entry.members[kVersion];
  const Member& method = entry.members[kMethod];
  const Member& params = entry.members[kParams];
  const Member& id = entry.members[kId];

  const bool id_valid = !id.repeated && (id.kind == Kind::absent || id.kind == Kind::null ||
                                         id.kind == Kind::number || id.kind == Kind::string);
  const std::string_view id_json = id_valid ? std::string_view(id.json) : std::string_view();
  const bool valid =
      id_valid && !version.repeated && version.kind == Kind::string && version.text == "2.0" &&
      !method.repeated && method.kind == Kind::string && !params.repeated &&
      (params.kind == Kind::absent || params.kind == Kind::array || params.kind == Kind::object);
  if (!valid) {
    response.add_error(id_json, invalid_request());
    return;
  }

  const bool notification = id.kind == Kind::absent;
  std::optional<JsonCall> call;
  try {
    call = methods.call_json(method.text, params.json, context);
  } catch (const std::exception& e) {
    if (!notification) response.add_error(id_json, internal_error(e.what()));
    return;
  } catch (...) {
    if (!notification) response.add_error(id_json, internal_error("unknown exception"));
    return;
  }
  if (notification) return;

  if (!call) {
    response.add_error(id_json, {kMethodNotFoundCode, "Method not found", {}});
    return;
  }
  switch (call->outcome) {
    case JsonCall::Outcome::ok: {
      // Compact JSON from the ServiceTable needs only the (fast) UTF-8 check:
      // a handler may have put bytes that are not UTF-8 in a string.
      if (call->result_is_compact_json && invalid_utf8_at(call->result) == std::string::npos) {
        response.add_result(id_json, call->result);
        return;
      }
      // The result is embedded as JSON, so it must be JSON: a broken one
      // would break the whole response (and every other in its batch).
      Compacted result = compact_json(call->result);
      if (!result.error.empty()) {
        response.add_error(
            id_json, internal_error("the method's result is not valid JSON: " + result.error));
      } else {
        response.add_result(id_json, result.json);
      }
      return;
    }
    case JsonCall::Outcome::invalid_params: {
      const std::string& why = call->status.message();
      response.add_error(id_json, {kInvalidParamsCode, "Invalid params",
                                   why.empty() ? std::string() : json_string(to_valid_utf8(why))});
      return;
    }
    case JsonCall::Outcome::failed:
      response.add_error(id_json, handler_failure(call->status));
      return;
  }
  response.add_error(id_json, internal_error("the method returned an unknown outcome"));
}

std::optional<std::string> respond(std::string_view text, const JsonMethods& methods,
                                   const Limits& limits, CallContext& context) {
  if (context.protocol.empty()) context.protocol = "jsonrpc";
  if (text.size() > limits.max_body_bytes) {
    return single_error(invalid_request(
        "the request is " + std::to_string(text.size()) + " bytes, over the limit of " +
        std::to_string(limits.max_body_bytes) + " bytes (max_body_bytes)"));
  }

  Scanner scanner(kRequestMembers, static_cast<std::size_t>(limits.max_depth), limits.max_batch,
                  text.size());
  const rapidjson::ParseResult parsed = parse(text, scanner);
  // Too deep and too many are Invalid Request rather than Parse error: the
  // text may well be JSON, it is just more than a request may be.
  switch (scanner.stop()) {
    case Scanner::Stop::too_deep:
      return single_error(invalid_request("arrays and objects nest deeper than the limit of " +
                                          std::to_string(limits.max_depth) +
                                          " levels (max_depth)"));
    case Scanner::Stop::too_many:
      return single_error(invalid_request("the batch holds more than the limit of " +
                                          std::to_string(limits.max_batch) +
                                          " requests (max_batch)"));
    case Scanner::Stop::surrogate:
    case Scanner::Stop::none:
      break;
  }
  if (parsed.IsError()) return single_error({kParseErrorCode, "Parse error", {}});

  const std::vector<Entry>& entries = scanner.entries();
  if (scanner.root() == Kind::object) {
    ResponseText response(false);
    serve(entries.front(), methods, context, response);
    return response.take();
  }
  if (scanner.root() == Kind::array && !entries.empty()) {
    ResponseText response(true);
    for (const Entry& entry : entries) serve(entry, methods, context, response);
    return response.take();
  }
  // An empty batch, or a lone string, number, boolean or null.
  return single_error(invalid_request());
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

// A well-formed object's members, by name.
std::vector<Member> read_object(std::string_view text, std::span<const std::string_view> names,
                                std::string_view what) {
  Scanner scanner(names, std::numeric_limits<std::size_t>::max(), std::nullopt, text.size());
  const rapidjson::ParseResult parsed = parse(text, scanner);
  if (parsed.IsError()) {
    bad_reply(describe(parsed, scanner.stop() == Scanner::Stop::surrogate));
  }
  if (scanner.root() != Kind::object) {
    bad_reply(std::string(what) + " is " + std::string(kind_name(scanner.root())) +
              ", not an object");
  }
  std::vector<Member> members = scanner.entries().front().members;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (members[i].repeated) {
      bad_reply(std::string(what) + " has more than one \"" + std::string(names[i]) + "\" member");
    }
  }
  return members;
}

constexpr std::array<std::string_view, 4> kResponseMembers = {"jsonrpc", "result", "error", "id"};
enum ResponseMember { kReplyVersion, kReplyResult, kReplyError, kReplyId };
constexpr std::array<std::string_view, 2> kErrorMembers = {"code", "message"};
enum ErrorMember { kErrorCode, kErrorMessage };

}  // namespace

Engine::Engine(const JsonMethods& methods, Limits limits) : methods_(&methods), limits_(limits) {
  if (limits_.max_depth < 1) {
    throw Error("jsonrpc::Engine: Limits::max_depth must be at least 1, not " +
                std::to_string(limits_.max_depth));
  }
}

std::optional<std::string> Engine::handle(std::string_view text,
                                          CallContext& context) const noexcept {
  try {
    return respond(text, *methods_, limits_, context);
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
  if (!is_valid_utf8(method)) throw Error("JSON-RPC request: the method name is not valid UTF-8");
  std::string params;
  if (!params_json.empty()) {
    Compacted compacted = compact_json(params_json);
    if (!compacted.error.empty()) {
      throw Error("JSON-RPC request: params are not valid JSON: " + compacted.error);
    }
    const Kind kind = kind_of(compacted.json);
    if (kind != Kind::array && kind != Kind::object) {
      throw Error("JSON-RPC request: params must be a JSON array or object, not " +
                  std::string(kind_name(kind)));
    }
    params = std::move(compacted.json);
  }
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  writer.StartObject();
  writer.Key("jsonrpc");
  writer.String("2.0");
  writer.Key("method");
  writer.String(method.data(), json_size(method));
  if (!params.empty()) {
    writer.Key("params");
    writer.RawValue(params.data(), params.size(), rapidjson_type(kind_of(params)));
  }
  writer.Key("id");
  writer.Int64(id);
  writer.EndObject();
  return {buffer.GetString(), buffer.GetSize()};
}

Reply parse_reply(std::string_view text, std::int64_t expected_id) {
  const std::vector<Member> members = read_object(text, kResponseMembers, "the reply");
  const Member& version = members[kReplyVersion];
  const Member& result = members[kReplyResult];
  const Member& error = members[kReplyError];
  const Member& id = members[kReplyId];

  if (version.kind != Kind::string || version.text != "2.0") {
    bad_reply("\"jsonrpc\" is " + (version.kind == Kind::absent ? "missing" : version.json) +
              ", not \"2.0\"");
  }
  const bool has_result = result.kind != Kind::absent;
  const bool has_error = error.kind != Kind::absent;
  if (has_result == has_error) bad_reply("it must hold exactly one of \"result\" and \"error\"");
  if (id.kind == Kind::absent) bad_reply("it has no \"id\"");

  bool is_integer = false;
  const bool same_id =
      id.kind == Kind::number && parse_int64(id.json, is_integer) == expected_id && is_integer;
  // A server that could not read the request's id answers with id null.
  const bool anonymous_error = id.kind == Kind::null && has_error;
  if (!same_id && !anonymous_error) {
    throw ProtocolError("JSON-RPC reply has id " + id.json + ", expected " +
                        std::to_string(expected_id));
  }

  Reply reply;
  if (has_result) {
    reply.ok = true;
    reply.result_json = result.json;
    return reply;
  }
  const std::vector<Member> fields = read_object(error.json, kErrorMembers, "\"error\"");
  const Member& code = fields[kErrorCode];
  const Member& message = fields[kErrorMessage];
  bool code_is_integer = false;
  const std::int64_t code_value =
      code.kind == Kind::number ? parse_int64(code.json, code_is_integer) : 0;
  if (!code_is_integer || code_value < std::numeric_limits<int>::min() ||
      code_value > std::numeric_limits<int>::max()) {
    bad_reply("error.code is " + (code.kind == Kind::absent ? "missing" : code.json) +
              ", not an integer");
  }
  if (message.kind != Kind::string) {
    bad_reply("error.message is " + (message.kind == Kind::absent ? "missing" : message.json) +
              ", not a string");
  }
  reply.ok = false;
  reply.error_code = static_cast<int>(code_value);
  reply.error_message = message.text;
  reply.error_json = error.json;
  return reply;
}

}  // namespace conduit::rpc::jsonrpc
