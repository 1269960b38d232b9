// Compact JSON appended to a std::string, for responses written straight
// into the text that goes out.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace conduit::rpc::jsonrpc {

// Writes values one after another, separating them with commas where JSON
// needs them. It does not check the nesting: the caller opens and closes
// arrays and objects in pairs, and gives each member of an object a key.
class JsonWriter {
 public:
  // Appends to `out`, which must outlive the writer.
  explicit JsonWriter(std::string& out) : out_(out) {}

  void start_object() { open('{'); }
  void end_object() { close('}'); }
  void start_array() { open('['); }
  void end_array() { close(']'); }
  // A member's name; its value comes next. False, writing nothing, when
  // `name` is not well-formed UTF-8.
  bool key(std::string_view name);

  void null() { scalar("null"); }
  void boolean(bool value) { scalar(value ? "true" : "false"); }
  void number(std::int64_t value);
  void number(std::uint64_t value);
  // Text that is already a JSON value (a number as written, a literal).
  void raw(std::string_view json) { scalar(json); }
  // False, writing nothing, when `text` is not well-formed UTF-8.
  bool string(std::string_view text);

  std::string& text() { return out_; }

 private:
  void separate() {
    if (need_comma_) out_ += ',';
  }
  void open(char bracket) {
    separate();
    out_ += bracket;
    need_comma_ = false;
  }
  void close(char bracket) {
    out_ += bracket;
    need_comma_ = true;
  }
  void scalar(std::string_view json) {
    separate();
    out_ += json;
    need_comma_ = true;
  }
  bool quoted(std::string_view text);

  std::string& out_;
  bool need_comma_ = false;
};

}  // namespace conduit::rpc::jsonrpc
