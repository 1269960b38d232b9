// The proto3 JSON mapping against protobuf's own (google::protobuf::util,
// default options), the reference: a corpus of messages printed by both
// must give the same JSON, and a corpus of JSON texts read by both must
// give the same messages or be refused by both.
#include "rpc/protocols/jsonrpc/proto_json.hpp"

#include <google/protobuf/any.pb.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/field_comparator.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "conduit/error.hpp"
#include "conduit/interop/jsonrpc_examples.pb.h"
#include "proto_json_test.pb.h"
#include "rpc/protocols/jsonrpc/json_document.hpp"

namespace conduit::rpc::jsonrpc {
namespace {

namespace pb = google::protobuf;
using test::Everything;

std::string conduit_json(const pb::Message& message) {
  std::string text;
  JsonWriter writer(text);
  const Status status = write_message(message, writer);
  return status.ok() ? text : "failed: " + status.message();
}

std::string protobuf_json(const pb::Message& message) {
  std::string text;
  const auto status = pb::util::MessageToJsonString(message, &text);
  return status.ok() ? text : "failed: " + std::string(status.message());
}

// Equal as JSON values: object members in any order (protobuf prints map
// entries in no particular order), numbers by value (1e+30 is 1e30).
testing::AssertionResult same_json(const std::string& actual, const std::string& expected) {
  rapidjson::Document got;
  rapidjson::Document want;
  got.Parse<rapidjson::kParseFullPrecisionFlag>(actual.data(), actual.size());
  want.Parse<rapidjson::kParseFullPrecisionFlag>(expected.data(), expected.size());
  if (got.HasParseError()) return testing::AssertionFailure() << "not JSON: " << actual;
  if (want.HasParseError()) return testing::AssertionFailure() << "not JSON: " << expected;
  if (got != want)
    return testing::AssertionFailure()
           << "\n  conduit:  " << actual << "\n  protobuf: " << expected;
  return testing::AssertionSuccess();
}

testing::AssertionResult same_message(const pb::Message& actual, const pb::Message& expected) {
  pb::util::DefaultFieldComparator comparator;
  comparator.set_treat_nan_as_equal(true);
  pb::util::MessageDifferencer differencer;
  differencer.set_field_comparator(&comparator);
  std::string differences;
  differencer.ReportDifferencesToString(&differences);
  if (differencer.Compare(actual, expected)) return testing::AssertionSuccess();
  return testing::AssertionFailure() << differences;
}

// ---- the corpus of messages ----

std::vector<Everything> message_corpus() {
  std::vector<Everything> corpus;
  corpus.emplace_back();  // every field at its default

  {  // the extremes of every scalar type
    Everything m;
    auto& s = *m.mutable_scalars();
    s.set_i32(std::numeric_limits<std::int32_t>::min());
    s.set_s32(std::numeric_limits<std::int32_t>::max());
    s.set_sf32(-1);
    s.set_u32(std::numeric_limits<std::uint32_t>::max());
    s.set_f32(1);
    s.set_i64(std::numeric_limits<std::int64_t>::min());
    s.set_s64(std::numeric_limits<std::int64_t>::max());
    s.set_sf64(-9007199254740993);
    s.set_u64(std::numeric_limits<std::uint64_t>::max());
    s.set_f64(9007199254740993u);
    s.set_flt(std::numeric_limits<float>::max());
    s.set_dbl(std::numeric_limits<double>::denorm_min());
    s.set_flag(true);
    s.set_text("plain");
    s.set_data(std::string("\x00\xff\x10 binary", 10));
    s.set_color(test::INFRARED);
    s.mutable_nested()->set_a(-7);
    corpus.push_back(m);
  }
  {  // floating point: signs, NaN, infinities, denormals, precision
    for (double d :
         {-0.0, std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(),
          -std::numeric_limits<double>::infinity(), 0.1, 1e+30, 1e-300, 123456789.125,
          std::numeric_limits<double>::max(), std::numeric_limits<double>::min(),
          std::numeric_limits<double>::denorm_min(), 0.30000000000000004, 2.5e-8}) {
      Everything m;
      m.mutable_scalars()->set_dbl(d);
      m.mutable_scalars()->set_flt(static_cast<float>(d));
      m.mutable_repeated()->add_dbl(d);
      m.mutable_repeated()->add_flt(static_cast<float>(d));
      m.mutable_well_known()->mutable_double_value()->set_value(d);
      m.mutable_well_known()->mutable_float_value()->set_value(static_cast<float>(d));
      m.mutable_well_known()->mutable_value()->set_number_value(d);
      corpus.push_back(m);
    }
    Everything m;
    m.mutable_scalars()->set_flt(std::numeric_limits<float>::denorm_min());
    m.mutable_repeated()->add_flt(3.14159274f);
    m.mutable_repeated()->add_flt(1e-45f);
    m.mutable_repeated()->add_flt(-0.0f);
    corpus.push_back(m);
  }
  {  // strings: empty, escapes, control characters, unicode, astral plane
    Everything m;
    auto& r = *m.mutable_repeated();
    for (const char* text : {"", "quote \" backslash \\ slash /", "\b\f\n\r\t\x01\x1f\x7f",
                             "caf\xc3\xa9 \xe2\x82\xac \xe4\xb8\xad\xe6\x96\x87",
                             "astral \xf0\x9f\x98\x80 \xf0\x9d\x84\x9e", "<script>&'",
                             "\xe2\x80\xa8\xe2\x80\xa9 \xef\xbb\xbf"}) {
      r.add_text(text);
    }
    r.add_text(std::string("nul \0 inside", 12));
    m.mutable_scalars()->set_text("\xf4\x8f\xbf\xbf");
    corpus.push_back(m);
  }
  {  // bytes of every length modulo 3
    Everything m;
    for (std::string bytes : {"", "a", "ab", "abc", "abcd", "\xfb\xff\xfe", "\xfb\xef"})
      m.mutable_repeated()->add_data(bytes);
    corpus.push_back(m);
  }
  {  // repeated fields of every type
    Everything m;
    auto& r = *m.mutable_repeated();
    for (int i = -2; i <= 2; ++i) {
      r.add_i32(i * 1000000);
      r.add_s32(i);
      r.add_sf32(i);
      r.add_u32(static_cast<std::uint32_t>(i + 2));
      r.add_f32(static_cast<std::uint32_t>(i + 2) * 7u);
      r.add_i64(std::int64_t{i} << 40);
      r.add_s64(i);
      r.add_sf64(i);
      r.add_u64(static_cast<std::uint64_t>(i + 2) << 60);
      r.add_f64(static_cast<std::uint64_t>(i + 2));
      r.add_flag(i % 2 == 0);
      r.add_color(static_cast<test::Color>(i + 2));
      r.add_nested()->set_b(std::to_string(i));
    }
    r.add_color(static_cast<test::Color>(42));  // no name: printed as a number
    r.add_nested();                             // an empty message
    corpus.push_back(m);
  }
  {  // maps with every kind of key
    Everything m;
    auto& maps = *m.mutable_maps();
    (*maps.mutable_by_string())[""] = 0;
    (*maps.mutable_by_string())["one"] = 1;
    (*maps.mutable_by_string())["\xf0\x9f\x98\x80 \"quoted\""] = -1;
    (*maps.mutable_by_int32())[std::numeric_limits<std::int32_t>::min()] = "min";
    (*maps.mutable_by_int32())[0] = "";
    (*maps.mutable_by_int64())[std::numeric_limits<std::int64_t>::max()] = "max";
    (*maps.mutable_by_uint32())[std::numeric_limits<std::uint32_t>::max()] = "u";
    (*maps.mutable_by_uint64())[std::numeric_limits<std::uint64_t>::max()] = "u64";
    (*maps.mutable_by_sint32())[-5] = "s";
    (*maps.mutable_by_fixed64())[5] = "f";
    (*maps.mutable_by_bool())[true].set_a(1);
    (*maps.mutable_by_bool())[false];
    (*maps.mutable_colors())["red"] = test::RED;
    (*maps.mutable_colors())["unnamed"] = static_cast<test::Color>(99);
    (*maps.mutable_colors())["default"] = test::COLOR_UNSPECIFIED;
    (*maps.mutable_blobs())["b"] = "\x01\x02";
    (*maps.mutable_values())["n"].set_null_value(pb::NULL_VALUE);
    (*maps.mutable_values())["s"].set_string_value("x");
    (*maps.mutable_values())["l"].mutable_list_value()->add_values()->set_bool_value(false);
    (*maps.mutable_times())["epoch"];
    (*maps.mutable_times())["later"].set_seconds(1700000000);
    (*maps.mutable_reals())["nan"] = std::numeric_limits<double>::quiet_NaN();
    (*maps.mutable_reals())["inf"] = -std::numeric_limits<double>::infinity();
    corpus.push_back(m);
  }
  {  // each member of the oneof, and optional fields at their defaults
    for (int kind = 0; kind < 6; ++kind) {
      Everything m;
      auto& c = *m.mutable_choice();
      switch (kind) {
        case 0:
          c.set_number(0);
          break;
        case 1:
          c.set_word("");
          break;
        case 2:
          c.mutable_nested();
          break;
        case 3:
          c.mutable_value()->set_null_value(pb::NULL_VALUE);
          break;
        case 4:
          c.set_color(test::COLOR_UNSPECIFIED);
          break;
        case 5:
          c.set_number(-12);
          c.set_plain(3);
          c.set_snake_case_name("snake");
          c.set_renamed(4);
          break;
      }
      if (kind % 2 == 0) {
        c.set_maybe_number(0);
        c.set_maybe_word("");
        c.set_maybe_color(test::COLOR_UNSPECIFIED);
        c.mutable_maybe_nested();
      } else {
        c.set_maybe_number(-1);
        c.set_maybe_word("w");
        c.set_maybe_color(test::GREEN);
      }
      corpus.push_back(m);
    }
  }
  {  // recursion
    Everything m;
    test::Recursive* at = m.mutable_recursive();
    for (int depth = 0; depth < 20; ++depth) {
      at->set_value(depth);
      at->add_children()->set_value(-depth);
      at = at->mutable_child();
    }
    corpus.push_back(m);
  }
  {  // times and durations: each precision, the limits, negative durations
    struct Time {
      std::int64_t seconds;
      std::int32_t nanos;
    };
    for (const Time t : std::vector<Time>{{0, 0},
                                          {1, 500000000},
                                          {-1, 999000},
                                          {1700000000, 123456789},
                                          {-62135596800, 0},
                                          {253402300799, 999999999},
                                          {951782400, 1000},  // a leap day
                                          {-2208988800, 10}}) {
      Everything m;
      auto& w = *m.mutable_well_known();
      w.mutable_time()->set_seconds(t.seconds);
      w.mutable_time()->set_nanos(t.nanos);
      w.add_times()->set_seconds(t.seconds / 2);
      const std::int64_t duration_seconds = t.seconds % 315576000000;
      w.mutable_duration()->set_seconds(duration_seconds);
      w.mutable_duration()->set_nanos(duration_seconds < 0 ? -t.nanos : t.nanos);
      w.add_durations()->set_nanos(-t.nanos);
      corpus.push_back(m);
    }
  }
  {  // the other well-known types
    Everything m;
    auto& w = *m.mutable_well_known();
    w.mutable_mask()->add_paths("foo_bar");
    w.mutable_mask()->add_paths("a.b_c.d");
    w.mutable_mask()->add_paths("x");
    auto& fields = *w.mutable_object()->mutable_fields();
    fields["number"].set_number_value(-1.5);
    fields["integer"].set_number_value(1e15);
    fields["nested"].mutable_struct_value();
    fields["list"].mutable_list_value()->add_values()->set_string_value("\xf0\x9f\x98\x80");
    fields["null"].set_null_value(pb::NULL_VALUE);
    fields["bool"].set_bool_value(true);
    w.mutable_value()->mutable_list_value();
    w.mutable_list()->add_values()->mutable_struct_value();
    w.mutable_list()->add_values()->set_number_value(0);
    w.set_null_value(pb::NULL_VALUE);
    w.mutable_empty();
    w.mutable_int32_value()->set_value(std::numeric_limits<std::int32_t>::min());
    w.mutable_int64_value()->set_value(std::numeric_limits<std::int64_t>::min());
    w.mutable_uint32_value()->set_value(std::numeric_limits<std::uint32_t>::max());
    w.mutable_uint64_value()->set_value(std::numeric_limits<std::uint64_t>::max());
    w.mutable_bool_value()->set_value(false);
    w.mutable_string_value()->set_value("");
    w.mutable_bytes_value()->set_value("\xff");
    w.add_int32_values();
    w.add_int32_values()->set_value(5);
    w.add_values()->set_string_value("v");
    w.add_values()->set_bool_value(false);
    corpus.push_back(m);
  }
  {  // Any: of a message, of well-known types, of an Any, empty
    Everything m;
    auto& w = *m.mutable_well_known();
    test::Nested nested;
    nested.set_a(3);
    nested.set_b("b");
    w.mutable_any()->PackFrom(nested);
    pb::Timestamp time;
    time.set_seconds(86400);
    w.add_anys()->PackFrom(time);
    pb::Value value;
    value.mutable_list_value()->add_values()->set_number_value(1);
    w.add_anys()->PackFrom(value);
    pb::Any inner;
    inner.PackFrom(nested);
    w.add_anys()->PackFrom(inner);
    pb::Struct object;
    (*object.mutable_fields())["k"].set_string_value("v");
    w.add_anys()->PackFrom(object);
    pb::Int64Value big;
    big.set_value(-5);
    w.add_anys()->PackFrom(big);
    w.add_anys()->PackFrom(pb::Empty());
    w.add_anys();  // empty
    pb::Duration duration;
    duration.set_seconds(-3);
    w.add_anys()->PackFrom(duration);
    pb::FieldMask mask;
    mask.add_paths("a_b");
    w.add_anys()->PackFrom(mask);
    Everything everything;
    everything.mutable_scalars()->set_i64(1);
    w.add_anys()->PackFrom(everything);
    corpus.push_back(m);
  }
  return corpus;
}

class MessageCorpus : public testing::TestWithParam<std::size_t> {};

TEST_P(MessageCorpus, PrintsAsProtobufPrints) {
  const Everything message = message_corpus()[GetParam()];
  EXPECT_TRUE(same_json(conduit_json(message), protobuf_json(message)));
}

TEST_P(MessageCorpus, ReadsWhatProtobufPrintsAsProtobufReadsIt) {
  // Not always the message printed: -0 reads as 0, a Value's NaN as the
  // string "NaN".
  const Everything message = message_corpus()[GetParam()];
  const std::string text = protobuf_json(message);
  Everything by_protobuf;
  ASSERT_TRUE(pb::util::JsonStringToMessage(text, &by_protobuf).ok()) << text;
  Everything by_conduit;
  const Status status = json_text_to_message(text, by_conduit);
  ASSERT_TRUE(status.ok()) << status.to_string() << "\n" << text;
  EXPECT_TRUE(same_message(by_conduit, by_protobuf)) << text;
}

INSTANTIATE_TEST_SUITE_P(ProtoJson, MessageCorpus,
                         testing::Range<std::size_t>(0, message_corpus().size()));

// ---- the corpus of JSON texts ----

// Texts both must read alike: the same message, or a refusal.
const char* const kTextCorpus[] = {
    // integers from numbers and strings, at and beyond their limits
    R"({"scalars": {"i32": -2147483648, "s32": 2147483647, "u32": 4294967295}})",
    R"({"scalars": {"i32": 2147483648}})",
    R"({"scalars": {"i32": 3000000000}})",
    R"({"scalars": {"i32": -2147483649}})",
    R"({"scalars": {"u32": -1}})",
    R"({"scalars": {"u32": 4294967296}})",
    R"({"scalars": {"i32": "17", "u32": "+5", "sf32": "-0"}})",
    R"({"scalars": {"i32": " 17"}})",
    R"({"scalars": {"i32": "17 "}})",
    R"({"scalars": {"i32": "1e2"}})",
    R"({"scalars": {"i32": "0x10"}})",
    R"({"scalars": {"i32": ""}})",
    R"({"scalars": {"u32": "-0"}})",
    R"({"scalars": {"i32": 1.0, "s32": 1e2, "sf32": -0.0, "u32": 4.294967295e9}})",
    R"({"scalars": {"i32": 1.5}})",
    R"({"scalars": {"i32": 1e-7}})",
    R"({"scalars": {"i64": "-9223372036854775808", "s64": 9223372036854775807}})",
    R"({"scalars": {"i64": "9223372036854775808"}})",
    R"({"scalars": {"i64": 9223372036854775808}})",
    R"({"scalars": {"i64": 9.2233720368547758e18}})",
    R"({"scalars": {"i64": -9.2233720368547758e18}})",
    R"({"scalars": {"u64": "18446744073709551615", "f64": 18446744073709551615}})",
    R"({"scalars": {"u64": 18446744073709551616}})",
    R"({"scalars": {"u64": "-1"}})",
    R"({"scalars": {"sf64": 9007199254740993, "i64": 12345678901234567}})",
    R"({"scalars": {"i64": 1e18}})",
    R"({"scalars": {"i32": true}})",
    R"({"scalars": {"i32": [1]}})",
    R"({"scalars": {"i32": {}}})",
    // floats and doubles
    R"({"scalars": {"dbl": "NaN", "flt": "Infinity"}})",
    R"({"scalars": {"dbl": "-Infinity", "flt": "-Infinity"}})",
    R"({"scalars": {"dbl": "nan"}})",
    R"({"scalars": {"dbl": "inf"}})",
    R"({"scalars": {"dbl": "1.5", "flt": "2.5e3"}})",
    R"({"scalars": {"dbl": "1e400"}})",
    R"({"scalars": {"dbl": 1e-400, "flt": 1e-50}})",
    R"({"scalars": {"dbl": 4.9e-324, "flt": 1.4e-45}})",
    R"({"scalars": {"dbl": -0.0, "flt": -0.0}})",
    R"({"scalars": {"flt": 3.4028235e38}})",
    R"({"scalars": {"flt": 3.4028236e38}})",
    R"({"scalars": {"flt": 3.5e38}})",
    R"({"scalars": {"flt": -1e39}})",
    R"({"scalars": {"flt": "3.5e38"}})",
    R"({"scalars": {"dbl": 0.1, "flt": 0.1}})",
    R"({"scalars": {"dbl": 123456789012345678901234567890}})",
    R"({"scalars": {"dbl": true}})",
    R"({"scalars": {"dbl": "abc"}})",
    // booleans
    R"({"scalars": {"flag": true}})",
    R"({"scalars": {"flag": false}})",
    R"({"scalars": {"flag": "true"}})",
    R"({"scalars": {"flag": 1}})",
    R"({"scalars": {"flag": "maybe"}})",
    // strings and bytes
    R"({"scalars": {"text": "\u00e9\ud83d\ude00\u0000\"\\\/\b\f\n\r\t"}})",
    R"({"scalars": {"text": 5}})",
    R"({"scalars": {"data": "AP8Q"}})",
    R"({"scalars": {"data": "+/+/"}})",
    R"({"scalars": {"data": "-_-_"}})",
    R"({"scalars": {"data": "YWI="}})",
    R"({"scalars": {"data": "YWI"}})",
    R"({"scalars": {"data": "YQ=="}})",
    R"({"scalars": {"data": "YQ"}})",
    R"({"scalars": {"data": "YQ="}})",
    R"({"scalars": {"data": "Y"}})",
    R"({"scalars": {"data": "*&^%"}})",
    R"({"scalars": {"data": "+_"}})",
    R"({"scalars": {"data": ""}})",
    R"({"scalars": {"data": 12}})",
    // enums
    R"({"scalars": {"color": "RED"}})",
    R"({"scalars": {"color": "red"}})",
    R"({"scalars": {"color": "PURPLE"}})",
    R"({"scalars": {"color": 2}})",
    R"({"scalars": {"color": 77}})",
    R"({"scalars": {"color": -3}})",
    R"({"scalars": {"color": "1"}})",
    R"({"scalars": {"color": "77"}})",
    R"({"scalars": {"color": 1.5}})",
    R"({"scalars": {"color": true}})",
    R"({"repeated": {"color": ["RED", 1, "INFRARED", 100]}})",
    // names: JSON names, .proto names, unknown names, null
    R"({"choice": {"snakeCaseName": "a", "customName": 1}})",
    R"({"choice": {"snake_case_name": "a", "renamed": 1}})",
    R"({"choice": {"snakecasename": "a"}})",
    R"({"nope": 1})",
    R"({"scalars": {"i32": null, "text": null, "nested": null, "color": null}})",
    R"({"scalars": null})",
    // repeated
    R"({"repeated": {"i32": [1, -2, 3], "text": ["a", ""], "nested": [{"a": 1}, {}]}})",
    R"({"repeated": {"i32": [1, null, 2]}})",
    R"({"repeated": {"i32": null}})",
    R"({"repeated": {"i32": []}})",
    R"({"repeated": {"i32": 5}})",
    R"({"repeated": {"i32": [[1]]}})",
    R"({"repeated": {"i32": [[1, 2], 3, [[4]]]}})",
    R"({"repeated": {"nested": [[{"a": 1}]]}})",
    R"({"wellKnown": {"values": [[1], [[]]]}})",
    R"({"repeated": {"i32": [1, "x"]}})",
    R"({"repeated": {"i64": ["1", 2, "-3"], "u64": [0]}})",
    R"({"repeated": {"nested": {"a": 2}}})",
    // maps
    R"({"maps": {"byString": {"a": 1, "b": -1, "": 0}}})",
    R"({"maps": {"byInt32": {"-2147483648": "min", "7": "x"}}})",
    R"({"maps": {"byInt32": {"x": "y"}}})",
    R"({"maps": {"byInt32": {"2147483648": "y"}}})",
    R"({"maps": {"byInt64": {"-9223372036854775808": "a"}, "byUint64": {"18446744073709551615": "b"}}})",
    R"({"maps": {"byUint32": {"-1": "a"}}})",
    R"({"maps": {"byBool": {"true": {"a": 1}, "false": {}}}})",
    R"({"maps": {"byBool": {"yes": {}}}})",
    R"({"maps": {"byBool": {"TRUE": {}}}})",
    R"({"maps": {"byFixed64": {"5": "f"}, "bySint32": {"-5": "s"}}})",
    R"({"maps": {"colors": {"a": "RED", "b": 2, "c": 99}}})",
    R"({"maps": {"colors": {"a": "NOPE"}}})",
    R"({"maps": {"byString": {"a": null}}})",
    R"({"maps": {"values": {"a": null, "b": [1], "c": {"d": "e"}}}})",
    R"({"maps": {"times": {"a": null, "b": "1970-01-01T00:00:01Z"}}})",
    R"({"maps": {"byString": {"a": 1, "a": 2}}})",
    R"({"maps": {"byString": [1]}})",
    R"({"maps": {"byInt32": {"1": "a", "01": "b"}}})",
    R"({"maps": {"byBool": {"true": {"a": 1}, "false": null}}})",
    R"({"maps": {"blobs": {"k": "AQI="}}})",
    R"({"maps": {"reals": {"k": "NaN", "j": 1.5}}})",
    // oneof and optional
    R"({"choice": {"number": 1}})",
    R"({"choice": {"number": 1, "word": "a"}})",
    R"({"choice": {"number": 1, "word": null}})",
    R"({"choice": {"number": null, "word": "w"}})",
    R"({"choice": {"value": null}})",
    R"({"choice": {"nested": {}}})",
    R"({"choice": {"color": "GREEN"}})",
    R"({"choice": {"maybeNumber": 0, "maybeWord": "", "maybeColor": "COLOR_UNSPECIFIED", "maybeNested": {}}})",
    R"({"choice": {"maybeNumber": null}})",
    R"({"choice": {"maybeNumber": 1, "maybe_number": 2}})",
    R"({"choice": {"plain": 1, "plain": 2}})",
    R"({"scalars": {"nested": {"a": 1}}, "scalars": {"nested": {"b": "x"}}})",
    // recursion
    R"({"recursive": {"value": 1, "child": {"value": 2, "child": {"children": [{"value": 3}]}}}})",
    // well-known types
    R"({"wellKnown": {"time": "1970-01-01T00:00:00Z"}})",
    R"({"wellKnown": {"time": "2024-02-29T23:59:59.999999999Z"}})",
    R"({"wellKnown": {"time": "2023-02-29T00:00:00Z"}})",
    R"({"wellKnown": {"time": "2015-05-20T13:29:35.12-08:00"}})",
    R"({"wellKnown": {"time": "2015-05-20T13:29:35+01:30"}})",
    R"({"wellKnown": {"time": "2015-05-20T13:29:35.1234567891Z"}})",
    R"({"wellKnown": {"time": "0001-01-01T00:00:00Z"}})",
    R"({"wellKnown": {"time": "9999-12-31T23:59:59.999Z"}})",
    R"({"wellKnown": {"time": "2015-05-20 13:29:35Z"}})",
    R"({"wellKnown": {"time": "2015-05-20T13:29:35"}})",
    R"({"wellKnown": {"time": "2015-05-20T13:29:35z"}})",
    R"({"wellKnown": {"time": "2015-05-20T24:00:00Z"}})",
    R"({"wellKnown": {"time": "2015-05-20T13:29:35.Z"}})",
    R"({"wellKnown": {"time": 0}})",
    R"({"wellKnown": {"time": null}})",
    R"({"wellKnown": {"duration": "1.5s"}})",
    R"({"wellKnown": {"duration": "-1.5s"}})",
    R"({"wellKnown": {"duration": "0s"}})",
    R"({"wellKnown": {"duration": "-0.000000001s"}})",
    R"({"wellKnown": {"duration": "315576000000s"}})",
    R"({"wellKnown": {"duration": "315576000001s"}})",
    R"({"wellKnown": {"duration": "1.0000000001s"}})",
    R"({"wellKnown": {"duration": "1"}})",
    R"({"wellKnown": {"duration": "1.5 s"}})",
    R"({"wellKnown": {"duration": "s"}})",
    R"({"wellKnown": {"duration": 1}})",
    R"({"wellKnown": {"mask": "fooBar,a.bC,x"}})",
    R"({"wellKnown": {"mask": ""}})",
    R"({"wellKnown": {"mask": 1}})",
    R"({"wellKnown": {"object": {"a": [1, "b", null, true, {"c": {}}]}}})",
    R"({"wellKnown": {"object": []}})",
    R"({"wellKnown": {"object": null}})",
    R"({"wellKnown": {"value": null}})",
    R"({"wellKnown": {"value": 1.5}})",
    R"({"wellKnown": {"value": "s"}})",
    R"({"wellKnown": {"value": [[], {}, null]}})",
    R"({"wellKnown": {"value": 18446744073709551615}})",
    R"({"wellKnown": {"list": [1, null, "x"]}})",
    R"({"wellKnown": {"list": {}}})",
    R"({"wellKnown": {"list": 1}})",
    R"({"wellKnown": {"nullValue": null}})",
    R"({"wellKnown": {"nullValue": "NULL_VALUE"}})",
    R"({"wellKnown": {"nullValue": 0}})",
    R"({"wellKnown": {"empty": {}}})",
    R"({"wellKnown": {"empty": {"a": 1}}})",
    R"({"wellKnown": {"int32Value": 5, "int64Value": "-5", "uint32Value": 5, "uint64Value": "5"}})",
    R"({"wellKnown": {"floatValue": "NaN", "doubleValue": 1.5, "boolValue": true}})",
    R"({"wellKnown": {"stringValue": "", "bytesValue": "AQ=="}})",
    R"({"wellKnown": {"int32Value": null, "stringValue": null}})",
    R"({"wellKnown": {"int32Value": {"value": 5}}})",
    R"({"wellKnown": {"list": {"values": [1]}}})",
    R"({"wellKnown": {"time": {"seconds": 5, "nanos": 6}}})",
    R"({"wellKnown": {"duration": {"seconds": 5}}})",
    R"({"wellKnown": {"mask": {"paths": ["a"]}}})",
    R"({"wellKnown": {"value": {"numberValue": 5}}})",
    R"({"wellKnown": {"object": {"fields": {"a": 1}}}})",
    R"({"wellKnown": {"int32Value": 2147483648}})",
    R"({"wellKnown": {"int32Values": [1, null, 3]}})",
    R"({"wellKnown": {"values": [1, null, "x"]}})",
    R"({"wellKnown": {"times": ["1970-01-01T00:00:00Z", null]}})",
    // Any
    R"({"wellKnown": {"any": {"@type": "type.googleapis.com/conduit.test.Nested", "a": 1, "b": "x"}}})",
    R"({"wellKnown": {"any": {"a": 1, "@type": "type.googleapis.com/conduit.test.Nested"}}})",
    R"({"wellKnown": {"any": {}}})",
    R"({"wellKnown": {"any": {"a": 1}}})",
    R"({"wellKnown": {"any": {"@type": "type.googleapis.com/no.such.Type"}}})",
    R"({"wellKnown": {"any": {"@type": "example.com/conduit.test.Nested"}}})",
    R"({"wellKnown": {"any": {"@type": "type.googleapis.com/conduit.test.Nested", "c": 1}}})",
    R"({"wellKnown": {"any": {"@type": "type.googleapis.com/google.protobuf.Duration", "value": "2s"}}})",
    R"({"wellKnown": {"any": {"@type": "type.googleapis.com/google.protobuf.Value", "value": [1, {}]}}})",
    R"({"wellKnown": {"any": {"@type": "type.googleapis.com/google.protobuf.Struct", "value": {"a": 1}}}})",
    R"({"wellKnown": {"any": {"@type": "type.googleapis.com/google.protobuf.Int32Value", "value": 3}}})",
    R"({"wellKnown": {"any": {"@type": "type.googleapis.com/google.protobuf.Int32Value", "other": 3}}})",
    R"({"wellKnown": {"any": {"@type": "type.googleapis.com/google.protobuf.Empty"}}})",
    R"({"wellKnown": {"any": {"@type": "type.googleapis.com/google.protobuf.Any", "value": {"@type": "type.googleapis.com/conduit.test.Nested", "a": 2}}}})",
    R"({"wellKnown": {"any": {"@type": 5}}})",
    R"({"wellKnown": {"any": {"@type": "type.googleapis.com/conduit.test.Everything", "scalars": {"i64": "7"}}}})",
    // wrong shapes at the top and inside
    R"({"scalars": 1})",
    R"({"scalars": []})",
    R"({"scalars": "x"})",
    R"({"repeated": {"nested": [1]}})",
};

