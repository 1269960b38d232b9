#include "rpc/protocols/jsonrpc/proto_json.hpp"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/struct.pb.h>

#include <algorithm>
#include <cfloat>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "conduit/error.hpp"
#include "rpc/protocols/jsonrpc/json_document.hpp"

namespace conduit::rpc::jsonrpc {

namespace {

// `message` as the generated class `T` when it is one, else null (a dynamic
// message of the same type). T is final, so comparing the dynamic type is
// enough, and cheaper than dynamic_cast.
template <typename T, typename M>
auto* as_generated(M& message) {
  using Result = std::conditional_t<std::is_const_v<M>, const T, T>;
  static_assert(std::is_final_v<T>);
  return typeid(message) == typeid(T) ? static_cast<Result*>(&message) : nullptr;
}

namespace pb = google::protobuf;
using Field = pb::FieldDescriptor;

// ---- where a value is, for errors ----

// A path from the top to the value being mapped, kept on the stack and
// spelled out only when something fails.
struct Path {
  enum class Kind { label, field, index, key };
  const Path* parent = nullptr;
  Kind kind = Kind::label;
  std::string_view text;  // a label, or a map key
  const Field* field = nullptr;
  std::size_t index = 0;
};

void append_path(const Path* path, std::string& out) {
  if (path == nullptr) return;
  append_path(path->parent, out);
  switch (path->kind) {
    case Path::Kind::label:
      out += path->text;
      break;
    case Path::Kind::field:
      if (!out.empty()) out += '.';
      out += path->field->json_name();
      break;
    case Path::Kind::index:
      out += '[';
      out += std::to_string(path->index);
      out += ']';
      break;
    case Path::Kind::key:
      out += "[\"";
      out += path->text;
      out += "\"]";
      break;
  }
}

// Thrown inside the mapping, caught at its entry points.
struct MappingFailure {
  std::string message;
};

[[noreturn]] void fail(const Path* path, std::string_view reason) {
  std::string message;
  append_path(path, message);
  if (!message.empty()) message += ": ";
  message += reason;
  throw MappingFailure{std::move(message)};
}

// ---- the well-known types ----

enum class WellKnown {
  none,
  any,
  timestamp,
  duration,
  field_mask,
  struct_value,
  value,
  list_value,
  wrapper,  // DoubleValue ... BytesValue: the bare value of field 1
};

WellKnown well_known(const pb::Descriptor& type) {
  // By name, not by descriptor: a pool of its own has its own copies.
  if (type.file()->package() != "google.protobuf") return WellKnown::none;
  const std::string& name = type.name();
  if (name == "Value") return WellKnown::value;
  if (name == "ListValue") return WellKnown::list_value;
  if (name == "Struct") return WellKnown::struct_value;
  if (name == "Timestamp") return WellKnown::timestamp;
  if (name == "Duration") return WellKnown::duration;
  if (name == "FieldMask") return WellKnown::field_mask;
  if (name == "Any") return WellKnown::any;
  if (name == "DoubleValue" || name == "FloatValue" || name == "Int64Value" ||
      name == "UInt64Value" || name == "Int32Value" || name == "UInt32Value" ||
      name == "BoolValue" || name == "StringValue" || name == "BytesValue") {
    return WellKnown::wrapper;
  }
  return WellKnown::none;
}

bool is_value_message(const Field& field) {
  return field.cpp_type() == Field::CPPTYPE_MESSAGE &&
         well_known(*field.message_type()) == WellKnown::value;
}

bool is_null_value_enum(const Field& field) {
  return field.cpp_type() == Field::CPPTYPE_ENUM &&
         field.enum_type()->full_name() == "google.protobuf.NullValue";
}

// Whether a JSON null for this field (or element, or map value) is a value
// rather than the absence of one.
bool null_is_a_value(const Field& field) {
  return is_value_message(field) || is_null_value_enum(field);
}

// "type.googleapis.com/pkg.Type" -> the type in `pool`, or nullptr.
const pb::Descriptor* resolve_type_url(std::string_view url, const pb::DescriptorPool& pool) {
  constexpr std::string_view kPrefix = "type.googleapis.com/";
  if (!url.starts_with(kPrefix)) return nullptr;
  return pool.FindMessageTypeByName(std::string(url.substr(kPrefix.size())));
}

// ---- time ----

constexpr std::int64_t kTimestampMinSeconds = -62135596800;  // 0001-01-01T00:00:00Z
constexpr std::int64_t kTimestampMaxSeconds = 253402300799;  // 9999-12-31T23:59:59Z
constexpr std::int64_t kDurationMaxSeconds = 315576000000;   // 10000 years
constexpr std::int32_t kNanosPerSecond = 1000000000;

// Days since 1970-01-01 of a date in the proleptic Gregorian calendar.
std::int64_t days_from_civil(std::int64_t year, unsigned month, unsigned day) {
  year -= month <= 2;
  const std::int64_t era = (year >= 0 ? year : year - 399) / 400;
  const auto year_of_era = static_cast<unsigned>(year - era * 400);
  const unsigned day_of_year = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
  const unsigned day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
  return era * 146097 + static_cast<std::int64_t>(day_of_era) - 719468;
}

struct Civil {
  std::int64_t year;
  unsigned month, day;
};

Civil civil_from_days(std::int64_t days) {
  days += 719468;
  const std::int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const auto day_of_era = static_cast<unsigned>(days - era * 146097);
  const unsigned year_of_era =
      (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
  const unsigned day_of_year =
      day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
  const unsigned mp = (5 * day_of_year + 2) / 153;
  const unsigned day = day_of_year - (153 * mp + 2) / 5 + 1;
  const unsigned month = mp < 10 ? mp + 3 : mp - 9;
  return {static_cast<std::int64_t>(year_of_era) + era * 400 + (month <= 2), month, day};
}

bool is_leap_year(int year) {
  return year % 400 == 0 || (year % 4 == 0 && year % 100 != 0);
}

// ".5", ".500", ".500000" or ".500000000": as few groups of three digits
// as the nanoseconds need, none for 0.
std::string format_nanos(std::int32_t nanos) {
  if (nanos == 0) return {};
  char digits[16];
  if (nanos % 1000000 == 0) {
    std::snprintf(digits, sizeof digits, ".%03d", nanos / 1000000);
  } else if (nanos % 1000 == 0) {
    std::snprintf(digits, sizeof digits, ".%06d", nanos / 1000);
  } else {
    std::snprintf(digits, sizeof digits, ".%09d", nanos);
  }
  return digits;
}

// Up to `width` digits (at least one) within [low, high].
const char* parse_digits(const char* at, int width, int low, int high, int& value) {
  if (*at < '0' || *at > '9') return nullptr;
  value = 0;
  for (int i = 0; i < width && *at >= '0' && *at <= '9'; ++i, ++at)
    value = value * 10 + (*at - '0');
  return value >= low && value <= high ? at : nullptr;
}

// RFC 3339, "2015-05-20T13:29:35.120Z" or with an offset "-08:00", as
// protobuf reads it.
bool parse_timestamp(const std::string& text, std::int64_t& seconds, std::int32_t& nanos) {
  const char* at = text.c_str();
  int year, month, day, hour, minute, second;
  if (!(at = parse_digits(at, 4, 1, 9999, year)) || *at++ != '-') return false;
  if (!(at = parse_digits(at, 2, 1, 12, month)) || *at++ != '-') return false;
  if (!(at = parse_digits(at, 2, 1, 31, day)) || *at++ != 'T') return false;
  if (!(at = parse_digits(at, 2, 0, 23, hour)) || *at++ != ':') return false;
  if (!(at = parse_digits(at, 2, 0, 59, minute)) || *at++ != ':') return false;
  if (!(at = parse_digits(at, 2, 0, 59, second))) return false;
  static constexpr int kDaysInMonth[] = {0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (day > kDaysInMonth[month] + (month == 2 && is_leap_year(year) ? 1 : 0)) return false;
  seconds =
      days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day)) * 86400 +
      hour * 3600 + minute * 60 + second;
  nanos = 0;
  if (*at == '.') {
    ++at;
    if (*at < '0' || *at > '9') return false;
    int digits = 0;
    for (; *at >= '0' && *at <= '9'; ++at, ++digits) {
      if (digits < 9) nanos = nanos * 10 + (*at - '0');
    }
    for (; digits < 9; ++digits) nanos *= 10;
  }
  if (*at == 'Z') {
    ++at;
  } else if (*at == '+' || *at == '-') {
    const int sign = *at++ == '+' ? -1 : 1;
    int offset_hours, offset_minutes;
    if (!(at = parse_digits(at, 2, 0, 23, offset_hours)) || *at++ != ':') return false;
    if (!(at = parse_digits(at, 2, 0, 59, offset_minutes))) return false;
    seconds += sign * (offset_hours * 60 + offset_minutes) * 60;
  } else {
    return false;
  }
  return *at == '\0';
}

// ---- numbers ----

// protobuf's integer text: an optional sign, then digits only.
template <typename Integer>
bool parse_integer_text(std::string_view text, Integer& value) {
  if (text.empty()) return false;
  bool negative = false;
  if (text.front() == '-' || text.front() == '+') {
    negative = text.front() == '-';
    text.remove_prefix(1);
    if (text.empty()) return false;
  }
  if (negative && std::is_unsigned_v<Integer>) return false;
  for (char c : text)
    if (c < '0' || c > '9') return false;
  std::string digits = negative ? "-" + std::string(text) : std::string(text);
  const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  return error == std::errc() && end == digits.data() + digits.size();
}

// protobuf's double text: what strtod reads, whitespace after it allowed.
bool parse_double_text(const std::string& text, double& value) {
  if (text.empty()) return false;
  char* end = nullptr;
  value = std::strtod(text.c_str(), &end);
  if (end != text.c_str()) {
    while (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r' || *end == '\f' ||
           *end == '\v')
      ++end;
  }
  return *end == '\0';
}

// protobuf's boolean text.
bool parse_bool_text(std::string_view text, bool& value) {
  std::string lower(text);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower == "true" || lower == "t" || lower == "yes" || lower == "y" || lower == "1") {
    value = true;
    return true;
  }
  if (lower == "false" || lower == "f" || lower == "no" || lower == "n" || lower == "0") {
    value = false;
    return true;
  }
  return false;
}

// As protobuf prints them: the shortest of %.15g and %.17g that reads back
// as the same double.
std::string format_double(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.15g", value);
  if (std::strtod(text, nullptr) != value) std::snprintf(text, sizeof text, "%.17g", value);
  return text;
}

std::string format_float(float value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.6g", static_cast<double>(value));
  // protobuf takes the short form only when it reads back without a range
  // error, which denormals always raise.
  const bool denormal = value != 0 && std::fabs(value) < std::numeric_limits<float>::min();
  if (denormal || std::strtof(text, nullptr) != value) {
    std::snprintf(text, sizeof text, "%.9g", static_cast<double>(value));
  }
  return text;
}

std::string_view json_kind(const rapidjson::Value& json) {
  switch (json.GetType()) {
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

std::string_view text_of(const rapidjson::Value& json) {
  return {json.GetString(), json.GetStringLength()};
}

// A JSON number as it reads in errors.
std::string number_text(const rapidjson::Value& json) {
  if (json.IsInt64()) return std::to_string(json.GetInt64());
  if (json.IsUint64()) return std::to_string(json.GetUint64());
  return format_double(json.GetDouble());
}

[[noreturn]] void wrong_kind(const Path* path, std::string_view expected,
                             const rapidjson::Value& json) {
  fail(path, "expected " + std::string(expected) + ", got " + std::string(json_kind(json)));
}

// An integer field's value: from an integral number, or from a string of
// digits.
template <typename Integer>
Integer to_integer(const rapidjson::Value& json, const Path* path, std::string_view type_name) {
  auto out_of_range = [&](const std::string& shown) -> Integer {
    fail(path, shown + " is out of range for " + std::string(type_name));
  };
  constexpr auto kMin = std::numeric_limits<Integer>::min();
  constexpr auto kMax = std::numeric_limits<Integer>::max();
  if (json.IsString()) {
    const std::string_view text = text_of(json);
    Integer value;
    if (parse_integer_text(text, value)) return value;
    // Digits too many for the type are out of range; anything else is not
    // an integer.
    std::string_view digits = text;
    if (digits.starts_with('+') || digits.starts_with('-')) digits.remove_prefix(1);
    const bool all_digits =
        !digits.empty() && digits.find_first_not_of("0123456789") == std::string_view::npos;
    const std::string shown = "\"" + std::string(text) + "\"";
    if (all_digits && !(std::is_unsigned_v<Integer> && text.starts_with('-')))
      return out_of_range(shown);
    fail(path, std::string("expected ") +
                   (std::is_unsigned_v<Integer> ? "an unsigned integer" : "an integer") +
                   ", got a string: " + shown);
  }
  if (!json.IsNumber()) wrong_kind(path, "a number", json);
  if (json.IsInt64()) {
    const std::int64_t value = json.GetInt64();
    if (std::is_unsigned_v<Integer>
            ? value < 0
            : value < static_cast<std::int64_t>(kMin) || value > static_cast<std::int64_t>(kMax)) {
      return out_of_range(std::to_string(value));
    }
    if (std::is_unsigned_v<Integer> && static_cast<std::uint64_t>(value) > kMax)
      return out_of_range(std::to_string(value));
    return static_cast<Integer>(value);
  }
  if (json.IsUint64()) {
    const std::uint64_t value = json.GetUint64();
    if (value > static_cast<std::uint64_t>(kMax)) return out_of_range(std::to_string(value));
    return static_cast<Integer>(value);
  }
  const double value = json.GetDouble();
  if (std::trunc(value) != value) fail(path, format_double(value) + " is not an integer");
  // The bounds as doubles: kMax + 1 is a power of two, exact.
  const double upper = static_cast<double>(kMax) + 1.0;
  const double lower = static_cast<double>(kMin);
  if (value < lower || value >= upper) return out_of_range(format_double(value));
  return static_cast<Integer>(value);
}

double to_double(const rapidjson::Value& json, const Path* path) {
  if (json.IsNumber()) {
    if (json.IsInt64()) return static_cast<double>(json.GetInt64());
    if (json.IsUint64()) return static_cast<double>(json.GetUint64());
    return json.GetDouble();
  }
  if (!json.IsString()) wrong_kind(path, "a number", json);
  const std::string text(text_of(json));
  if (text == "NaN") return std::numeric_limits<double>::quiet_NaN();
  if (text == "Infinity") return std::numeric_limits<double>::infinity();
  if (text == "-Infinity") return -std::numeric_limits<double>::infinity();
  double value;
  if (text.empty() || text.front() == ' ' || text.back() == ' ' ||
      !parse_double_text(text, value) || !std::isfinite(value)) {
    fail(path, "expected a number, got a string: \"" + text + "\"");
  }
  return value;
}

float to_float(const rapidjson::Value& json, const Path* path) {
  const double value = to_double(json, path);
  if (std::isnan(value)) return std::numeric_limits<float>::quiet_NaN();
  if (std::isinf(value)) return static_cast<float>(value);
  constexpr double kMax = std::numeric_limits<float>::max();
  if (value > kMax || value < -kMax) {
    // Numbers round to the largest float when they are close enough; text
    // must be within range as written.
    const double half = value * 0.5;
    if (json.IsNumber() && half < kMax && half > -kMax) {
      const float half_float = static_cast<float>(half);
      const float half_max = std::numeric_limits<float>::max() * 0.5f;
      if (half_float <= half_max && half_float >= -half_max) return half_float + half_float;
    }
    fail(path, (json.IsString() ? "\"" + std::string(text_of(json)) + "\"" : number_text(json)) +
                   " is out of range for float");
  }
  return static_cast<float>(value);
}

bool to_bool(const rapidjson::Value& json, const Path* path) {
  if (json.IsBool()) return json.GetBool();
  if (json.IsString()) {
    bool value;
    if (parse_bool_text(text_of(json), value)) return value;
    fail(path, "\"" + std::string(text_of(json)) + "\" is not a boolean");
  }
  wrong_kind(path, "a boolean", json);
}

// ---- base64 ----

constexpr char kBase64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string base64_encode(std::string_view bytes) {
  std::string text;
  text.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  auto byte = [&](std::size_t at) { return static_cast<unsigned char>(bytes[at]); };
  for (; i + 3 <= bytes.size(); i += 3) {
    const unsigned group = byte(i) << 16 | byte(i + 1) << 8 | byte(i + 2);
    const char quad[] = {kBase64[group >> 18], kBase64[(group >> 12) & 63],
                         kBase64[(group >> 6) & 63], kBase64[group & 63]};
    text.append(quad, 4);
  }
  if (i + 1 == bytes.size()) {
    const unsigned group = byte(i) << 16;
    const char quad[] = {kBase64[group >> 18], kBase64[(group >> 12) & 63], '=', '='};
    text.append(quad, 4);
  } else if (i + 2 == bytes.size()) {
    const unsigned group = byte(i) << 16 | byte(i + 1) << 8;
    const char quad[] = {kBase64[group >> 18], kBase64[(group >> 12) & 63],
                         kBase64[(group >> 6) & 63], '='};
    text.append(quad, 4);
  }
  return text;
}

// Decodes one alphabet: `plus` and `slash` are its last two digits.
bool base64_decode(std::string_view text, char plus, char slash, std::string& bytes) {
  std::size_t end = text.size();
  std::size_t padding = 0;
  while (end > 0 && text[end - 1] == '=') {
    --end;
    ++padding;
  }
  const std::size_t digits = end;
  if (digits % 4 == 1) return false;
  if (padding > 0 && (digits + padding) % 4 != 0) return false;
  bytes.clear();
  bytes.reserve(digits / 4 * 3 + 2);
  unsigned group = 0;
  int count = 0;
  for (std::size_t i = 0; i < end; ++i) {
    const char c = text[i];
    unsigned digit;
    if (c >= 'A' && c <= 'Z') {
      digit = static_cast<unsigned>(c - 'A');
    } else if (c >= 'a' && c <= 'z') {
      digit = static_cast<unsigned>(c - 'a' + 26);
    } else if (c >= '0' && c <= '9') {
      digit = static_cast<unsigned>(c - '0' + 52);
    } else if (c == plus) {
      digit = 62;
    } else if (c == slash) {
      digit = 63;
    } else {
      return false;
    }
    group = group << 6 | digit;
    if (++count == 4) {
      const char three[] = {static_cast<char>(group >> 16), static_cast<char>(group >> 8),
                            static_cast<char>(group)};
      bytes.append(three, 3);
      group = 0;
      count = 0;
    }
  }
  if (count == 2) {
    bytes += static_cast<char>(group >> 4);
  } else if (count == 3) {
    bytes += static_cast<char>(group >> 10);
    bytes += static_cast<char>(group >> 2);
  }
  return true;
}

std::string to_bytes(const rapidjson::Value& json, const Path* path) {
  if (!json.IsString()) wrong_kind(path, "a base64 string", json);
  std::string bytes;
  if (base64_decode(text_of(json), '-', '_', bytes) ||
      base64_decode(text_of(json), '+', '/', bytes))
    return bytes;
  fail(path, "\"" + std::string(text_of(json)) + "\" is not base64");
}

// ---- field names ----

// FieldMask paths: "foo_bar" <-> "fooBar", as protobuf converts them.
std::string to_camel_case(std::string_view input) {
  bool capitalize_next = false;
  bool was_cap = true;
  bool is_cap = false;
  bool first_word = true;
  std::string result;
  result.reserve(input.size());
  auto upper = [](char c) { return c >= 'A' && c <= 'Z'; };
  auto lower = [](char c) { return c >= 'a' && c <= 'z'; };
  for (std::size_t i = 0; i < input.size(); ++i, was_cap = is_cap) {
    const char c = input[i];
    is_cap = upper(c);
    if (c == '_') {
      capitalize_next = true;
      if (!result.empty()) first_word = false;
    } else if (first_word) {
      if (!result.empty() && is_cap &&
          (!was_cap || (i + 1 < input.size() && lower(input[i + 1])))) {
        first_word = false;
        result += c;
      } else {
        result += static_cast<char>(is_cap ? c - 'A' + 'a' : c);
      }
    } else if (capitalize_next) {
      capitalize_next = false;
      result += static_cast<char>(lower(c) ? c - 'a' + 'A' : c);
    } else {
      result += static_cast<char>(is_cap ? c - 'A' + 'a' : c);
    }
  }
  return result;
}

std::string to_snake_case(std::string_view input) {
  bool was_not_underscore = false;
  bool was_not_cap = false;
  std::string result;
  result.reserve(input.size() * 2);
  for (std::size_t i = 0; i < input.size(); ++i) {
    const char c = input[i];
    if (c >= 'A' && c <= 'Z') {
      if (was_not_underscore &&
          (was_not_cap || (i + 1 < input.size() && input[i + 1] >= 'a' && input[i + 1] <= 'z'))) {
        result += '_';
      }
      result += static_cast<char>(c - 'A' + 'a');
      was_not_underscore = true;
      was_not_cap = false;
    } else {
      result += c;
      was_not_underscore = c != '_';
      was_not_cap = true;
    }
  }
  return result;
}

const Field* find_field(const pb::Descriptor& type, std::string_view name) {
  for (int i = 0; i < type.field_count(); ++i) {
    const Field* field = type.field(i);
    if (field->json_name() == name) return field;
  }
  for (int i = 0; i < type.field_count(); ++i) {
    const Field* field = type.field(i);
    if (field->name() == name) return field;
  }
  return nullptr;
}

// A map entry's key as JSON names it.
std::string key_text(const pb::Message& entry, const Field& field) {
  const pb::Reflection& reflection = *entry.GetReflection();
  switch (field.cpp_type()) {
    case Field::CPPTYPE_STRING:
      return reflection.GetString(entry, &field);
    case Field::CPPTYPE_BOOL:
      return reflection.GetBool(entry, &field) ? "true" : "false";
    case Field::CPPTYPE_INT32:
      return std::to_string(reflection.GetInt32(entry, &field));
    case Field::CPPTYPE_INT64:
      return std::to_string(reflection.GetInt64(entry, &field));
    case Field::CPPTYPE_UINT32:
      return std::to_string(reflection.GetUInt32(entry, &field));
    case Field::CPPTYPE_UINT64:
      return std::to_string(reflection.GetUInt64(entry, &field));
    default:
      return {};
  }
}

// ---- JSON -> message ----

class Reader {
 public:
  void message(const rapidjson::Value& json, pb::Message& message, const Path* path, int depth) {
    if (depth > kMaxMappingDepth) {
      fail(path, "nests deeper than " + std::to_string(kMaxMappingDepth) + " levels");
    }
    switch (well_known(*message.GetDescriptor())) {
      case WellKnown::value:
        return value(json, message, path, depth);
      case WellKnown::list_value:
        if (json.IsObject()) break;  // as a message: {"values": [...]}
        if (!json.IsArray()) wrong_kind(path, "an array", json);
        return list_value(json, message, path, depth);
      case WellKnown::struct_value:
        if (!json.IsObject()) wrong_kind(path, "an object", json);
        return struct_value(json, message, path, depth);
      case WellKnown::timestamp:
        if (json.IsObject()) break;  // as a message: {"seconds": 1, "nanos": 2}
        return timestamp(json, message, path);
      case WellKnown::duration:
        if (json.IsObject()) break;
        return duration(json, message, path);
      case WellKnown::field_mask:
        if (json.IsObject()) break;
        return field_mask(json, message, path);
      case WellKnown::wrapper:
        if (json.IsObject()) break;  // as a message: {"value": 1}
        return wrapper(json, message, path, depth);
      case WellKnown::any:
        return any(json, message, path, depth);
      case WellKnown::none:
        break;
    }
    if (!json.IsObject()) wrong_kind(path, "an object", json);
    fields(json, message, path, depth, nullptr);
  }

 private:
  // The members of `json` into fields of `message`, all but `skip`.
  void fields(const rapidjson::Value& json, pb::Message& message, const Path* path, int depth,
              const char* skip) {
    const pb::Descriptor& type = *message.GetDescriptor();
    // Members of a oneof (including proto3 `optional` fields, each a oneof
    // of its own) may appear once in an object.
    std::vector<bool> oneof_set;
    for (const auto& member : json.GetObject()) {
      const std::string_view name = text_of(member.name);
      if (skip != nullptr && name == skip) continue;
      const Field* field = find_field(type, name);
      if (field == nullptr) {
        std::string why = type.full_name() + " has no field \"";
        why += name;
        why += '"';
        fail(path, why);
      }
      const Path here{path, Path::Kind::field, {}, field};
      this->member(*field, member.value, message, &here, depth, oneof_set);
    }
  }

 public:
  // Positional params: element i into field i.
  void positional(const rapidjson::Value& array, pb::Message& message) {
    const pb::Descriptor& type = *message.GetDescriptor();
    std::vector<bool> oneof_set;
    for (rapidjson::SizeType i = 0; i < array.Size(); ++i) {
      const Field& field = *type.field(static_cast<int>(i));
      const std::string label = "params[" + std::to_string(i) + "] (" + field.json_name() + ")";
      const Path at{nullptr, Path::Kind::label, label};
      member(field, array[i], message, &at, 0, oneof_set);
    }
  }

 private:
  // One member's value into its field; `here` names it.
  void member(const Field& field, const rapidjson::Value& value, pb::Message& message,
              const Path* here, int depth, std::vector<bool>& oneof_set) {
    if (value.IsNull() && !null_is_a_value(field)) return;
    if (const pb::OneofDescriptor* oneof = field.containing_oneof()) {
      oneof_set.resize(static_cast<std::size_t>(field.containing_type()->oneof_decl_count()));
      if (oneof_set[static_cast<std::size_t>(oneof->index())]) {
        fail(here, "oneof " + oneof->name() + " is already set");
      }
      oneof_set[static_cast<std::size_t>(oneof->index())] = true;
    }
    if (field.is_map()) {
      map(value, message, field, here, depth);
    } else if (field.is_repeated() && value.IsArray()) {
      elements(value, message, field, here, depth);
    } else {
      // A single value for a repeated field is its one element, as
      // protobuf takes it.
      store(value, message, field, here, depth);
    }
  }

  // The elements of `array` appended to repeated `field`. Arrays inside it
  // add their elements too, as protobuf reads them, except where an element
  // is a Value, which holds an array as itself.
  void elements(const rapidjson::Value& array, pb::Message& message, const Field& field,
                const Path* path, int depth) {
    if (depth > kMaxMappingDepth) {
      fail(path, "nests deeper than " + std::to_string(kMaxMappingDepth) + " levels");
    }
    std::size_t index = 0;
    for (const auto& element : array.GetArray()) {
      const Path at{path, Path::Kind::index, {}, nullptr, index++};
      if (element.IsNull() && !null_is_a_value(field)) continue;
      if (element.IsArray() && !is_value_message(field)) {
        elements(element, message, field, &at, depth + 1);
      } else {
        store(element, message, field, &at, depth);
      }
    }
  }

  void map(const rapidjson::Value& json, pb::Message& message, const Field& field, const Path* path,
           int depth) {
    if (!json.IsObject()) wrong_kind(path, "an object", json);
    const Field& key_field = *field.message_type()->map_key();
    const Field& value_field = *field.message_type()->map_value();
    const pb::Reflection& reflection = *message.GetReflection();
    // A key may appear once in an object; after conversion, "1" and "01"
    // are one key, and the last counts.
    std::unordered_set<std::string_view> keys;
    std::unordered_map<std::string, pb::Message*> entries;
    for (const auto& member : json.GetObject()) {
      const std::string_view key = text_of(member.name);
      const Path at{path, Path::Kind::key, key};
      if (!keys.insert(key).second) fail(&at, "the key appears twice");
      pb::Message* entry = reflection.AddMessage(&message, &field);
      map_key(member.name, *entry, key_field, &at);
      const auto [existing, added] = entries.emplace(key_text(*entry, key_field), entry);
      if (!added) {
        reflection.RemoveLast(&message, &field);
        entry = existing->second;
        entry->GetReflection()->ClearField(entry, &value_field);
      }
      // null: an entry holding the value's default (a Value: null).
      if (member.value.IsNull() && !null_is_a_value(value_field)) continue;
      store(member.value, *entry, value_field, &at, depth);
    }
  }

  void map_key(const rapidjson::Value& key, pb::Message& entry, const Field& field,
               const Path* path) {
    const pb::Reflection& reflection = *entry.GetReflection();
    switch (field.cpp_type()) {
      case Field::CPPTYPE_STRING:
        reflection.SetString(&entry, &field, std::string(text_of(key)));
        return;
      case Field::CPPTYPE_BOOL:
        reflection.SetBool(&entry, &field, to_bool(key, path));
        return;
      case Field::CPPTYPE_INT32:
        reflection.SetInt32(&entry, &field, to_integer<std::int32_t>(key, path, "int32"));
        return;
      case Field::CPPTYPE_INT64:
        reflection.SetInt64(&entry, &field, to_integer<std::int64_t>(key, path, "int64"));
        return;
      case Field::CPPTYPE_UINT32:
        reflection.SetUInt32(&entry, &field, to_integer<std::uint32_t>(key, path, "uint32"));
        return;
      case Field::CPPTYPE_UINT64:
        reflection.SetUInt64(&entry, &field, to_integer<std::uint64_t>(key, path, "uint64"));
        return;
      default:
        fail(path, "a map key of type " + std::string(field.type_name()));
    }
  }

  // One value into a singular field, or appended to a repeated one.
  void store(const rapidjson::Value& json, pb::Message& message, const Field& field,
             const Path* path, int depth) {
    const pb::Reflection& reflection = *message.GetReflection();
    const bool repeated = field.is_repeated();
    switch (field.cpp_type()) {
      case Field::CPPTYPE_INT32: {
        const auto value = to_integer<std::int32_t>(json, path, "int32");
        repeated ? reflection.AddInt32(&message, &field, value)
                 : reflection.SetInt32(&message, &field, value);
        return;
      }
      case Field::CPPTYPE_INT64: {
        const auto value = to_integer<std::int64_t>(json, path, "int64");
        repeated ? reflection.AddInt64(&message, &field, value)
                 : reflection.SetInt64(&message, &field, value);
        return;
      }
      case Field::CPPTYPE_UINT32: {
        const auto value = to_integer<std::uint32_t>(json, path, "uint32");
        repeated ? reflection.AddUInt32(&message, &field, value)
                 : reflection.SetUInt32(&message, &field, value);
        return;
      }
      case Field::CPPTYPE_UINT64: {
        const auto value = to_integer<std::uint64_t>(json, path, "uint64");
        repeated ? reflection.AddUInt64(&message, &field, value)
                 : reflection.SetUInt64(&message, &field, value);
        return;
      }
      case Field::CPPTYPE_DOUBLE: {
        const double value = to_double(json, path);
        repeated ? reflection.AddDouble(&message, &field, value)
                 : reflection.SetDouble(&message, &field, value);
        return;
      }
      case Field::CPPTYPE_FLOAT: {
        const float value = to_float(json, path);
        repeated ? reflection.AddFloat(&message, &field, value)
                 : reflection.SetFloat(&message, &field, value);
        return;
      }
      case Field::CPPTYPE_BOOL: {
        const bool value = to_bool(json, path);
        repeated ? reflection.AddBool(&message, &field, value)
                 : reflection.SetBool(&message, &field, value);
        return;
      }
      case Field::CPPTYPE_ENUM: {
        const int value = to_enum(json, *field.enum_type(), path);
        repeated ? reflection.AddEnumValue(&message, &field, value)
                 : reflection.SetEnumValue(&message, &field, value);
        return;
      }
      case Field::CPPTYPE_STRING: {
        std::string value;
        if (field.type() == Field::TYPE_BYTES) {
          value = to_bytes(json, path);
        } else {
          if (!json.IsString()) wrong_kind(path, "a string", json);
          value.assign(json.GetString(), json.GetStringLength());
        }
        repeated ? reflection.AddString(&message, &field, std::move(value))
                 : reflection.SetString(&message, &field, std::move(value));
        return;
      }
      case Field::CPPTYPE_MESSAGE: {
        pb::Message& child = repeated ? *reflection.AddMessage(&message, &field)
                                      : *reflection.MutableMessage(&message, &field);
        this->message(json, child, path, depth + 1);
        return;
      }
    }
  }

  int to_enum(const rapidjson::Value& json, const pb::EnumDescriptor& type, const Path* path) {
    if (json.IsNull()) return 0;  // NullValue's null
    if (json.IsString()) {
      const std::string name(text_of(json));
      if (const pb::EnumValueDescriptor* value = type.FindValueByName(name)) return value->number();
      std::int32_t number;
      if (parse_integer_text(name, number) && type.FindValueByNumber(number) != nullptr)
        return number;
      fail(path, "\"" + name + "\" is not a value of " + type.full_name());
    }
    if (!json.IsNumber()) wrong_kind(path, "an enum name or number", json);
    // Numbers the enum does not name are kept, as proto3 keeps them.
    return to_integer<std::int32_t>(json, path, "an enum");
  }

  void value(const rapidjson::Value& json, pb::Message& message, const Path* path, int depth) {
    if (auto* generated = as_generated<pb::Value>(message)) {
      return generated_value(json, *generated, path, depth);
    }
    const pb::Descriptor& type = *message.GetDescriptor();
    const pb::Reflection& reflection = *message.GetReflection();
    switch (json.GetType()) {
      case rapidjson::kNullType:
        reflection.SetEnumValue(&message, type.FindFieldByNumber(1), 0);
        return;
      case rapidjson::kNumberType:
        reflection.SetDouble(&message, type.FindFieldByNumber(2), to_double(json, path));
        return;
      case rapidjson::kStringType:
        reflection.SetString(&message, type.FindFieldByNumber(3), std::string(text_of(json)));
        return;
      case rapidjson::kFalseType:
      case rapidjson::kTrueType:
        reflection.SetBool(&message, type.FindFieldByNumber(4), json.GetBool());
        return;
      case rapidjson::kObjectType:
        struct_value(json, *reflection.MutableMessage(&message, type.FindFieldByNumber(5)), path,
                     depth + 1);
        return;
      case rapidjson::kArrayType:
        list_value(json, *reflection.MutableMessage(&message, type.FindFieldByNumber(6)), path,
                   depth + 1);
        return;
    }
  }

  void list_value(const rapidjson::Value& json, pb::Message& message, const Path* path, int depth) {
    if (depth > kMaxMappingDepth) {
      fail(path, "nests deeper than " + std::to_string(kMaxMappingDepth) + " levels");
    }
    if (auto* generated = as_generated<pb::ListValue>(message)) {
      return generated_list(json, *generated, path, depth);
    }
    const Field& values = *message.GetDescriptor()->FindFieldByNumber(1);
    std::size_t index = 0;
    for (const auto& element : json.GetArray()) {
      const Path at{path, Path::Kind::index, {}, nullptr, index++};
      value(element, *message.GetReflection()->AddMessage(&message, &values), &at, depth);
    }
  }

  void struct_value(const rapidjson::Value& json, pb::Message& message, const Path* path,
                    int depth) {
    if (depth > kMaxMappingDepth) {
      fail(path, "nests deeper than " + std::to_string(kMaxMappingDepth) + " levels");
    }
    if (auto* generated = as_generated<pb::Struct>(message)) {
      return generated_struct(json, *generated, path, depth);
    }
    const Field& fields = *message.GetDescriptor()->FindFieldByNumber(1);
    map(json, message, fields, path, depth);
  }

  // Generated Value, ListValue and Struct, without reflection: the common
  // case of JSON-RPC methods that take any JSON.
  void generated_value(const rapidjson::Value& json, pb::Value& out, const Path* path, int depth) {
    switch (json.GetType()) {
      case rapidjson::kNullType:
        out.set_null_value(pb::NULL_VALUE);
        return;
      case rapidjson::kFalseType:
      case rapidjson::kTrueType:
        out.set_bool_value(json.GetBool());
        return;
      case rapidjson::kNumberType:
        out.set_number_value(to_double(json, path));
        return;
      case rapidjson::kStringType:
        // Built once and moved in: the (const char*, size) setter copies twice.
        out.set_string_value(std::string(json.GetString(), json.GetStringLength()));
        return;
      case rapidjson::kArrayType:
        return list_value(json, *out.mutable_list_value(), path, depth + 1);
      case rapidjson::kObjectType:
        return struct_value(json, *out.mutable_struct_value(), path, depth + 1);
    }
  }

  void generated_list(const rapidjson::Value& json, pb::ListValue& out, const Path* path,
                      int depth) {
    out.mutable_values()->Reserve(out.values_size() + static_cast<int>(json.Size()));
    std::size_t index = 0;
    for (const auto& element : json.GetArray()) {
      const Path at{path, Path::Kind::index, {}, nullptr, index++};
      generated_value(element, *out.add_values(), &at, depth);
    }
  }

  void generated_struct(const rapidjson::Value& json, pb::Struct& out, const Path* path,
                        int depth) {
    auto& fields = *out.mutable_fields();
    for (const auto& member : json.GetObject()) {
      const std::string_view key = text_of(member.name);
      const Path at{path, Path::Kind::key, key};
      pb::Value& value = fields[std::string(key)];
      value.Clear();
      generated_value(member.value, value, &at, depth);
    }
  }

  void timestamp(const rapidjson::Value& json, pb::Message& message, const Path* path) {
    if (!json.IsString()) wrong_kind(path, "an RFC 3339 timestamp string", json);
    std::int64_t seconds;
    std::int32_t nanos;
    const std::string text(text_of(json));
    if (!parse_timestamp(text, seconds, nanos))
      fail(path, "\"" + text + "\" is not an RFC 3339 time");
    set_seconds_and_nanos(message, seconds, nanos);
  }

  void duration(const rapidjson::Value& json, pb::Message& message, const Path* path) {
    if (!json.IsString()) wrong_kind(path, "a duration string such as \"1.5s\"", json);
    const std::string text(text_of(json));
    auto bad = [&]() -> void { fail(path, "\"" + text + "\" is not a duration such as \"1.5s\""); };
    std::string_view rest = text;
    if (!rest.ends_with('s')) bad();
    rest.remove_suffix(1);
    int sign = 1;
    if (rest.starts_with('-')) {
      sign = -1;
      rest.remove_prefix(1);
    }
    const std::size_t dot = rest.find('.');
    const std::string_view whole = rest.substr(0, dot);
    std::uint64_t seconds;
    if (!parse_integer_text(whole, seconds) || whole.starts_with('+')) {
      // protobuf reads the seconds as it reads uint64 text.
      if (!(whole.starts_with('+') && parse_integer_text(whole, seconds))) bad();
    }
    std::int32_t nanos = 0;
    if (dot != std::string_view::npos) {
      const std::string_view fraction = rest.substr(dot + 1);
      if (fraction.size() > 9) fail(path, "\"" + text + "\" is out of range for a duration");
      std::int32_t digits = 0;
      if (!fraction.empty() && !parse_integer_text(fraction, digits)) bad();
      if (!fraction.empty() && (fraction.front() == '+' || fraction.front() == '-')) bad();
      nanos = digits;
      for (std::size_t i = fraction.size(); i < 9; ++i) nanos *= 10;
    }
    if (seconds > static_cast<std::uint64_t>(kDurationMaxSeconds))
      fail(path, "\"" + text + "\" is out of range for a duration");
    set_seconds_and_nanos(message, sign * static_cast<std::int64_t>(seconds), sign * nanos);
  }

  static void set_seconds_and_nanos(pb::Message& message, std::int64_t seconds,
                                    std::int32_t nanos) {
    const pb::Descriptor& type = *message.GetDescriptor();
    const pb::Reflection& reflection = *message.GetReflection();
    reflection.SetInt64(&message, type.FindFieldByNumber(1), seconds);
    reflection.SetInt32(&message, type.FindFieldByNumber(2), nanos);
  }

  void field_mask(const rapidjson::Value& json, pb::Message& message, const Path* path) {
    if (!json.IsString()) wrong_kind(path, "a field mask string such as \"a,b.c\"", json);
    const Field& paths = *message.GetDescriptor()->FindFieldByNumber(1);
    std::string_view text = text_of(json);
    if (text.empty()) return;
    while (true) {
      const std::size_t comma = text.find(',');
      message.GetReflection()->AddString(&message, &paths, to_snake_case(text.substr(0, comma)));
      if (comma == std::string_view::npos) break;
      text.remove_prefix(comma + 1);
    }
  }

  void wrapper(const rapidjson::Value& json, pb::Message& message, const Path* path, int depth) {
    const Field& value = *message.GetDescriptor()->FindFieldByNumber(1);
    store(json, message, value, path, depth);
  }

  void any(const rapidjson::Value& json, pb::Message& message, const Path* path, int depth) {
    if (!json.IsObject()) wrong_kind(path, "an object", json);
    if (json.ObjectEmpty()) return;
    const auto type_member = json.FindMember("@type");
    if (type_member == json.MemberEnd()) fail(path, "an Any needs an \"@type\"");
    const Path at_type{path, Path::Kind::label, ".@type"};
    if (!type_member->value.IsString())
      wrong_kind(&at_type, "a type URL string", type_member->value);
    const std::string url(text_of(type_member->value));
    const pb::Descriptor* type = resolve_type_url(url, *message.GetDescriptor()->file()->pool());
    if (type == nullptr) fail(&at_type, "\"" + url + "\" names no type this server knows");

    pb::DynamicMessageFactory factory;
    std::unique_ptr<pb::Message> contents(make_message(*type, factory));
    const WellKnown kind = well_known(*type);
    if (kind != WellKnown::none || type->full_name() == "google.protobuf.Struct") {
      // A well-known type: its own JSON is under "value".
      for (const auto& member : json.GetObject()) {
        const std::string_view name = text_of(member.name);
        if (name != "@type" && name != "value") {
          fail(path, "an Any of a well-known type holds only \"@type\" and \"value\"");
        }
      }
      const auto value_member = json.FindMember("value");
      if (value_member != json.MemberEnd() && !value_member->value.IsNull()) {
        const Path at_value{path, Path::Kind::label, ".value"};
        this->message(value_member->value, *contents, &at_value, depth + 1);
      }
    } else {
      fields(json, *contents, path, depth + 1, "@type");
    }
    const pb::Descriptor& any_type = *message.GetDescriptor();
    const pb::Reflection& reflection = *message.GetReflection();
    reflection.SetString(&message, any_type.FindFieldByNumber(1), url);
    reflection.SetString(&message, any_type.FindFieldByNumber(2), contents->SerializeAsString());
  }

  static pb::Message* make_message(const pb::Descriptor& type, pb::DynamicMessageFactory& factory) {
    if (type.file()->pool() == pb::DescriptorPool::generated_pool()) {
      if (const pb::Message* generated =
              pb::MessageFactory::generated_factory()->GetPrototype(&type))
        return generated->New();
    }
    return factory.GetPrototype(&type)->New();
  }
};

// ---- message -> JSON ----

class Writer {
 public:
  explicit Writer(JsonWriter& out) : out_(out) {}

  // Writes `message` whole; `path` names it in errors.
  void message(const pb::Message& message, const Path* path, int depth) {
    if (depth > kMaxMappingDepth) {
      fail(path, "nests deeper than " + std::to_string(kMaxMappingDepth) + " levels");
    }
    switch (well_known(*message.GetDescriptor())) {
      case WellKnown::value:
        return value(message, path, depth);
      case WellKnown::list_value:
        return list_value(message, path, depth);
      case WellKnown::struct_value:
        return struct_value(message, path, depth);
      case WellKnown::timestamp:
        return timestamp(message, path);
      case WellKnown::duration:
        return duration(message, path);
      case WellKnown::field_mask:
        return field_mask(message, path);
      case WellKnown::wrapper:
        return wrapper(message, path);
      case WellKnown::any:
        return any(message, path, depth);
      case WellKnown::none:
        break;
    }
    out_.start_object();
    members(message, path, depth);
    out_.end_object();
  }

  // Whether `message` is a Value without a kind, which protobuf leaves out
  // wherever it stands.
  static bool is_empty_value(const pb::Message& message) {
    if (well_known(*message.GetDescriptor()) != WellKnown::value) return false;
    if (auto* generated = as_generated<pb::Value>(message))
      return generated->kind_case() == pb::Value::KIND_NOT_SET;
    const pb::OneofDescriptor* kind = message.GetDescriptor()->FindOneofByName("kind");
    return kind != nullptr && !message.GetReflection()->HasOneof(message, kind);
  }

 private:
  // The fields of `message` that are set, as members of an open object.
  void members(const pb::Message& message, const Path* path, int depth) {
    const pb::Reflection& reflection = *message.GetReflection();
    std::vector<const Field*> fields;
    reflection.ListFields(message, &fields);
    for (const Field* field : fields) {
      if (field->is_extension()) continue;
      const Path here{path, Path::Kind::field, {}, field};
      if (field->is_map()) {
        key(field->json_name(), &here);
        map(message, *field, &here, depth);
      } else if (field->is_repeated()) {
        key(field->json_name(), &here);
        out_.start_array();
        const int size = reflection.FieldSize(message, field);
        for (int i = 0; i < size; ++i) {
          const Path at{&here, Path::Kind::index, {}, nullptr, static_cast<std::size_t>(i)};
          if (field->cpp_type() == Field::CPPTYPE_MESSAGE &&
              is_empty_value(reflection.GetRepeatedMessage(message, field, i)))
            continue;
          element(message, *field, i, &at, depth);
        }
        out_.end_array();
      } else {
        if (field->cpp_type() == Field::CPPTYPE_MESSAGE &&
            is_empty_value(reflection.GetMessage(message, field)))
          continue;
        key(field->json_name(), &here);
        element(message, *field, -1, &here, depth);
      }
    }
  }

  void map(const pb::Message& message, const Field& field, const Path* path, int depth) {
    const pb::Reflection& reflection = *message.GetReflection();
    const Field& key_field = *field.message_type()->map_key();
    const Field& value_field = *field.message_type()->map_value();
    out_.start_object();
    const int size = reflection.FieldSize(message, &field);
    for (int i = 0; i < size; ++i) {
      const pb::Message& entry = reflection.GetRepeatedMessage(message, &field, i);
      const std::string name = key_text(entry, key_field);
      const Path at{path, Path::Kind::key, name};
      if (value_field.cpp_type() == Field::CPPTYPE_MESSAGE &&
          is_empty_value(entry.GetReflection()->GetMessage(entry, &value_field)))
        continue;
      key(name, &at);
      element(entry, value_field, -1, &at, depth);
    }
    out_.end_object();
  }

  void key(std::string_view name, const Path* path) {
    if (!out_.key(name)) fail(path, "the map key is not valid UTF-8");
  }

  // A singular field's value (index < 0) or element `index` of a repeated
  // one.
  void element(const pb::Message& message, const Field& field, int index, const Path* path,
               int depth) {
    const pb::Reflection& r = *message.GetReflection();
    const bool one = index < 0;
    switch (field.cpp_type()) {
      case Field::CPPTYPE_INT32:
        out_.number(static_cast<std::int64_t>(one ? r.GetInt32(message, &field)
                                                  : r.GetRepeatedInt32(message, &field, index)));
        return;
      case Field::CPPTYPE_UINT32:
        out_.number(static_cast<std::uint64_t>(one ? r.GetUInt32(message, &field)
                                                   : r.GetRepeatedUInt32(message, &field, index)));
        return;
      case Field::CPPTYPE_INT64:
        quoted_number(std::to_string(one ? r.GetInt64(message, &field)
                                         : r.GetRepeatedInt64(message, &field, index)));
        return;
      case Field::CPPTYPE_UINT64:
        quoted_number(std::to_string(one ? r.GetUInt64(message, &field)
                                         : r.GetRepeatedUInt64(message, &field, index)));
        return;
      case Field::CPPTYPE_DOUBLE:
        return real(one ? r.GetDouble(message, &field)
                        : r.GetRepeatedDouble(message, &field, index));
      case Field::CPPTYPE_FLOAT:
        return real(one ? r.GetFloat(message, &field) : r.GetRepeatedFloat(message, &field, index));
      case Field::CPPTYPE_BOOL:
        out_.boolean(one ? r.GetBool(message, &field) : r.GetRepeatedBool(message, &field, index));
        return;
      case Field::CPPTYPE_ENUM: {
        const int number =
            one ? r.GetEnumValue(message, &field) : r.GetRepeatedEnumValue(message, &field, index);
        if (is_null_value_enum(field)) {
          out_.null();
        } else if (const pb::EnumValueDescriptor* named =
                       field.enum_type()->FindValueByNumber(number)) {
          out_.string(named->name());
        } else {
          out_.number(static_cast<std::int64_t>(number));
        }
        return;
      }
      case Field::CPPTYPE_STRING: {
        std::string scratch;
        const std::string& text =
            one ? r.GetStringReference(message, &field, &scratch)
                : r.GetRepeatedStringReference(message, &field, index, &scratch);
        if (field.type() == Field::TYPE_BYTES) {
          out_.string(base64_encode(text));
        } else if (!out_.string(text)) {
          fail(path, "the string is not valid UTF-8");
        }
        return;
      }
      case Field::CPPTYPE_MESSAGE:
        this->message(
            one ? r.GetMessage(message, &field) : r.GetRepeatedMessage(message, &field, index),
            path, depth + 1);
        return;
    }
  }

  void quoted_number(const std::string& digits) { out_.string(digits); }

  void real(double value) {
    if (std::isnan(value)) {
      out_.string("NaN");
    } else if (std::isinf(value)) {
      out_.string(value > 0 ? "Infinity" : "-Infinity");
    } else {
      out_.raw(format_double(value));
    }
  }

  void real(float value) {
    if (std::isnan(value) || std::isinf(value)) return real(static_cast<double>(value));
    out_.raw(format_float(value));
  }

  void value(const pb::Message& message, const Path* path, int depth) {
    if (auto* generated = as_generated<pb::Value>(message))
      return generated_value(*generated, path, depth);
    const pb::Descriptor& type = *message.GetDescriptor();
    const pb::Reflection& reflection = *message.GetReflection();
    const pb::OneofDescriptor* kind = type.FindOneofByName("kind");
    const Field* set =
        kind == nullptr ? nullptr : reflection.GetOneofFieldDescriptor(message, kind);
    if (set == nullptr) return out_.null();
    switch (set->number()) {
      case 1:
        return out_.null();
      case 2:
        return real(reflection.GetDouble(message, set));
      case 3: {
        std::string scratch;
        if (!out_.string(reflection.GetStringReference(message, set, &scratch)))
          fail(path, "the string is not valid UTF-8");
        return;
      }
      case 4:
        return out_.boolean(reflection.GetBool(message, set));
      case 5:
        return struct_value(reflection.GetMessage(message, set), path, depth + 1);
      case 6:
        return list_value(reflection.GetMessage(message, set), path, depth + 1);
      default:
        return out_.null();
    }
  }

  void list_value(const pb::Message& message, const Path* path, int depth) {
    if (depth > kMaxMappingDepth) {
      fail(path, "nests deeper than " + std::to_string(kMaxMappingDepth) + " levels");
    }
    if (auto* generated = as_generated<pb::ListValue>(message))
      return generated_list(*generated, path, depth);
    const pb::Reflection& reflection = *message.GetReflection();
    const Field& values = *message.GetDescriptor()->FindFieldByNumber(1);
    out_.start_array();
    const int size = reflection.FieldSize(message, &values);
    for (int i = 0; i < size; ++i) {
      const pb::Message& element = reflection.GetRepeatedMessage(message, &values, i);
      if (is_empty_value(element)) continue;
      const Path at{path, Path::Kind::index, {}, nullptr, static_cast<std::size_t>(i)};
      value(element, &at, depth);
    }
    out_.end_array();
  }

  void struct_value(const pb::Message& message, const Path* path, int depth) {
    if (depth > kMaxMappingDepth) {
      fail(path, "nests deeper than " + std::to_string(kMaxMappingDepth) + " levels");
    }
    if (auto* generated = as_generated<pb::Struct>(message))
      return generated_struct(*generated, path, depth);
    map(message, *message.GetDescriptor()->FindFieldByNumber(1), path, depth);
  }

  void generated_value(const pb::Value& value, const Path* path, int depth) {
    switch (value.kind_case()) {
      case pb::Value::kNullValue:
      case pb::Value::KIND_NOT_SET:
        return out_.null();
      case pb::Value::kBoolValue:
        return out_.boolean(value.bool_value());
      case pb::Value::kNumberValue:
        return real(value.number_value());
      case pb::Value::kStringValue:
        if (!out_.string(value.string_value())) fail(path, "the string is not valid UTF-8");
        return;
      case pb::Value::kListValue:
        return generated_list(value.list_value(), path, depth + 1);
      case pb::Value::kStructValue:
        return generated_struct(value.struct_value(), path, depth + 1);
    }
  }

  void generated_list(const pb::ListValue& list, const Path* path, int depth) {
    if (depth > kMaxMappingDepth) {
      fail(path, "nests deeper than " + std::to_string(kMaxMappingDepth) + " levels");
    }
    out_.start_array();
    std::size_t index = 0;
    for (const pb::Value& element : list.values()) {
      const Path at{path, Path::Kind::index, {}, nullptr, index++};
      if (element.kind_case() == pb::Value::KIND_NOT_SET) continue;
      generated_value(element, &at, depth);
    }
    out_.end_array();
  }

  void generated_struct(const pb::Struct& object, const Path* path, int depth) {
    if (depth > kMaxMappingDepth) {
      fail(path, "nests deeper than " + std::to_string(kMaxMappingDepth) + " levels");
    }
    // Sorted by name, so that the same Struct always reads the same.
    std::vector<const pb::MapPair<std::string, pb::Value>*> members;
    members.reserve(object.fields().size());
    for (const auto& member : object.fields()) members.push_back(&member);
    std::sort(members.begin(), members.end(),
              [](const auto* a, const auto* b) { return a->first < b->first; });
    out_.start_object();
    for (const auto* member : members) {
      const Path at{path, Path::Kind::key, member->first};
      if (member->second.kind_case() == pb::Value::KIND_NOT_SET) continue;
      key(member->first, &at);
      generated_value(member->second, &at, depth);
    }
    out_.end_object();
  }

  static std::pair<std::int64_t, std::int32_t> seconds_and_nanos(const pb::Message& message) {
    const pb::Descriptor& type = *message.GetDescriptor();
    const pb::Reflection& reflection = *message.GetReflection();
    return {reflection.GetInt64(message, type.FindFieldByNumber(1)),
            reflection.GetInt32(message, type.FindFieldByNumber(2))};
  }

  void timestamp(const pb::Message& message, const Path* path) {
    const auto [seconds, nanos] = seconds_and_nanos(message);
    if (seconds < kTimestampMinSeconds || seconds > kTimestampMaxSeconds)
      fail(path, "the Timestamp's seconds are out of range");
    if (nanos < 0 || nanos >= kNanosPerSecond) fail(path, "the Timestamp's nanos are out of range");
    const std::int64_t days = (seconds >= 0 ? seconds : seconds - 86399) / 86400;
    const std::int64_t in_day = seconds - days * 86400;
    const Civil date = civil_from_days(days);
    char text[40];
    std::snprintf(text, sizeof text, "%04lld-%02u-%02uT%02lld:%02lld:%02lld",
                  static_cast<long long>(date.year), date.month, date.day,
                  static_cast<long long>(in_day / 3600), static_cast<long long>(in_day / 60 % 60),
                  static_cast<long long>(in_day % 60));
    out_.string(std::string(text) + format_nanos(nanos) + "Z");
  }

  void duration(const pb::Message& message, const Path* path) {
    auto [seconds, nanos] = seconds_and_nanos(message);
    if (seconds < -kDurationMaxSeconds || seconds > kDurationMaxSeconds)
      fail(path, "the Duration's seconds are out of range");
    if (nanos <= -kNanosPerSecond || nanos >= kNanosPerSecond)
      fail(path, "the Duration's nanos are out of range");
    std::string sign;
    if (seconds < 0) {
      if (nanos > 0) fail(path, "the Duration's seconds and nanos have different signs");
      sign = "-";
      seconds = -seconds;
      nanos = -nanos;
    } else if (seconds == 0 && nanos < 0) {
      sign = "-";
      nanos = -nanos;
    }
    if (nanos < 0) fail(path, "the Duration's seconds and nanos have different signs");
    out_.string(sign + std::to_string(seconds) + format_nanos(nanos) + "s");
  }

  void field_mask(const pb::Message& message, const Path* path) {
    const pb::Reflection& reflection = *message.GetReflection();
    const Field& paths = *message.GetDescriptor()->FindFieldByNumber(1);
    std::string joined;
    for (int i = 0; i < reflection.FieldSize(message, &paths); ++i) {
      if (i > 0) joined += ',';
      joined += to_camel_case(reflection.GetRepeatedString(message, &paths, i));
    }
    if (!out_.string(joined)) fail(path, "a path is not valid UTF-8");
  }

  void wrapper(const pb::Message& message, const Path* path) {
    element(message, *message.GetDescriptor()->FindFieldByNumber(1), -1, path, 0);
  }

  void any(const pb::Message& message, const Path* path, int depth) {
    const pb::Descriptor& any_type = *message.GetDescriptor();
    const pb::Reflection& reflection = *message.GetReflection();
    const std::string url = reflection.GetString(message, any_type.FindFieldByNumber(1));
    const std::string bytes = reflection.GetString(message, any_type.FindFieldByNumber(2));
    out_.start_object();
    if (bytes.empty()) {
      if (!url.empty()) {
        key("@type", path);
        if (!out_.string(url)) fail(path, "the type URL is not valid UTF-8");
      }
      out_.end_object();
      return;
    }
    if (url.empty()) fail(path, "the google.protobuf.Any has a value but no type URL");
    const pb::Descriptor* type = resolve_type_url(url, *any_type.file()->pool());
    if (type == nullptr) {
      fail(path, "the google.protobuf.Any holds \"" + url + "\", a type this pool does not know");
    }
    pb::DynamicMessageFactory factory;
    std::unique_ptr<pb::Message> contents;
    if (type->file()->pool() == pb::DescriptorPool::generated_pool()) {
      if (const pb::Message* generated =
              pb::MessageFactory::generated_factory()->GetPrototype(type))
        contents.reset(generated->New());
    }
    if (!contents) contents.reset(factory.GetPrototype(type)->New());
    if (!contents->ParseFromString(bytes)) {
      fail(path, "the google.protobuf.Any's value is not a valid " + type->full_name());
    }
    key("@type", path);
    out_.string(url);
    if (well_known(*type) != WellKnown::none) {
      if (!is_empty_value(*contents)) {
        key("value", path);
        this->message(*contents, path, depth + 1);
      }
    } else {
      members(*contents, path, depth + 1);
    }
    out_.end_object();
  }

  JsonWriter& out_;
};

// ---- params ----

enum class Whole { no, value, list_value, struct_value };

Whole takes_whole(const pb::Descriptor& type) {
  switch (well_known(type)) {
    case WellKnown::value:
      return Whole::value;
    case WellKnown::list_value:
      return Whole::list_value;
    case WellKnown::struct_value:
      return Whole::struct_value;
    default:
      return Whole::no;
  }
}

}  // namespace

Status json_to_message(const rapidjson::Value& json, pb::Message& message, std::string_view path) {
  message.Clear();
  const Path top{nullptr, Path::Kind::label, path};
  try {
    Reader().message(json, message, path.empty() ? nullptr : &top, 0);
  } catch (const MappingFailure& failure) {
    return {StatusCode::invalid_argument, failure.message};
  }
  return {};
}

Status params_to_message(const rapidjson::Value* params, pb::Message& request) {
  request.Clear();
  const pb::Descriptor& type = *request.GetDescriptor();
  const Whole whole = takes_whole(type);
  const auto invalid = [](std::string message) {
    return Status(StatusCode::invalid_argument, std::move(message));
  };
  if (params == nullptr) {
    // No params: a Value is null; every other message keeps its defaults.
    if (whole == Whole::value) return json_to_message(rapidjson::Value(), request);
    return {};
  }
  switch (whole) {
    case Whole::value:
      return json_to_message(*params, request);
    case Whole::list_value:
      if (!params->IsArray()) {
        return invalid(type.name() + " takes an array of params, not " +
                       std::string(json_kind(*params)));
      }
      return json_to_message(*params, request);
    case Whole::struct_value:
      if (!params->IsObject()) {
        return invalid(type.name() + " takes an object of named params, not " +
                       std::string(json_kind(*params)));
      }
      return json_to_message(*params, request);
    case Whole::no:
      break;
  }
  if (params->IsObject()) return json_to_message(*params, request);
  if (!params->IsArray()) {
    return invalid("params must be an array or an object, not " + std::string(json_kind(*params)));
  }
  // Positional: element i fills field i in declaration order, as if it had
  // been named.
  const auto count = static_cast<std::size_t>(params->Size());
  const auto fields = static_cast<std::size_t>(type.field_count());
  if (count > fields) {
    return invalid(std::to_string(count) + (count == 1 ? " param" : " params") + " given, " +
                   type.name() + " takes " + std::to_string(fields));
  }
  try {
    Reader().positional(*params, request);
  } catch (const MappingFailure& failure) {
    return invalid(failure.message);
  }
  return {};
}

Status write_message(const pb::Message& message, JsonWriter& writer) {
  try {
    if (Writer::is_empty_value(message)) {
      writer.null();
    } else {
      Writer(writer).message(message, nullptr, 0);
    }
  } catch (const MappingFailure& failure) {
    return {StatusCode::internal, message.GetDescriptor()->full_name() + ": " + failure.message};
  }
  return {};
}

std::string message_to_json(const pb::Message& message) {
  std::string text;
  text.reserve(message.ByteSizeLong() + 64);
  JsonWriter writer(text);
  if (Status status = write_message(message, writer); !status.ok()) throw Error(status.message());
  return text;
}

Status json_text_to_message(std::string_view text, pb::Message& message) {
  JsonDocument document(text, kMaxMappingDepth);
  switch (document.failure()) {
    case JsonDocument::Failure::none:
      return json_to_message(document.root(), message);
    case JsonDocument::Failure::too_deep:
      return {StatusCode::invalid_argument,
              "the JSON nests deeper than " + std::to_string(kMaxMappingDepth) + " levels"};
    default:
      return {StatusCode::invalid_argument, "not valid JSON: " + document.error()};
  }
}

}  // namespace conduit::rpc::jsonrpc
