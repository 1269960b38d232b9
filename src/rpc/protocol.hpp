// One RPC protocol, both halves, as the rest of conduit sees it. A protocol
// lives in one folder under src/rpc/protocols/ and joins with one line in
// protocols/protocol_table.cpp; the server, `conduit serve`, `conduit call`,
// `conduit compare`'s RPC rows and the --help texts know protocols only
// through this interface, so none of them names one.
//
// A protocol says:
// - its name (the CallContext::protocol of its calls) and title;
// - how a server recognises it: by a connection's first bytes
//   (StreamProtocol), by a shared-memory link's first message
//   (MessageProtocol), and/or by HTTP/1.1 routes, which the shared front end
//   (http1/front_end.hpp) serves;
// - the flags of its options (ServerOptions has a nested struct per protocol);
// - the client URIs it takes, and how it makes a ClientChannel for one;
// - how `conduit call` calls through it;
// - the routes `conduit compare` measures it on.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "conduit/rpc/call_context.hpp"
#include "conduit/rpc/client_channel.hpp"
#include "conduit/rpc/server.hpp"
#include "conduit/rpc/service.hpp"
#include "rpc/http1/route.hpp"

namespace conduit::rpc {

namespace asio = boost::asio;

class Connection;

// One way a protocol is spoken on a byte stream, recognised by the first
// bytes a client sends.
class StreamProtocol {
 public:
  enum class Match { yes, no, need_more };

  virtual ~StreamProtocol() = default;
  virtual std::string_view name() const = 0;
  virtual Match match(std::string_view first_bytes) const = 0;
  // Serves the connection until the peer closes it, an error, or shutdown.
  // `pending` holds the bytes already read (those match() saw).
  virtual asio::awaitable<void> serve(Connection& connection, std::string pending) const = 0;
};

// A protocol spoken in whole messages over a shared-memory link (a ring
// message is a protocol message), recognised by the first message.
class MessageProtocol {
 public:
  virtual ~MessageProtocol() = default;
  virtual std::string_view name() const = 0;
  virtual bool match(std::string_view first_message) const = 0;
  // The reply to one message, or std::nullopt when none is due. `context`
  // is the call's, made by make_call_context (the peer, the deadline).
  virtual std::optional<std::string> handle(std::string_view message, CallContext& context,
                                            const ServiceTable& services,
                                            const ServerOptions& options) const = 0;
};

// A flag of `conduit serve` that sets one of a protocol's options.
struct ServeFlag {
  std::string name;  // "--NAME-max-depth": prefixed by the protocol's name
  std::string help;
  enum class Check { positive, non_negative } check = Check::positive;
  // The option's value now (the flag's default), and how the flag sets it.
  std::function<std::int64_t(const ServerOptions&)> get;
  std::function<void(ServerOptions&, std::int64_t)> set;
};

// A client URI form a protocol takes, for help texts and errors.
struct UriForm {
  std::string form;         // "NAME://HOST:PORT"
  std::string description;  // what is reached through it, in words
};

// What `conduit call` was asked.
struct CommandLineCall {
  std::string uri;
  std::string method;   // empty with --list
  std::string params;   // the request as the command line writes it, or empty
  bool list = false;    // --list: the server's methods
  bool notify = false;  // --notify: no reply wanted
  std::chrono::milliseconds timeout{30'000};
};

// Exit codes of `conduit call`, the same for every protocol.
enum class CallExit : int {
  ok = 0,
  server_error = 1,  // the server answered with an error (or no reply came)
  usage = 2,         // a local mistake or an unreachable server: no call made
};

// Moves bytes through a protocol's echo for `conduit compare`.
class EchoClient {
 public:
  virtual ~EchoClient() = default;
  // Sends `message` through the server's echo and fills `into` (of the same
  // size) with what came back. Throws Error when the call fails or the echo
  // is not the message.
  virtual void echo(std::span<const std::byte> message, std::span<std::byte> into) = 0;
  // Bytes written and read so far, framing included; 0 when unknown.
  virtual std::uint64_t bytes_on_wire() const { return 0; }
};

// A transport `conduit compare` measures a protocol on.
struct CompareRoute {
  std::string key;        // "tcp": the row is "<protocol>-tcp"
  std::string transport;  // "HTTP/2 over TCP (h2c)", the transport column
  // Where the server listens: "tcp", "unix" or "shm" (and the raw loop
  // beside it runs on the same).
  std::string listens_on;
  // The client URI for the address the server's listen() returned.
  std::function<std::string(const std::string& bound)> client_uri;
};

// What a claim's judge reads of a `conduit compare` run.
class ComparisonFigures {
 public:
  virtual ~ComparisonFigures() = default;
  // The 64-byte round trip p50 (us) of a row ("NAME-unix") through conduit,
  // and of the raw loop beside it; std::nullopt when not measured.
  virtual std::optional<double> p50_us(std::string_view row) const = 0;
  virtual std::optional<double> raw_p50_us(std::string_view row) const = 0;
  // The row's transport column ("HTTP/2 over a UNIX socket").
  virtual std::string transport(std::string_view row) const = 0;
  // Payload MB/s of two rows at the largest message size both carried.
  struct Throughputs {
    std::size_t size = 0;
    double first = 0, second = 0;
  };
  virtual std::optional<Throughputs> largest_common_throughput(std::string_view first,
                                                               std::string_view second) const = 0;
  // As the report writes them: "8.10 us", "64 KiB".
  virtual std::string microseconds(double value) const = 0;
  virtual std::string size(std::size_t bytes) const = 0;
};

// A claim of the document conduit grew from that a protocol's rows answer.
struct Claim {
  std::string text;  // as the document puts it
  struct Verdict {
    std::string verdict;  // "yes", "no", "partly", "not measured"
    std::string reason;
  };
  std::function<Verdict(const ComparisonFigures&)> judge;
};

class Protocol {
 public:
  virtual ~Protocol() = default;
  Protocol() = default;
  Protocol(const Protocol&) = delete;
  Protocol& operator=(const Protocol&) = delete;