class TextCorpus : public testing::TestWithParam<const char*> {};

TEST_P(TextCorpus, ReadsAsProtobufReads) {
  const std::string text = GetParam();
  Everything by_protobuf;
  const auto reference = pb::util::JsonStringToMessage(text, &by_protobuf);
  Everything by_conduit;
  const Status status = json_text_to_message(text, by_conduit);
  ASSERT_EQ(status.ok(), reference.ok())
      << text << "\n  conduit:  " << status.to_string() << "\n  protobuf: " << reference.ToString();
  if (status.ok()) {
    EXPECT_TRUE(same_message(by_conduit, by_protobuf)) << text;
  }
}

INSTANTIATE_TEST_SUITE_P(ProtoJson, TextCorpus, testing::ValuesIn(kTextCorpus));

// ---- what errors say ----

Status read(std::string_view text, pb::Message& message) {
  return json_text_to_message(text, message);
}

TEST(ProtoJsonErrors, NameThePathAndTheReason) {
  Everything message;
  const Status status = read(R"({"repeated": {"nested": [{"a": 1}, {"a": 3000000000}]}})", message);
  EXPECT_EQ(status, Status(StatusCode::invalid_argument,
                           "repeated.nested[1].a: 3000000000 is out of range for int32"));
  EXPECT_EQ(read(R"({"maps": {"byInt32": {"7": 5}}})", message).message(),
            R"(maps.byInt32["7"]: expected a string, got a number)");
  EXPECT_EQ(read(R"({"scalars": {"i32": 1.5}})", message).message(),
            "scalars.i32: 1.5 is not an integer");
  EXPECT_EQ(read(R"({"scalars": {"color": "PURPLE"}})", message).message(),
            R"(scalars.color: "PURPLE" is not a value of conduit.test.Color)");
  EXPECT_EQ(read(R"({"scalars": {"nope": 1}})", message).message(),
            R"(scalars: conduit.test.Scalars has no field "nope")");
  EXPECT_EQ(read(R"({"scalars": {"data": "*"}})", message).message(),
            R"(scalars.data: "*" is not base64)");
}

