// The proto3 JSON mapping (https://protobuf.dev/programming-guides/proto3/#json),
// straight between RapidJSON values and protobuf messages through their
// descriptors and reflection, as protobuf 3.21's own JSON utilities do it
// with their default options:
//
// - printing: fields by their JSON names (lowerCamelCase) in field number
//   order, fields at their default value left out (except where presence
//   is tracked: proto3 `optional`, oneof members, messages); 64-bit
//   integers as strings; NaN and the infinities as "NaN", "Infinity",
//   "-Infinity"; bytes as standard base64 with padding; enums by name
//   (unknown numbers as numbers); maps as objects; the well-known types in
//   their own forms (Timestamp as RFC 3339 in UTC, Duration as "1.5s",
//   FieldMask as "a,bC", wrappers as their bare value, Struct, Value and
//   ListValue as plain JSON, Any with "@type").
// - reading: fields by JSON name or by the name in the .proto; null for a
//   field leaves it at its default (a Value becomes null); 64-bit integers
//   from numbers or strings; integers from integral numbers such as 1.0 or
//   1e2, never from fractions; floats and doubles from numbers or the three
//   strings above; bytes from standard or URL-safe base64, padded or not;
//   enums by name or number; an Any's type from the message's own pool.
//   Unknown fields, unknown enum names, out-of-range numbers and two
//   members of one oneof are errors.
//
// Every error names the path of the value and the reason:
// "order.quantity: 3000000000 is out of range for int32".
#pragma once

#include <google/protobuf/message.h>
#include <rapidjson/document.h>

#include <string>
#include <string_view>

#include "conduit/rpc/status.hpp"
#include "rpc/protocols/jsonrpc/json_writer.hpp"

namespace conduit::rpc::jsonrpc {

// The deepest nesting of messages and JSON values the mapping follows.
constexpr int kMaxMappingDepth = 512;

// Fills `message`, cleared first, from `json`. `path` names `json` in
// errors (empty: errors name only what is inside it). Returns
// INVALID_ARGUMENT "path: reason" when `json` does not fit the message.
Status json_to_message(const rapidjson::Value& json, google::protobuf::Message& message,
                       std::string_view path = {});

// Fills a request, cleared first, from JSON-RPC params: `params` is an
// array (element i fills field i in declaration order), an object (members
// by field name), or nullptr for none. A request of type
// google.protobuf.Value takes the params whole (none: null), ListValue an
// array of them, Struct an object. Returns INVALID_ARGUMENT naming the
// param and the reason: "params[1] (subtrahend): expected a number, got a
// string".
Status params_to_message(const rapidjson::Value* params, google::protobuf::Message& request);

// Writes `message` as proto3 JSON through `writer`. A Value without a kind
// is written as null. Returns INTERNAL naming the field that cannot be
// printed (an Any of a type its pool does not know, a Timestamp out of
// range, a string that is not UTF-8); what was written by then is left in
// the writer's text.
Status write_message(const google::protobuf::Message& message, JsonWriter& writer);

// The message as proto3 JSON text. Throws conduit::Error when
// write_message() fails.
std::string message_to_json(const google::protobuf::Message& message);

// Parses `text` (strict JSON, nesting up to kMaxMappingDepth) and fills
// `message` from it as json_to_message() does. Returns INVALID_ARGUMENT
// when the text is not JSON or does not fit.
Status json_text_to_message(std::string_view text, google::protobuf::Message& message);

}  // namespace conduit::rpc::jsonrpc
