#include "rpc/protocols/jsonrpc/protocol.hpp"

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ostream>

#include "conduit/error.hpp"
#include "conduit/rpc/jsonrpc_client.hpp"
#include "rpc/protocols/jsonrpc/server_protocols.hpp"

namespace conduit::rpc::jsonrpc {

namespace {

// The two hex digits of each byte, and the value of each hex digit (-1 for
// what is not one): the echo's hex step costs a table look-up a byte.
constexpr auto kHexPairs = [] {
  constexpr char kHex[] = "0123456789abcdef";
  std::array<std::array<char, 2>, 256> pairs{};
  for (unsigned b = 0; b < 256; ++b) pairs[b] = {kHex[b >> 4], kHex[b & 15]};
  return pairs;
}();
constexpr auto kHexValues = [] {
  std::array<std::int8_t, 256> values{};
  values.fill(-1);
  for (int d = 0; d < 10; ++d) values['0' + d] = static_cast<std::int8_t>(d);
  for (int d = 0; d < 6; ++d) values['a' + d] = static_cast<std::int8_t>(10 + d);
  return values;
}();

// conduit compare's echo: each message goes out as `echo`'s one string param
// (hex, since the messages are bytes) and comes back the same way.
class HexEcho final : public EchoClient {
 public:
  explicit HexEcho(const std::string& uri) : client_(uri, std::chrono::seconds(20)) {}

  void echo(std::span<const std::byte> message, std::span<std::byte> into) override {
    // ["hex"], written into place: two digits a byte from one table.
    const std::size_t size = message.size();
    params_.resize(size * 2 + 4);
    char* out = params_.data();
    out[0] = '[';
    out[1] = '"';
    for (std::size_t i = 0; i < size; ++i)
      std::memcpy(out + 2 + 2 * i, kHexPairs[std::to_integer<unsigned>(message[i])].data(), 2);
    out[size * 2 + 2] = '"';
    out[size * 2 + 3] = ']';
    const std::string result = client_.call("echo", params_);
    // The echo of ["hex"] is ["hex"].
    if (result.size() != size * 2 + 4 || result.compare(0, 2, "[\"") != 0)
      throw Error("the echo's result is not the params sent: " + result.substr(0, 80));
    const auto* digits = reinterpret_cast<const unsigned char*>(result.data() + 2);
    int bad = 0;  // negative once a digit is not hex
    for (std::size_t i = 0; i < size; ++i) {
      const int high = kHexValues[digits[2 * i]];
      const int low = kHexValues[digits[2 * i + 1]];
      bad |= high | low;
      into[i] = static_cast<std::byte>(high << 4 | low);
    }
    if (bad < 0) throw Error("the echo's result is not hex");
  }

  std::uint64_t bytes_on_wire() const override {
    return client_.bytes_sent() + client_.bytes_received();
  }

 private:
  JsonRpcClient client_;
  std::string params_;
};

class JsonRpc final : public Protocol {
 public:
  std::string_view name() const override { return kName; }
  std::string_view title() const override { return "JSON-RPC 2.0"; }

  std::vector<std::unique_ptr<StreamProtocol>> stream_protocols() const override {
    return jsonrpc::stream_protocols();
  }
  std::unique_ptr<MessageProtocol> message_protocol() const override {
    return jsonrpc::message_protocol();
  }
  std::vector<http1::Route> http_routes() const override { return jsonrpc::http_routes(); }

  std::vector<ServeFlag> serve_flags() const override {
    return {
        {"--jsonrpc-max-depth", "Deepest nesting of arrays and objects a JSON-RPC request may have",
         ServeFlag::Check::positive,
         [](const ServerOptions& options) { return std::int64_t{options.jsonrpc.max_depth}; },
         [](ServerOptions& options, std::int64_t value) {
           options.jsonrpc.max_depth = static_cast<int>(value);
         }},
        {"--jsonrpc-max-batch", "Most requests one JSON-RPC batch may hold",
         ServeFlag::Check::positive,
         [](const ServerOptions& options) {
           return static_cast<std::int64_t>(options.jsonrpc.max_batch);
         },
         [](ServerOptions& options, std::int64_t value) {
           options.jsonrpc.max_batch = static_cast<std::size_t>(value);
         }},
    };
  }

  std::string serve_summary() const override {
    return "JSON-RPC 2.0: HTTP/1.1 POST /jsonrpc (or /), one JSON text per line, Content-Length\n"
           "  framing (stdio), one text per message over shm+unix:";
  }