TEST(ProtoJsonErrors, PositionalParamsNameTheirPositionAndField) {
  interop::SubtractRequest request;
  rapidjson::Document params;
  const std::string_view json = R"([1, true])";
  params.Parse(json.data(), json.size());
  EXPECT_EQ(params_to_message(&params, request).message(),
            "params[1] (subtrahend): expected a number, got a boolean");
}

TEST(ProtoJsonErrors, NulAndInvalidUtf8AreRefused) {
  using namespace std::string_literals;
  Everything message;
  for (const std::string& text :
       {R"({"scalars": {"text": "a)"
        "\0"s
        R"(b"}})",
        R"({"scalars": {"text": "\xff"}})"s, R"({"scalars": {"text": "\ud800"}})"s,
        R"({"scalars": {"text": "\xed\xa0\x80"}})"s}) {
    EXPECT_EQ(read(text, message).code(), StatusCode::invalid_argument) << text;
  }
}

TEST(ProtoJsonErrors, NestingDeeperThanTheLimitIsRefused) {
  pb::Value value;
  std::string deep(kMaxMappingDepth + 1, '[');
  deep.append(kMaxMappingDepth + 1, ']');
  EXPECT_EQ(read(deep, value).code(), StatusCode::invalid_argument);
  std::string ok(kMaxMappingDepth - 1, '[');
  ok.append(kMaxMappingDepth - 1, ']');
  EXPECT_TRUE(read(ok, value).ok()) << read(ok, value).to_string();
}