  // Short and lower case: CallContext::protocol, compare's row keys.
  virtual std::string_view name() const = 0;
  // As people write it: for help texts and compare's tables.
  virtual std::string_view title() const = 0;

  // ---- the server half ----
  // Recognisers of a connection's first bytes, tried in table order before
  // HTTP/1.1.
  virtual std::vector<std::unique_ptr<StreamProtocol>> stream_protocols() const { return {}; }
  // The recogniser of a shared-memory link's first message, if the protocol
  // is spoken in whole messages there (else its stream protocol is).
  virtual std::unique_ptr<MessageProtocol> message_protocol() const { return nullptr; }
  // Routes the HTTP/1.1 front end serves for it.
  virtual std::vector<http1::Route> http_routes() const { return {}; }
  // Flags of `conduit serve` for its options.
  virtual std::vector<ServeFlag> serve_flags() const { return {}; }
  // A line for `conduit serve --help`: how a client reaches it.
  virtual std::string serve_summary() const = 0;

  // ---- the client half ----
  virtual std::vector<UriForm> client_uris() const = 0;
  // Whether `uri` is one of client_uris().
  virtual bool takes_uri(std::string_view uri) const = 0;
  // A channel to the server at `uri`. Throws InvalidUri.
  virtual std::unique_ptr<ClientChannel> make_channel(std::string_view uri,
                                                      std::chrono::milliseconds timeout) const = 0;
  // `conduit call`: requests a call streams come from `in`; prints the
  // result on `out`, errors on `err`.
  virtual CallExit call_from_command_line(const CommandLineCall& call, std::istream& in,
                                          std::ostream& out, std::ostream& err) const = 0;

  // ---- conduit compare ----
  virtual std::vector<CompareRoute> compare_routes() const { return {}; }
  // The document's claims about this protocol, judged from a run's rows.
  virtual std::vector<Claim> claims() const { return {}; }
  // A client of the echo served by conduit's compare server (which has the
  // interop services) at `uri`.
  virtual std::unique_ptr<EchoClient> make_echo_client(const std::string& uri) const {
    (void)uri;
    return nullptr;
  }
};

// Every registered protocol, in table order: those of the table
// (protocols/protocol_table.cpp), then those registered since.
const std::vector<std::unique_ptr<Protocol>>& protocols();

// Adds a protocol after the table's (a test's own, or an application's).
// REQUIRES: no server has started and nothing has read the tables derived
// from the protocols yet (stream_protocols, message_protocols, http_routes),
// i.e. call it before main() or first thing in it. Throws Error when a
// protocol of the same name is there, or when it is too late.
void register_protocol(std::unique_ptr<Protocol> protocol);

// The protocol whose client takes `uri`; nullptr when none does.
const Protocol* protocol_for_uri(std::string_view uri);

// Every client URI form of every protocol, one per line, for --help texts
// and errors.
std::string client_uri_forms();

// ---- what the server core builds from the table ----

// Every recogniser of first bytes: each protocol's, then HTTP/1.1's front
// end when any protocol has routes.
const std::vector<std::unique_ptr<StreamProtocol>>& stream_protocols();
const std::vector<std::unique_ptr<MessageProtocol>>& message_protocols();
// Every protocol's HTTP/1.1 routes.
const std::vector<http1::Route>& http_routes();

}  // namespace conduit::rpc
