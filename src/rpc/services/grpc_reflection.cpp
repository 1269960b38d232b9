#include "conduit/rpc/grpc_reflection.hpp"

#include <google/protobuf/descriptor.pb.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "grpc/reflection/v1/reflection.pb.h"
#include "grpc/reflection/v1alpha/reflection.pb.h"

namespace conduit::rpc {

namespace {

namespace pb = google::protobuf;

// The descriptor pools the table's services come from (the generated one,
// and those of dynamic methods).
std::vector<const pb::DescriptorPool*> pools_of(const ServiceTable& table) {
  std::vector<const pb::DescriptorPool*> pools;
  for (const Method* method : table.methods()) {
    const pb::DescriptorPool* pool = method->descriptor().file()->pool();
    if (std::find(pools.begin(), pools.end(), pool) == pools.end()) pools.push_back(pool);
  }
  return pools;
}

// `file` and, before it, every file it imports (each once), serialized.
void add_with_imports(const pb::FileDescriptor& file, std::set<std::string>& seen,
                      std::vector<std::string>& out) {
  if (!seen.insert(file.name()).second) return;
  pb::FileDescriptorProto proto;
  file.CopyTo(&proto);
  out.push_back(proto.SerializeAsString());
  for (int i = 0; i < file.dependency_count(); ++i) add_with_imports(*file.dependency(i), seen, out);
}

// One version of the protocol: Request and Response are that version's
// ServerReflectionRequest and ServerReflectionResponse.
template <typename Request, typename Response>
Status serve_reflection(const ServiceTable& table, CallContext&, StreamReader<Request>& requests,
                        StreamWriter<Response>& responses) {
  Request request;
  while (requests.read(request)) {
    Response response;
    response.set_valid_host(request.host());
    *response.mutable_original_request() = request;
    auto not_found = [&](const std::string& what) {
      response.mutable_error_response()->set_error_code(static_cast<int>(StatusCode::not_found));
      response.mutable_error_response()->set_error_message(what + " not found");
    };
    auto send_file = [&](const pb::FileDescriptor* file, const std::string& what) {
      if (file == nullptr) return not_found(what);
      std::set<std::string> seen;
      std::vector<std::string> files;
      add_with_imports(*file, seen, files);
      auto& descriptors = *response.mutable_file_descriptor_response();
      for (auto& bytes : files) descriptors.add_file_descriptor_proto(std::move(bytes));
    };
    const auto pools = pools_of(table);
    switch (request.message_request_case()) {
      case Request::kListServices: {
        std::set<std::string> names;
        for (const Method* method : table.methods())
          names.insert(method->descriptor().service()->full_name());
        for (const std::string& name : names)
          response.mutable_list_services_response()->add_service()->set_name(name);
        break;
      }
      case Request::kFileByFilename: {
        const pb::FileDescriptor* file = nullptr;
        for (const auto* pool : pools)
          if ((file = pool->FindFileByName(request.file_by_filename())) != nullptr) break;
        send_file(file, "file " + request.file_by_filename());
        break;
      }
      case Request::kFileContainingSymbol: {
        const pb::FileDescriptor* file = nullptr;
        for (const auto* pool : pools)
          if ((file = pool->FindFileContainingSymbol(request.file_containing_symbol())) != nullptr)
            break;
        send_file(file, "symbol " + request.file_containing_symbol());
        break;
      }
      case Request::kFileContainingExtension: {
        const auto& asked = request.file_containing_extension();
        const pb::FieldDescriptor* extension = nullptr;
        for (const auto* pool : pools) {
          if (const pb::Descriptor* type = pool->FindMessageTypeByName(asked.containing_type()))
            if ((extension = pool->FindExtensionByNumber(type, asked.extension_number())) != nullptr)
              break;
        }
        send_file(extension ? extension->file() : nullptr,
                  "extension " + std::to_string(asked.extension_number()) + " of " +
                      asked.containing_type());
        break;
      }
      case Request::kAllExtensionNumbersOfType: {
        const std::string& name = request.all_extension_numbers_of_type();
        bool found = false;
        for (const auto* pool : pools) {
          const pb::Descriptor* type = pool->FindMessageTypeByName(name);
          if (type == nullptr) continue;
          found = true;
          auto& numbers = *response.mutable_all_extension_numbers_response();
          numbers.set_base_type_name(name);
          std::vector<const pb::FieldDescriptor*> extensions;
          pool->FindAllExtensions(type, &extensions);
          for (const auto* extension : extensions) numbers.add_extension_number(extension->number());
          break;
        }
        if (!found) not_found("type " + name);
        break;
      }
      default:
        response.mutable_error_response()->set_error_code(
            static_cast<int>(StatusCode::invalid_argument));
        response.mutable_error_response()->set_error_message("an empty or unknown request");
        break;
    }
    if (!responses.write(response)) return {StatusCode::cancelled, "the client went away"};
  }
  return {};
}

template <typename Request, typename Response>
void add_version(ServiceTable& table, const std::string& service) {
  table.add_bidi_stream<Request, Response>(
      service + "/ServerReflectionInfo",
      [&table](CallContext& context, StreamReader<Request>& requests,
               StreamWriter<Response>& responses) {
        return serve_reflection(table, context, requests, responses);
      });
}

}  // namespace

void add_grpc_reflection(ServiceTable& table) {
  add_version<::grpc::reflection::v1::ServerReflectionRequest,
              ::grpc::reflection::v1::ServerReflectionResponse>(
      table, "grpc.reflection.v1.ServerReflection");
  add_version<::grpc::reflection::v1alpha::ServerReflectionRequest,
              ::grpc::reflection::v1alpha::ServerReflectionResponse>(
      table, "grpc.reflection.v1alpha.ServerReflection");
}

}  // namespace conduit::rpc