TEST(ProtoJsonErrors, AnyOfAnUnknownTypeCannotBePrinted) {
  pb::Any any;
  any.set_type_url("type.googleapis.com/no.such.Type");
  any.set_value("\x08\x01");
  std::string text;
  JsonWriter writer(text);
  const Status status = write_message(any, writer);
  EXPECT_EQ(status.code(), StatusCode::internal);
  EXPECT_NE(status.message().find("no.such.Type"), std::string::npos) << status.message();
}

TEST(ProtoJsonErrors, StringThatIsNotUtf8CannotBePrinted) {
  test::Scalars scalars;
  scalars.set_text("\xff");
  std::string text;
  JsonWriter writer(text);
  EXPECT_EQ(write_message(scalars, writer), Status(StatusCode::internal,
                                                   "conduit.test.Scalars: text: the string is not "
                                                   "valid UTF-8"));
}

// ---- JSON-RPC params ----

Status params(std::string_view json, pb::Message& request) {
  if (json.empty()) return params_to_message(nullptr, request);
  JsonDocument document(json, kMaxMappingDepth);
  if (!document.ok()) return {StatusCode::invalid_argument, "not JSON"};
  return params_to_message(&document.root(), request);
}

TEST(ProtoJsonParams, NamedParamsFillFieldsByJsonOrProtoName) {
  test::Choice choice;
  ASSERT_TRUE(params(R"({"snakeCaseName": "a", "renamed": 2})", choice).ok());
  EXPECT_EQ(choice.snake_case_name(), "a");
  EXPECT_EQ(choice.renamed(), 2);
  ASSERT_TRUE(params(R"({"snake_case_name": "b", "customName": 3})", choice).ok());
  EXPECT_EQ(choice.snake_case_name(), "b");
  EXPECT_EQ(choice.renamed(), 3);
}

