#include "rpc/protocols/grpc/protocol.hpp"

#include <google/protobuf/wrappers.pb.h>

#include <cstdio>
#include <cstring>

#include "conduit/error.hpp"
#include "conduit/rpc/grpc_channel.hpp"
#include "rpc/protocols/grpc/command_line.hpp"
#include "rpc/protocols/grpc/server_protocol.hpp"

namespace conduit::rpc::grpc {

namespace {

// conduit compare's echo: each message is the bytes of a BytesValue sent to
// conduit.interop.Echo/bytes, and comes back the same way.
class BytesEcho final : public EchoClient {
 public:
  explicit BytesEcho(const std::string& uri)
      : channel_(channel_target(uri), std::chrono::seconds(20)) {}

  void echo(std::span<const std::byte> message, std::span<std::byte> into) override {
    google::protobuf::BytesValue request;
    request.set_value(reinterpret_cast<const char*>(message.data()), message.size());
    request_ = request.SerializeAsString();
    const Status status = channel_.call_raw("/conduit.interop.Echo/bytes", request_, response_,
                                            std::chrono::seconds(20));
    if (!status.ok()) throw Error("the gRPC echo failed: " + status.to_string());
    google::protobuf::BytesValue echoed;
    if (!echoed.ParseFromString(response_) || echoed.value().size() != message.size())
      throw Error("the gRPC echo's response is not the message sent");
    std::memcpy(into.data(), echoed.value().data(), message.size());
  }

 private:
  GrpcChannel channel_;
  std::string request_, response_;
};

std::int64_t milliseconds(std::chrono::milliseconds value) {
  return value.count();
}

class Grpc final : public Protocol {
 public:
  std::string_view name() const override { return kName; }
  std::string_view title() const override { return "gRPC"; }

  std::vector<std::unique_ptr<StreamProtocol>> stream_protocols() const override {
    std::vector<std::unique_ptr<StreamProtocol>> all;
    all.push_back(make_stream_protocol());
    return all;
  }

  std::vector<ServeFlag> serve_flags() const override {
    return {
        {"--grpc-max-message-size", "Largest gRPC request message in bytes",
         ServeFlag::Check::positive,
         [](const ServerOptions& o) { return static_cast<std::int64_t>(o.grpc.max_message_bytes); },
         [](ServerOptions& o, std::int64_t v) {
           o.grpc.max_message_bytes = static_cast<std::size_t>(v);
         }},
        {"--grpc-keepalive-time",
         "Milliseconds of silence after which a gRPC connection is sent a PING",
         ServeFlag::Check::positive,
         [](const ServerOptions& o) { return milliseconds(o.grpc.keepalive_time); },
         [](ServerOptions& o, std::int64_t v) {
           o.grpc.keepalive_time = std::chrono::milliseconds(v);
         }},
        {"--grpc-keepalive-timeout",
         "Milliseconds a keepalive PING's ACK has before the connection closes",
         ServeFlag::Check::positive,
         [](const ServerOptions& o) { return milliseconds(o.grpc.keepalive_timeout); },
         [](ServerOptions& o, std::int64_t v) {
           o.grpc.keepalive_timeout = std::chrono::milliseconds(v);
         }},
        {"--grpc-min-ping-interval",
         "Milliseconds a gRPC client's PINGs must be apart while no response\n"
         "data flows; after 2 strikes, GOAWAY ENHANCE_YOUR_CALM (too_many_pings)",
         ServeFlag::Check::non_negative,
         [](const ServerOptions& o) { return milliseconds(o.grpc.min_ping_interval); },
         [](ServerOptions& o, std::int64_t v) {
           o.grpc.min_ping_interval = std::chrono::milliseconds(v);
         }},
        {"--grpc-stream-buffer",
         "Request bytes a gRPC streaming call may hold that its handler has not\n"
         "read; beyond, the client waits (flow control) until the handler reads",
         ServeFlag::Check::positive,
         [](const ServerOptions& o) {
           return static_cast<std::int64_t>(o.grpc.stream_buffer_bytes);
         },
         [](ServerOptions& o, std::int64_t v) {
           o.grpc.stream_buffer_bytes = static_cast<std::size_t>(v);
         }},
        {"--grpc-connection-buffer",
         "Request bytes one gRPC connection may hold across its calls that no\n"
         "handler has taken; a call beyond ends RESOURCE_EXHAUSTED",
         ServeFlag::Check::positive,
         [](const ServerOptions& o) {
           return static_cast<std::int64_t>(o.grpc.connection_buffer_bytes);
         },
         [](ServerOptions& o, std::int64_t v) {
           o.grpc.connection_buffer_bytes = static_cast<std::size_t>(v);
         }},
    };
  }

  std::string serve_summary() const override {
    return "gRPC: HTTP/2 with prior knowledge (h2c) on any listener, shm+unix: included";
  }

  std::vector<UriForm> client_uris() const override {
    return {{"grpc://HOST:PORT", "gRPC over TCP (h2c; methods from server reflection)"},
            {"grpc+unix:/path", "gRPC over a UNIX socket"},
            {"grpc+shm+unix:/path", "gRPC over shared memory"}};
  }

  bool takes_uri(std::string_view uri) const override {
    return uri.starts_with("grpc://") || uri.starts_with("grpc+unix:") ||
           uri.starts_with("grpc+shm+unix:");
  }

  std::unique_ptr<ClientChannel> make_channel(std::string_view uri,
                                              std::chrono::milliseconds timeout) const override {
    return std::make_unique<GrpcChannel>(channel_target(uri), timeout);
  }

  CallExit call_from_command_line(const CommandLineCall& call, std::istream& in, std::ostream& out,
                                  std::ostream& err) const override {
    return grpc::call_from_command_line(call, in, out, err);
  }

  std::vector<CompareRoute> compare_routes() const override {
    return {{"tcp", "HTTP/2 over TCP (h2c)", "tcp",
             [](const std::string& bound) { return "grpc://" + bound.substr(6); }},
            {"unix", "HTTP/2 over a UNIX socket", "unix",
             [](const std::string& bound) { return "grpc+" + bound; }},
            {"shm", "HTTP/2 over shared memory", "shm",
             [](const std::string& bound) { return "grpc+" + bound; }}};
  }

  std::unique_ptr<EchoClient> make_echo_client(const std::string& uri) const override {
    return std::make_unique<BytesEcho>(uri);
  }

  std::vector<Claim> claims() const override {
    // Against the raw socket's round trip beside it, the rows' own baseline.
    return {{"gRPC: fast", [](const ComparisonFigures& figures) -> Claim::Verdict {
               std::string row = "grpc-unix";
               if (!figures.p50_us(row) || !figures.raw_p50_us(row)) row = "grpc-tcp";
               const auto call = figures.p50_us(row), raw = figures.raw_p50_us(row);
               if (!call || !raw)
                 return {"not measured", "gRPC with its raw baseline not in this run"};
               char ratio[32];
               std::snprintf(ratio, sizeof ratio, "%.2fx", *call / *raw);
               return {*call <= 2 * *raw ? "yes" : "partly",
                       "a gRPC echo (" + figures.transport(row) + ") " +
                           figures.microseconds(*call) + " p50, " + ratio +
                           " the raw round trip of " + figures.microseconds(*raw)};
             }}};
  }
};

}  // namespace

std::unique_ptr<Protocol> make_protocol() {
  return std::make_unique<Grpc>();
}

}  // namespace conduit::rpc::grpc
