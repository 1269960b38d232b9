#include "rpc/protocols/jsonrpc/json_document.hpp"

#include <rapidjson/error/en.h>
#include <rapidjson/reader.h>

#include <bit>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <utility>

#include "rpc/protocols/jsonrpc/utf8.hpp"

namespace conduit::rpc::jsonrpc {

namespace {

// In place: strings are decoded inside the document's copy of the text,
// not copied again. Numbers as text: they are converted here, exactly. Stop
// when done: what follows the value is checked after the parse.
constexpr unsigned kParseFlags = rapidjson::kParseInsituFlag | rapidjson::kParseStopWhenDoneFlag |
                                 rapidjson::kParseNumbersAsStringsFlag;
// The recursive parser is the faster one, and the builder stops it one
// level past max_depth, so its stack stays small when max_depth is: within
// this depth it is used, beyond it the iterative parser, which keeps its
// own stack on the heap.
constexpr std::size_t kMostRecursiveDepth = 1024;

// RapidJSON's SSE2 scans read whole aligned 16-byte blocks, up to 15 bytes
// past the NUL that ends the text: the copy is padded with 16 NULs.
constexpr std::size_t kPadding = 16;

// The block a thread keeps for its next ParseBuffer.
struct SpareBlock {
  std::unique_ptr<char[]> storage;
  std::size_t capacity = 0;
};
thread_local SpareBlock spare_block;

constexpr std::size_t kMostKept = std::size_t{32} << 20;

}  // namespace

ParseBuffer::ParseBuffer(std::string_view text) {
  const std::size_t needed = text.size() + kPadding;
  if (spare_block.capacity >= needed) {
    storage_ = std::move(spare_block.storage);
    capacity_ = std::exchange(spare_block.capacity, 0);
  } else {
    // Rounded up, so that a slightly longer text next time fits too.
    capacity_ = std::bit_ceil(needed);
    storage_ = std::make_unique_for_overwrite<char[]>(capacity_);
  }
  std::memcpy(storage_.get(), text.data(), text.size());
  std::memset(storage_.get() + text.size(), 0, kPadding);
}

ParseBuffer::~ParseBuffer() {
  if (capacity_ <= kMostKept && capacity_ > spare_block.capacity) {
    spare_block.storage = std::move(storage_);
    spare_block.capacity = capacity_;
  }
}

bool json_number_to_double(std::string_view text, double& value) {
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error == std::errc() && end == text.data() + text.size()) return true;
  // Out of range: beyond a double (an error), or so small that it rounds
  // to zero or a denormal, which strtod gives.
  std::string terminated(text);
  value = std::strtod(terminated.c_str(), nullptr);
  return std::isfinite(value);
}

// Builds the document from the reader's events, converting numbers and
// enforcing the limits.
class JsonDocument::Builder {
 public:
  enum class Stop { none, too_deep, too_many, surrogate, bad_number };

  Builder(Dom& document, const Limits& limits, KeptNumbers& kept)
      : document_(document), limits_(limits), kept_(kept) {}

  Stop stop() const { return stop_; }

  bool Null() { return value() && document_.Null(); }
  bool Bool(bool b) { return value() && document_.Bool(b); }
  // kParseNumbersAsStringsFlag sends every number to RawNumber; these are
  // here for the Handler concept.
  bool Int(int i) { return value() && document_.Int(i); }
  bool Uint(unsigned u) { return value() && document_.Uint(u); }
  bool Int64(std::int64_t i) { return value() && document_.Int64(i); }
  bool Uint64(std::uint64_t u) { return value() && document_.Uint64(u); }
  bool Double(double d) { return value() && document_.Double(d); }

  bool RawNumber(const char* text, rapidjson::SizeType length, bool) {
    if (!value()) return false;
    const std::string_view number(text, length);
    if (keep_next_ && depth_ == entry_depth_) {
      kept_.keep(entry_, number);  // points into the document's text
    }
    keep_next_ = false;
    if (number.find_first_of(".eE") == std::string_view::npos) {
      const char* end = text + length;
      if (number.front() == '-') {
        std::int64_t integer;
        if (std::from_chars(text, end, integer).ec == std::errc()) return document_.Int64(integer);
      } else {
        std::uint64_t integer;
        if (std::from_chars(text, end, integer).ec == std::errc()) return document_.Uint64(integer);
      }
    }
    double real;
    if (!json_number_to_double(number, real)) {
      stop_ = Stop::bad_number;
      return false;
    }
    return document_.Double(real);
  }

  bool String(const char* text, rapidjson::SizeType length, bool copy) {
    if (!value()) return false;
    keep_next_ = false;
    if (has_surrogate({text, length})) {
      stop_ = Stop::surrogate;
      return false;
    }
    return document_.String(text, length, copy);
  }

