// `conduit call grpc://...`: any method of any gRPC server that offers
// server reflection, with proto3 JSON in and out (as grpcurl does).
#include "cli/grpc_call.hpp"

#include <fmt/core.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/descriptor_database.h>
#include <google/protobuf/dynamic_message.h>

#include <cstdio>
#include <iostream>
#include <memory>
#include <set>
#include <vector>

#include "conduit/error.hpp"
#include "conduit/rpc/grpc_channel.hpp"
#include "conduit/rpc/service.hpp"
#include "grpc/reflection/v1/reflection.pb.h"
#include "grpc/reflection/v1alpha/reflection.pb.h"
#include "rpc/protocols/jsonrpc/json_document.hpp"
#include "rpc/protocols/jsonrpc/proto_json.hpp"

namespace conduit::cli {

namespace {

namespace pb = google::protobuf;
using rpc::Status;
using rpc::StatusCode;

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

// "grpc://HOST:PORT" → "HOST:PORT"; "grpc+unix:/path" → "unix:/path";
// "grpc+shm:/path" → "shm:/path" (a conduit server's shm: listener).
std::string grpc_target(const std::string& uri) {
  if (uri.rfind("grpc://", 0) == 0) return uri.substr(7);
  if (uri.rfind("grpc+unix:", 0) == 0 || uri.rfind("grpc+shm:", 0) == 0) return uri.substr(5);
  throw InvalidUri(uri + ": expected grpc://HOST:PORT, grpc+unix:/path or grpc+shm:/path");
}

// Asks the server's reflection service, v1 first and v1alpha when the
// server has only that.
class Reflection {
 public:
  Reflection(rpc::GrpcChannel& channel, std::chrono::milliseconds timeout)
      : channel_(channel), timeout_(timeout) {}

  std::vector<std::string> services() {
    ::grpc::reflection::v1::ServerReflectionRequest request;
    request.set_list_services("");
    auto response = ask(request);
    std::vector<std::string> names;
    for (const auto& service : response.list_services_response().service())
      names.push_back(service.name());
    return names;
  }

  // The files defining `symbol`, with their imports, into the database.
  void load_symbol(const std::string& symbol) {
    ::grpc::reflection::v1::ServerReflectionRequest request;
    request.set_file_containing_symbol(symbol);
    auto response = ask(request);
    if (response.has_error_response())
      throw Error("the server does not know " + symbol + ": " +
                  response.error_response().error_message());
    for (const std::string& bytes : response.file_descriptor_response().file_descriptor_proto()) {
      pb::FileDescriptorProto file;
      if (!file.ParseFromString(bytes)) throw ProtocolError("reflection sent a malformed file");
      if (loaded_.insert(file.name()).second) database_.Add(file);
    }
  }

  pb::DescriptorPool& pool() { return pool_; }