  std::vector<UriForm> client_uris() const override {
    return {{"http://HOST:PORT/jsonrpc", "JSON-RPC 2.0 over HTTP/1.1"},
            {"tcp://HOST:PORT", "JSON-RPC 2.0, one text per line over TCP"},
            {"unix:/path", "JSON-RPC 2.0, one text per line over a UNIX socket"},
            {"shm+unix:/path", "JSON-RPC 2.0 over shared memory"}};
  }

  bool takes_uri(std::string_view uri) const override {
    return uri.starts_with("http://") || uri.starts_with("tcp://") || uri.starts_with("unix:") ||
           uri.starts_with("shm+unix:");
  }

  std::unique_ptr<ClientChannel> make_channel(std::string_view uri,
                                              std::chrono::milliseconds timeout) const override {
    return std::make_unique<JsonRpcChannel>(uri, timeout);
  }

  CallExit call_from_command_line(const CommandLineCall& call, std::istream&, std::ostream& out,
                                  std::ostream& err) const override {
    if (call.list) {
      err << "conduit: error: --list asks a gRPC server's reflection; JSON-RPC has no way to "
             "list methods\n";
      return CallExit::usage;
    }
    if (call.method.empty()) {
      err << "conduit: error: name the method to call\n";
      return CallExit::usage;
    }
    try {
      JsonRpcClient client(call.uri, call.timeout);
      if (call.notify) {
        client.notify(call.method, call.params);
        return CallExit::ok;
      }
      out << client.call(call.method, call.params) << "\n";
      return CallExit::ok;
    } catch (const JsonRpcError& error) {
      out << error.error_json() << "\n";
      return CallExit::server_error;
    } catch (const InvalidUri& error) {
      err << "conduit: error: " << error.what() << "\n";
      return CallExit::usage;
    } catch (const InvalidArgument& error) {
      err << "conduit: error: " << error.what() << "\n";
      return CallExit::usage;
    } catch (const SystemError& error) {
      err << "conduit: error: " << error.what() << "\n";
      return CallExit::usage;
    } catch (const Error& error) {
      err << "conduit: error: " << error.what() << "\n";
      return CallExit::server_error;
    }
  }

  std::vector<CompareRoute> compare_routes() const override {
    auto same = [](const std::string& bound) { return bound; };
    return {{"http", "HTTP/1.1 over TCP", "tcp",
             [](const std::string& bound) { return "http://" + bound.substr(6) + "/jsonrpc"; }},
            {"tcp", "TCP, one text per line", "tcp", same},
            {"unix", "UNIX socket, one text per line", "unix", same},
            {"shm", "shared memory", "shm", same}};
  }

  std::unique_ptr<EchoClient> make_echo_client(const std::string& uri) const override {
    return std::make_unique<HexEcho>(uri);
  }

  std::vector<Claim> claims() const override {
    // The same transport for both, so the difference is the encoding.
    return {{"JSON-RPC: less efficient than Protobuf",
             [](const ComparisonFigures& figures) -> Claim::Verdict {
               const auto pair = figures.largest_common_throughput("grpc-unix", "jsonrpc-unix");
               const auto grpc = figures.p50_us("grpc-unix"), json = figures.p50_us("jsonrpc-unix");
               if (!pair || !grpc || !json)
                 return {"not measured", "gRPC and JSON-RPC over a UNIX socket not in this run"};
               char rates[160];
               std::snprintf(rates, sizeof rates, "gRPC %.1f MB/s, JSON-RPC %.1f MB/s (%.1fx)",
                             pair->first, pair->second, pair->first / pair->second);
               const std::string figures_text = "over a UNIX socket, " + figures.size(pair->size) +
                                                " payloads: " + rates + "; 64 B round trips " +
                                                figures.microseconds(*grpc) + " (gRPC) vs " +
                                                figures.microseconds(*json) + " p50";
               const bool by_throughput = pair->first > pair->second, by_latency = *grpc < *json;
               if (by_throughput != by_latency)  // the verdict says which measure says what
                 return {"partly", std::string(by_throughput ? "by throughput yes, by latency no"
                                                             : "by latency yes, by throughput no") +
                                       ": " + figures_text};
               return {by_throughput ? "yes" : "no",
                       std::string("by throughput and latency alike: ") + figures_text};
             }}};
  }
};

}  // namespace

std::unique_ptr<Protocol> make_protocol() {
  return std::make_unique<JsonRpc>();
}

}  // namespace conduit::rpc::jsonrpc
