// One JSON text, parsed once into a RapidJSON DOM that the JSON-RPC engine,
// the clients and the proto3 JSON mapping all read.
#pragma once

#include <rapidjson/document.h>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace conduit::rpc::jsonrpc {

// A copy of a text with 16 NUL bytes after it, for RapidJSON to parse in
// place (its SSE2 scans read whole aligned 16-byte blocks past the NUL that
// ends a text). The memory goes back to its thread when the copy is
// destroyed, and serves the thread's next copy: texts of similar sizes, one
// after another, then cost no fresh pages. A thread keeps at most one such
// block, of up to 32 MiB.
class ParseBuffer {
 public:
  explicit ParseBuffer(std::string_view text);
  ~ParseBuffer();
  ParseBuffer(const ParseBuffer&) = delete;
  ParseBuffer& operator=(const ParseBuffer&) = delete;

  char* data() { return storage_.get(); }

 private:
  std::unique_ptr<char[]> storage_;
  std::size_t capacity_ = 0;
};

// A parsed JSON text. Strict RFC 8259: text that is not well-formed UTF-8,
// strings holding an unpaired UTF-16 surrogate escape ("\uDC00") or a NUL
// byte outside a string, numbers beyond the range of a double (1e400), and
// anything but whitespace after the value are refused.
//
// Numbers are exact: integers in the range of int64 or uint64 keep every
// digit (IsInt64, IsUint64), every other number is the double nearest to
// what was written. Strings point into the document's own copy of the text,
// so the DOM costs no copy of them.
//
// The parse is iterative: no input can overflow the thread's stack.
class JsonDocument {
 public:
  struct Limits {
    // The deepest nesting of arrays and objects: [[1]] is 2 deep.
    std::size_t max_depth = 512;
    // The most elements a root array may hold; std::nullopt: no limit.
    std::optional<std::size_t> max_root_elements;
    // A member, of the root object or of objects in a root array, whose
    // number is kept as written as well (see kept_number()).
    std::string_view kept_number_member;
  };

  enum class Failure {
    none,
    not_json,  // error() says what and where
    too_deep,  // deeper than max_depth
    too_many,  // a root array longer than max_root_elements
  };

  JsonDocument(std::string_view text, const Limits& limits);
  // With no limit but `max_depth`.
  JsonDocument(std::string_view text, std::size_t max_depth)
      : JsonDocument(text, limited_to(max_depth)) {}
  JsonDocument(const JsonDocument&) = delete;
  JsonDocument& operator=(const JsonDocument&) = delete;

  Failure failure() const { return failure_; }
  bool ok() const { return failure_ == Failure::none; }
  // For Failure::not_json: "Invalid value. (at offset 3)".
  const std::string& error() const { return error_; }

  // REQUIRES: ok().
  const rapidjson::Value& root() const { return document_; }

  // The number Limits::kept_number_member holds in the root object
  // (entry 0) or in element `entry` of a root array, as written; empty
  // when it holds no number there.
  std::string_view kept_number(std::size_t entry) const;

 private:
  class Builder;

  static Limits limited_to(std::size_t max_depth) {
    Limits limits;
    limits.max_depth = max_depth;
    return limits;
  }

  // The DOM's values, and the stacks that build it, in one pool whose first
  // chunk lies in the document itself: a request of a few hundred bytes
  // parses without a call to malloc.
  using Pool = rapidjson::MemoryPoolAllocator<>;
  using Dom = rapidjson::GenericDocument<rapidjson::UTF8<>, Pool, Pool>;

  std::optional<ParseBuffer> text_;  // the copy the DOM's strings point into
  alignas(std::max_align_t) char first_chunk_[2048];
  Pool pool_{first_chunk_, sizeof first_chunk_};
  Dom document_{&pool_, 256, &pool_};
  Failure failure_ = Failure::none;
  std::string error_;
  // The kept numbers, as written in text_: the first entry's inline (a
  // single request needs no allocation), a batch's others after it.
  struct KeptNumbers {
    std::string_view first;
    std::vector<std::string_view> rest;
    void keep(std::size_t entry, std::string_view number);
    std::string_view at(std::size_t entry) const;
  };
  KeptNumbers kept_;
};

// Converts a JSON number as written to a double: false when it lies beyond
// the range of a double (tiny numbers become zero or denormals, as strtod
// makes them).
bool json_number_to_double(std::string_view text, double& value);

}  // namespace conduit::rpc::jsonrpc