 private:
  ::grpc::reflection::v1::ServerReflectionResponse ask(
      const ::grpc::reflection::v1::ServerReflectionRequest& request) {
    // Both versions have the same messages, field for field.
    for (const char* service : {"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                                "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"}) {
      std::vector<std::string> responses;
      Status status =
          channel_.call_stream_raw(service, {request.SerializeAsString()}, responses, timeout_);
      if (status.code() == StatusCode::unimplemented) continue;
      if (!status.ok()) throw rpc::RpcError(status);
      ::grpc::reflection::v1::ServerReflectionResponse response;
      if (responses.size() != 1 || !response.ParseFromString(responses.front()))
        throw ProtocolError("reflection answered with something other than one response");
      return response;
    }
    throw rpc::RpcError({StatusCode::unimplemented,
                         "the server offers no reflection (grpc.reflection.v1 or v1alpha), so "
                         "conduit cannot learn its methods' types"});
  }

  rpc::GrpcChannel& channel_;
  std::chrono::milliseconds timeout_;
  pb::SimpleDescriptorDatabase database_;
  pb::DescriptorPool pool_{&database_};
  std::set<std::string> loaded_;
};

std::string signature(const pb::MethodDescriptor& method) {
  return fmt::format("{}({}{}) returns ({}{})", method.name(),
                     method.client_streaming() ? "stream " : "", method.input_type()->full_name(),
                     method.server_streaming() ? "stream " : "", method.output_type()->full_name());
}

int list(rpc::GrpcChannel& channel, std::chrono::milliseconds timeout) {
  Reflection reflection(channel, timeout);
  for (const std::string& name : reflection.services()) {
    fmt::print("{}\n", name);
    reflection.load_symbol(name);
    const pb::ServiceDescriptor* service = reflection.pool().FindServiceByName(name);
    if (service == nullptr) continue;
    for (int i = 0; i < service->method_count(); ++i)
      fmt::print("  {}\n", signature(*service->method(i)));
  }
  return kExitOk;
}

int call(rpc::GrpcChannel& channel, const std::string& method_name, const std::string& params,
         std::chrono::milliseconds timeout) {
  std::string dotted = method_name;
  if (!dotted.empty() && dotted.front() == '/') dotted.erase(0, 1);
  const auto slash = dotted.rfind('/');
  if (slash != std::string::npos) dotted[slash] = '.';
  const auto dot = dotted.rfind('.');
  if (dot == std::string::npos || dot == 0)
    throw InvalidUri(method_name + ": name the method as package.Service/Method");
  Reflection reflection(channel, timeout);
  reflection.load_symbol(dotted.substr(0, dot));
  const pb::MethodDescriptor* method = reflection.pool().FindMethodByName(dotted);
  if (method == nullptr) throw Error("the server has no method " + method_name);

  pb::DynamicMessageFactory factory(&reflection.pool());
  const pb::Message& request_type = *factory.GetPrototype(method->input_type());
  const pb::Message& response_type = *factory.GetPrototype(method->output_type());
  auto encode = [&](const std::string& text) {
    std::unique_ptr<pb::Message> request(request_type.New());
    // Read as JSON-RPC reads params: an object by field name, an array by
    // position, any JSON for a Value.
    const rpc::jsonrpc::JsonDocument document(text, rpc::jsonrpc::kMaxMappingDepth);
    if (!document.ok()) throw Error("the request is not valid JSON: " + document.error());
    if (Status parsed = rpc::jsonrpc::params_to_message(&document.root(), *request); !parsed.ok())
      throw Error("the request does not fit " + method->input_type()->full_name() + ": " +
                  parsed.message());
    return request->SerializeAsString();
  };
  // Requests go as they are read (a client stream: one per line of standard
  // input), responses are printed as they arrive, a line each, flushed.
  const bool from_stdin = params.empty() && method->client_streaming();
  // A request that does not fit is refused before the call begins.
  const std::string only = from_stdin ? "" : encode(params.empty() ? "{}" : params);
  rpc::GrpcChannel::Stream stream =
      channel.open("/" + method->service()->full_name() + "/" + method->name(), timeout);
  if (!from_stdin) {
    stream.write(only);
  } else {
    for (std::string line; std::getline(std::cin, line);) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      if (!stream.write(encode(line))) break;  // the call has ended: finish() says why
    }
  }
  stream.writes_done();
  for (std::string bytes; stream.read(bytes);) {
    std::unique_ptr<pb::Message> response(response_type.New());
    if (!response->ParseFromString(bytes))
      throw ProtocolError("a response is not a valid " + method->output_type()->full_name());
    fmt::print("{}\n", rpc::jsonrpc::message_to_json(*response));
    std::fflush(stdout);
  }
  const Status status = stream.finish();
  if (!status.ok()) {
    fmt::print(stderr, "conduit call: {}\n", status.to_string());
    return status.code() == StatusCode::unavailable ? kExitUsage : kExitFailure;
  }
  return kExitOk;
}

}  // namespace

bool is_grpc_uri(const std::string& uri) {
  return uri.rfind("grpc://", 0) == 0 || uri.rfind("grpc+unix:", 0) == 0 ||
         uri.rfind("grpc+shm:", 0) == 0;
}

int grpc_call(const std::string& uri, const std::string& method, const std::string& params,
              bool list_only, std::chrono::milliseconds timeout) {
  try {
    rpc::GrpcChannel channel(grpc_target(uri), timeout);
    if (list_only) return list(channel, timeout);
    if (method.empty()) throw InvalidUri("name a method (package.Service/Method), or use --list");
    return call(channel, method, params, timeout);
  } catch (const InvalidUri& error) {
    fmt::print(stderr, "conduit call: {}\n", error.what());
    return kExitUsage;
  } catch (const rpc::RpcError& error) {
    fmt::print(stderr, "conduit call: {}\n", error.what());
    return error.status().code() == StatusCode::unavailable ? kExitUsage : kExitFailure;
  } catch (const Error& error) {
    fmt::print(stderr, "conduit call: {}\n", error.what());
    return kExitFailure;
  }
}

}  // namespace conduit::cli