TEST(ProtoJsonParams, PositionalParamsFillFieldsInDeclarationOrder) {
  interop::SubtractRequest request;
  ASSERT_TRUE(params("[42, 23]", request).ok());
  EXPECT_EQ(request.minuend(), 42);
  EXPECT_EQ(request.subtrahend(), 23);
  ASSERT_TRUE(params("[7]", request).ok());
  EXPECT_EQ(request.minuend(), 7);
  EXPECT_EQ(request.subtrahend(), 0) << "the params say nothing of it: cleared";
}

TEST(ProtoJsonParams, PositionalParamsKeepEveryDigitOfInt64) {
  test::Scalars scalars;
  // Field 6 is int64: six params reach it.
  ASSERT_TRUE(params(R"([0, 0, 0, 0, 0, 9223372036854775807])", scalars).ok());
  EXPECT_EQ(scalars.i64(), std::numeric_limits<std::int64_t>::max());
}

TEST(ProtoJsonParams, TooManyPositionalParamsAreRefused) {
  interop::SubtractRequest request;
  EXPECT_EQ(params("[1, 2, 3]", request),
            Status(StatusCode::invalid_argument, "3 params given, SubtractRequest takes 2"));
}

TEST(ProtoJsonParams, UnknownNamedParamIsRefusedByName) {
  interop::SubtractRequest request;
  const Status status = params(R"({"minuend": 1, "divisor": 2})", request);
  EXPECT_EQ(status.code(), StatusCode::invalid_argument);
  EXPECT_NE(status.message().find("divisor"), std::string::npos) << status.message();
}