  bool Key(const char* text, rapidjson::SizeType length, bool copy) {
    if (has_surrogate({text, length})) {
      stop_ = Stop::surrogate;
      return false;
    }
    keep_next_ = depth_ == entry_depth_ && !limits_.kept_number_member.empty() &&
                 std::string_view(text, length) == limits_.kept_number_member;
    return document_.Key(text, length, copy);
  }

  bool StartObject() {
    if (!value()) return false;
    if (depth_ == 0) {
      entry_depth_ = 1;
      entry_ = 0;
    } else if (depth_ == 1 && root_is_array_) {
      entry_depth_ = 2;
      entry_ = elements_ - 1;
    }
    return open() && document_.StartObject();
  }
  bool EndObject(rapidjson::SizeType members) {
    --depth_;
    return document_.EndObject(members);
  }
  bool StartArray() {
    if (!value()) return false;
    if (depth_ == 0) root_is_array_ = true;
    return open() && document_.StartArray();
  }
  bool EndArray(rapidjson::SizeType elements) {
    --depth_;
    return document_.EndArray(elements);
  }

 private:
  // Every value passes here before it is added.
  bool value() {
    if (depth_ != 1 || !root_is_array_) return true;
    ++elements_;
    if (limits_.max_root_elements && elements_ > *limits_.max_root_elements) {
      stop_ = Stop::too_many;
      return false;
    }
    return true;
  }

  bool open() {
    keep_next_ = false;
    if (++depth_ > limits_.max_depth) {
      stop_ = Stop::too_deep;
      return false;
    }
    return true;
  }

  Dom& document_;
  const Limits& limits_;
  KeptNumbers& kept_;
  Stop stop_ = Stop::none;
  std::size_t depth_ = 0;
  bool root_is_array_ = false;
  std::size_t elements_ = 0;     // of the root array, so far
  std::size_t entry_depth_ = 0;  // where the members of entry_ are; 0: none
  std::size_t entry_ = 0;
  bool keep_next_ = false;
};

JsonDocument::JsonDocument(std::string_view text, const Limits& limits) {
  auto not_json = [&](std::string_view what, std::size_t offset) {
    failure_ = Failure::not_json;
    error_ = std::string(what) + " (at offset " + std::to_string(offset) + ")";
  };
  if (const std::size_t bad = invalid_utf8_at(text); bad != std::string_view::npos) {
    not_json(rapidjson::GetParseError_En(rapidjson::kParseErrorStringInvalidEncoding), bad);
    return;
  }
  text_.emplace(text);

  Builder builder(document_, limits, kept_);
  rapidjson::InsituStringStream stream(text_->data());
  rapidjson::ParseResult result;
  auto generate = [&](Dom& handler) {
    (void)handler;  // the builder adds to the same document
    rapidjson::GenericReader<rapidjson::UTF8<>, rapidjson::UTF8<>, Pool> reader(&pool_);
    result = limits.max_depth <= kMostRecursiveDepth
                 ? reader.Parse<kParseFlags>(stream, builder)
                 : reader.Parse<kParseFlags | rapidjson::kParseIterativeFlag>(stream, builder);
    return !result.IsError();
  };
  document_.Populate(generate);
  switch (builder.stop()) {
    case Builder::Stop::too_deep:
      failure_ = Failure::too_deep;
      return;
    case Builder::Stop::too_many:
      failure_ = Failure::too_many;
      return;
    case Builder::Stop::surrogate:
      not_json("A string holds an unpaired UTF-16 surrogate.", result.Offset());
      return;
    case Builder::Stop::bad_number:
      not_json(rapidjson::GetParseError_En(rapidjson::kParseErrorNumberTooBig), result.Offset());
      return;
    case Builder::Stop::none:
      break;
  }
  if (result.IsError()) {
    not_json(rapidjson::GetParseError_En(result.Code()), result.Offset());
    return;
  }
  // Only whitespace may follow; a NUL byte ended the stream early.
  const std::size_t rest = text.find_first_not_of(" \t\n\r", stream.Tell());
  if (rest != std::string_view::npos) {
    not_json(rapidjson::GetParseError_En(rapidjson::kParseErrorDocumentRootNotSingular), rest);
  }
}

void JsonDocument::KeptNumbers::keep(std::size_t entry, std::string_view number) {
  if (entry == 0) {
    if (first.empty()) first = number;
    return;
  }
  if (rest.size() < entry) rest.resize(entry);
  if (rest[entry - 1].empty()) rest[entry - 1] = number;
}

std::string_view JsonDocument::KeptNumbers::at(std::size_t entry) const {
  if (entry == 0) return first;
  return entry <= rest.size() ? rest[entry - 1] : std::string_view();
}

std::string_view JsonDocument::kept_number(std::size_t entry) const {
  return kept_.at(entry);
}

}  // namespace conduit::rpc::jsonrpc
