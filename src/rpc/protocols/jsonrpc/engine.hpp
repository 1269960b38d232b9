// JSON-RPC 2.0 (https://www.jsonrpc.org/specification), independent of what
// carries it: the server side as an engine that turns one request text into
// one response text, and the client side's request and reply.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "conduit/rpc/call_context.hpp"
#include "conduit/rpc/service.hpp"

namespace conduit::rpc::jsonrpc {

// What the engine refuses to read. A text over a limit gets one Invalid
// Request error (-32600, id null) whose data, a string, names the limit.
struct Limits {
  // The longest request text; a longer one is not parsed at all.
  std::size_t max_body_bytes = 16 << 20;
  // The deepest nesting of arrays and objects, counting the request object
  // itself and a batch's array: {"params":[1]} is 2 deep, [{"params":[1]}] 3.
  int max_depth = 64;
  // The most elements one batch may hold.
  std::size_t max_batch = 1024;
};

// The server side: parses requests, calls methods, writes responses.
//
// Where the specification is silent, the engine:
// - refuses JSON that RFC 8259 does not allow, including text that is not
//   UTF-8, strings holding an unpaired UTF-16 surrogate escape ("\uDC00"),
//   numbers beyond the range of a double (1e400, a 400-digit integer), and
//   anything but whitespace after the value: Parse error (-32700);
// - calls a request object whose "jsonrpc", "method", "params" or "id"
//   member appears twice an Invalid Request (-32600), since parsers disagree
//   on which copy counts; duplicate names inside params go to the method as
//   they came;
// - ignores members other than those four;
// - answers an Invalid Request with the request's id when the id itself was
//   well formed (a string, a number or null, given once), else with id null,
//   and answers it even without an id, as the specification's examples do:
//   a text that is not a valid Request cannot be a notification;
// - echoes ids as they were written (1.50 stays 1.50, big integers keep
//   their digits, string escapes are re-encoded);
// - maps params from the one parse of the request straight into the
//   method's request message (see params_to_message in proto_json.hpp), and
//   writes the response message straight into the response text; params
//   that do not fit are Invalid params (-32602) whose data names the param
//   and the reason, and the handler is not called;
// - answers a call whose deadline has passed with DEADLINE_EXCEEDED, and a
//   handler's failure as status_mapping.hpp says;
// - answers a batch in request order, one call after another.
class Engine {
 public:
  // REQUIRES: `methods` outlives the engine. Throws conduit::Error when
  // limits.max_depth is below 1.
  explicit Engine(const ServiceTable& methods, Limits limits = {});

  // Handles one JSON-RPC text, a single request or a batch, calling methods
  // of the table with `context` (whose protocol it sets to "jsonrpc" when
  // empty). Returns the response text, compact JSON on one line, or
  // std::nullopt when nothing must be sent back (a notification, or a batch
  // of notifications only). Failures of methods and of the engine itself
  // become error responses; it never throws.
  // `storage` is a buffer the response text is written into, its contents
  // dropped: a caller that hands back the text of its last response reuses
  // that memory (a large response then costs no fresh pages).
  // Thread-safe: any number of threads may call it at once.
  std::optional<std::string> handle(std::string_view text, CallContext& context,
                                    std::string storage = {}) const noexcept;

  const Limits& limits() const { return limits_; }

 private:
  const ServiceTable* methods_;
  Limits limits_;
};

// The client side, for commands that make one call.

// A request calling `method` with `id`. `params_json` is a JSON array or
// object (kept as written, compacted), or empty for no params. Throws
// conduit::Error saying what is wrong when params_json is not valid JSON or
// not an array or object, or when `method` is not valid UTF-8.
std::string make_request(std::string_view method, std::string_view params_json, std::int64_t id);

// What a server answered to one call.
struct Reply {
  bool ok = false;
  // When ok: the result, as the server wrote it.
  std::string result_json;
  // When not ok: the error object's code and message, and the whole object
  // (code, message and any data) as the server wrote it.
  int error_code = 0;
  std::string error_message;
  std::string error_json;
};

// Reads the response to the request made with `expected_id`. An error
// response with id null (the server could not read the request's id) is
// accepted as the answer. Throws conduit::ProtocolError when `text` is not a
// single well-formed JSON-RPC 2.0 response object or its id is another.
// The result is cut out of `text` in place, without a copy.
Reply parse_reply(std::string text, std::int64_t expected_id);

// The id of a response, for matching it to its request: std::nullopt for id
// null (or any id that is not an integer). Throws conduit::ProtocolError
// when `text` is not a JSON-RPC 2.0 response object.
std::optional<std::int64_t> reply_id(std::string_view text);

}  // namespace conduit::rpc::jsonrpc