TEST(ProtoJsonParams, ParamsMustBeAnArrayOrAnObject) {
  interop::SubtractRequest request;
  for (const char* json : {"42", R"("text")", "null", "true"})
    EXPECT_EQ(params(json, request).code(), StatusCode::invalid_argument) << json;
}

TEST(ProtoJsonParams, ValueTakesAnyJsonWholeAndNothingAsNull) {
  pb::Value value;
  ASSERT_TRUE(params(R"([1, {"a": null}])", value).ok());
  EXPECT_EQ(conduit_json(value), R"([1,{"a":null}])");
  ASSERT_TRUE(params("", value).ok());
  EXPECT_EQ(value.kind_case(), pb::Value::kNullValue);
}

TEST(ProtoJsonParams, ListValueTakesOnlyAnArrayAndStructOnlyAnObject) {
  pb::ListValue list;
  EXPECT_TRUE(params(R"([1, "two"])", list).ok());
  EXPECT_EQ(params(R"({"a": 1})", list).code(), StatusCode::invalid_argument);
  pb::Struct object;
  EXPECT_TRUE(params(R"({"a": 1})", object).ok());
  EXPECT_EQ(params("[1]", object).code(), StatusCode::invalid_argument);
}

TEST(ProtoJsonParams, EmptyTakesNothingOrEmptyContainers) {
  pb::Empty empty;
  for (const char* json : {"", "[]", "{}"}) EXPECT_TRUE(params(json, empty).ok()) << json;
  for (const char* json : {"[1]", R"({"a": 1})"})
    EXPECT_EQ(params(json, empty).code(), StatusCode::invalid_argument) << json;
}

