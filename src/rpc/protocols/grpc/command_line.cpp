// `conduit call grpc://...`: any method of any gRPC server that offers
// server reflection, with proto3 JSON in and out (as grpcurl does).
#include "rpc/protocols/grpc/command_line.hpp"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/descriptor_database.h>
#include <google/protobuf/dynamic_message.h>

#include <istream>
#include <memory>
#include <ostream>
#include <set>
#include <vector>

#include "conduit/error.hpp"
#include "conduit/rpc/grpc_channel.hpp"
#include "conduit/rpc/service.hpp"
#include "grpc/reflection/v1/reflection.pb.h"
#include "grpc/reflection/v1alpha/reflection.pb.h"
#include "rpc/protocols/jsonrpc/json_document.hpp"
#include "rpc/protocols/jsonrpc/proto_json.hpp"

namespace conduit::rpc::grpc {

namespace {

namespace pb = google::protobuf;

// Asks the server's reflection service, v1 first and v1alpha when the
// server has only that.
class Reflection {
 public:
  Reflection(GrpcChannel& channel, std::chrono::milliseconds timeout)
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
      if (!status.ok()) throw RpcError(status);
      ::grpc::reflection::v1::ServerReflectionResponse response;
      if (responses.size() != 1 || !response.ParseFromString(responses.front()))
        throw ProtocolError("reflection answered with something other than one response");
      return response;
    }
    throw RpcError({StatusCode::unimplemented,
                    "the server offers no reflection (grpc.reflection.v1 or v1alpha), so "
                    "conduit cannot learn its methods' types"});
  }

  GrpcChannel& channel_;
  std::chrono::milliseconds timeout_;
  pb::SimpleDescriptorDatabase database_;
  pb::DescriptorPool pool_{&database_};
  std::set<std::string> loaded_;
};

std::string signature(const pb::MethodDescriptor& method) {
  return method.name() + "(" + (method.client_streaming() ? "stream " : "") +
         method.input_type()->full_name() + ") returns (" +
         (method.server_streaming() ? "stream " : "") + method.output_type()->full_name() + ")";
}

CallExit list(GrpcChannel& channel, std::chrono::milliseconds timeout, std::ostream& out) {
  Reflection reflection(channel, timeout);
  for (const std::string& name : reflection.services()) {
    out << name << "\n";
    reflection.load_symbol(name);
    const pb::ServiceDescriptor* service = reflection.pool().FindServiceByName(name);
    if (service == nullptr) continue;
    for (int i = 0; i < service->method_count(); ++i)
      out << "  " << signature(*service->method(i)) << "\n";
  }
  return CallExit::ok;
}

CallExit call(GrpcChannel& channel, const std::string& method_name, const std::string& params,
              std::chrono::milliseconds timeout, std::istream& in, std::ostream& out,
              std::ostream& err) {
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
    const jsonrpc::JsonDocument document(text, jsonrpc::kMaxMappingDepth);
    if (!document.ok()) throw InvalidArgument("the request is not valid JSON: " + document.error());
    if (Status parsed = jsonrpc::params_to_message(&document.root(), *request); !parsed.ok())
      throw InvalidArgument("the request does not fit " + method->input_type()->full_name() + ": " +
                            parsed.message());
    return request->SerializeAsString();
  };
  // Requests go as they are read (a client stream: one per line of standard
  // input), responses are printed as they arrive, a line each, flushed.
  const bool from_stdin = params.empty() && method->client_streaming();
  // A request that does not fit is refused before the call begins.
  const std::string only = from_stdin ? "" : encode(params.empty() ? "{}" : params);
  GrpcChannel::Stream stream =
      channel.open("/" + method->service()->full_name() + "/" + method->name(), timeout);
  if (!from_stdin) {
    stream.write(only);
  } else {
    for (std::string line; std::getline(in, line);) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      if (!stream.write(encode(line))) break;  // the call has ended: finish() says why
    }
  }
  stream.writes_done();
  for (std::string bytes; stream.read(bytes);) {
    std::unique_ptr<pb::Message> response(response_type.New());
    if (!response->ParseFromString(bytes))
      throw ProtocolError("a response is not a valid " + method->output_type()->full_name());
    // Flushed: responses show as they come.
    out << jsonrpc::message_to_json(*response) << std::endl;
  }
  const Status status = stream.finish();
  if (!status.ok()) {
    err << "conduit call: " << status.to_string() << "\n";
    return status.code() == StatusCode::unavailable ? CallExit::usage : CallExit::server_error;
  }
  return CallExit::ok;
}

}  // namespace

std::string channel_target(std::string_view uri) {
  if (uri.starts_with("grpc://")) return std::string(uri.substr(7));
  if (uri.starts_with("grpc+unix:") || uri.starts_with("grpc+shm+unix:"))
    return std::string(uri.substr(5));
  throw InvalidUri(std::string(uri) +
                   ": expected grpc://HOST:PORT, grpc+unix:/path or grpc+shm+unix:/path");
}

CallExit call_from_command_line(const CommandLineCall& request, std::istream& in, std::ostream& out,
                                std::ostream& err) {
  try {
    GrpcChannel channel(channel_target(request.uri), request.timeout);
    if (request.notify)
      throw InvalidUri("--notify is JSON-RPC's; a gRPC call always has an answer");
    if (request.list) return list(channel, request.timeout, out);
    if (request.method.empty())
      throw InvalidUri("name a method (package.Service/Method), or use --list");
    return call(channel, request.method, request.params, request.timeout, in, out, err);
  } catch (const InvalidUri& error) {
    err << "conduit call: " << error.what() << "\n";
    return CallExit::usage;
  } catch (const InvalidArgument& error) {
    err << "conduit call: " << error.what() << "\n";
    return CallExit::usage;
  } catch (const RpcError& error) {
    err << "conduit call: " << error.what() << "\n";
    return error.status().code() == StatusCode::unavailable ? CallExit::usage
                                                            : CallExit::server_error;
  } catch (const Error& error) {
    err << "conduit call: " << error.what() << "\n";
    return CallExit::server_error;
  }
}

}  // namespace conduit::rpc::grpc