// ---- messages of another pool ----

TEST(ProtoJsonDynamic, WellKnownTypesOfAnotherPoolMapAsTheGeneratedOnes) {
  pb::DescriptorPool pool;
  for (const pb::FileDescriptor* file : {pb::Value::descriptor()->file()}) {
    pb::FileDescriptorProto copy;
    file->CopyTo(&copy);
    ASSERT_NE(pool.BuildFile(copy), nullptr);
  }
  pb::DynamicMessageFactory factory;
  const pb::Descriptor* type = pool.FindMessageTypeByName("google.protobuf.Value");
  ASSERT_NE(type, pb::Value::descriptor());
  std::unique_ptr<pb::Message> value(factory.GetPrototype(type)->New());
  ASSERT_TRUE(read(R"([1, {"a": "b"}, null, true])", *value).ok());
  EXPECT_EQ(conduit_json(*value), R"([1,{"a":"b"},null,true])");
}

TEST(ProtoJsonOutput, ValueWithoutAKindIsNullAtTheTop) {
  EXPECT_EQ(message_to_json(pb::Value()), "null");
}

TEST(ProtoJsonOutput, WholeNumbersPrintWithoutAFraction) {
  pb::Value value;
  value.set_number_value(19.0);
  EXPECT_EQ(message_to_json(value), "19");
  value.set_number_value(-0.5);
  EXPECT_EQ(message_to_json(value), "-0.5");
}

}  // namespace
}  // namespace conduit::rpc::jsonrpc
