#include "conduit/rpc/service.hpp"

#include <google/protobuf/dynamic_message.h>

#include <exception>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "conduit/error.hpp"

namespace conduit::rpc {

namespace pb = google::protobuf;

// ---- Method ----

Method::Method(const pb::MethodDescriptor& descriptor, const pb::Message& request_prototype,
               const pb::Message& response_prototype, Handler handler)
    : descriptor_(&descriptor),
      request_prototype_(&request_prototype),
      response_prototype_(&response_prototype),
      handler_(std::move(handler)),
      full_name_(descriptor.service()->full_name() + "/" + descriptor.name()) {
  check_types();
  if (descriptor.client_streaming() || descriptor.server_streaming()) {
    throw Error("method " + full_name_ +
                " streams: add it with add_server_stream, add_client_stream or add_bidi_stream");
  }
  if (!handler_) throw Error("method " + full_name_ + " has no handler");
}

Method::Method(const pb::MethodDescriptor& descriptor, const pb::Message& request_prototype,
               const pb::Message& response_prototype, StreamHandler handler)
    : descriptor_(&descriptor),
      request_prototype_(&request_prototype),
      response_prototype_(&response_prototype),
      stream_handler_(std::move(handler)),
      full_name_(descriptor.service()->full_name() + "/" + descriptor.name()) {
  check_types();
  if (!descriptor.client_streaming() && !descriptor.server_streaming())
    throw Error("method " + full_name_ + " is unary: add it with add()");
  if (!stream_handler_) throw Error("method " + full_name_ + " has no handler");
}

void Method::check_types() const {
  if (request_prototype_->GetDescriptor() != descriptor_->input_type()) {
    throw Error("method " + full_name_ + " takes " + descriptor_->input_type()->full_name() +
                ", but its request prototype is " +
                request_prototype_->GetDescriptor()->full_name());
  }
  if (response_prototype_->GetDescriptor() != descriptor_->output_type()) {
    throw Error("method " + full_name_ + " returns " + descriptor_->output_type()->full_name() +
                ", but its response prototype is " +
                response_prototype_->GetDescriptor()->full_name());
  }
}

Status Method::invoke(CallContext& context, const pb::Message& request,
                      pb::Message& response) const {
  if (streams()) {
    return {StatusCode::unimplemented,
            full_name_ + " streams, and cannot be called with one request and one response"};
  }
  try {
    return handler_(context, request, response);
  } catch (const std::exception& error) {
    return {StatusCode::internal, error.what()};
  } catch (...) {
    return {StatusCode::internal,
            "the handler of " + full_name_ + " threw a non-standard exception"};
  }
}

Status Method::invoke_stream(CallContext& context, MessageReader& requests,
                             MessageWriter& responses) const {
  if (!streams()) return {StatusCode::internal, full_name_ + " is unary"};
  try {
    return stream_handler_(context, requests, responses);
  } catch (const std::exception& error) {
    return {StatusCode::internal, error.what()};
  } catch (...) {
    return {StatusCode::internal,
            "the handler of " + full_name_ + " threw a non-standard exception"};
  }
}

// ---- ServiceTable ----

struct ServiceTable::State {
  // Declared before `methods`, which point into it.
  pb::DynamicMessageFactory factory;
  // In the order they were added.
  std::vector<std::unique_ptr<Method>> methods;
  // Every name find() accepts (without a leading '/'): "package.Service/Method",
  // "package.Service.Method", and the bare "Method", which maps to nullptr
  // when more than one service has it. The three forms cannot collide: only
  // the first has a '/', and only the bare name has no '.'.
  // Hashed, and found by string_view without a copy: every call of every
  // protocol looks its method up here.
  struct NameHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view name) const noexcept {
      return std::hash<std::string_view>()(name);
    }
  };
  std::unordered_map<std::string, const Method*, NameHash, std::equal_to<>> names;

  const pb::Message& prototype(const pb::Descriptor& type) {
    if (type.file()->pool() == pb::DescriptorPool::generated_pool()) {
      // nullptr for a type of the generated pool whose class is not linked in.
      if (const pb::Message* generated =
              pb::MessageFactory::generated_factory()->GetPrototype(&type)) {
        return *generated;
      }
    }
    return *factory.GetPrototype(&type);
  }

  template <typename AnyHandler>
  void insert(const pb::MethodDescriptor& descriptor, const pb::Message& request,
              const pb::Message& response, AnyHandler handler) {
    auto method = std::make_unique<Method>(descriptor, request, response, std::move(handler));
    if (names.contains(method->full_name())) {
      throw Error("ServiceTable: method " + method->full_name() + " is already there");
    }
    const Method* added = method.get();
    names.emplace(added->full_name(), added);
    names.emplace(descriptor.full_name(), added);
    auto [bare, inserted] = names.emplace(descriptor.name(), added);
    if (!inserted) bare->second = nullptr;  // ambiguous
    methods.push_back(std::move(method));
  }
};

ServiceTable::ServiceTable() : state_(std::make_unique<State>()) {}

ServiceTable::~ServiceTable() = default;

namespace {

// A method of the generated pool by "package.Service/Method"; throws Error
// naming it when there is none.
const pb::MethodDescriptor& generated_method(const std::string& full_name) {
  // "package.Service/Method" as the pool spells it: "package.Service.Method".
  std::string pool_name = full_name;
  if (const auto slash = pool_name.rfind('/'); slash != std::string::npos) pool_name[slash] = '.';
  const pb::MethodDescriptor* descriptor =
      pb::DescriptorPool::generated_pool()->FindMethodByName(pool_name);
  if (descriptor == nullptr) {
    throw Error("ServiceTable::add(" + full_name +
                "): no such method in the generated descriptor pool (is its .pb.cc linked in?)");
  }
  return *descriptor;
}

}  // namespace

void ServiceTable::add_method(const std::string& full_name, const pb::Message& request,
                              const pb::Message& response, Handler handler) {
  state_->insert(generated_method(full_name), request, response, std::move(handler));
}

void ServiceTable::add_dynamic(const pb::MethodDescriptor& method, Handler handler) {
  state_->insert(method, state_->prototype(*method.input_type()),
                 state_->prototype(*method.output_type()), std::move(handler));
}

void ServiceTable::add_dynamic(const pb::MethodDescriptor& method, StreamHandler handler) {
  state_->insert(method, state_->prototype(*method.input_type()),
                 state_->prototype(*method.output_type()), std::move(handler));
}

void ServiceTable::add_stream_method(const std::string& full_name, const pb::Message& request,
                                     const pb::Message& response, StreamHandler handler) {
  state_->insert(generated_method(full_name), request, response, std::move(handler));
}

const Method* ServiceTable::find(std::string_view name) const {
  if (name.starts_with('/')) {
    name.remove_prefix(1);
    // Only the path form ("/package.Service/Method") has a leading '/'.
    if (name.find('/') == std::string_view::npos) return nullptr;
  }
  const auto found = state_->names.find(name);
  return found == state_->names.end() ? nullptr : found->second;
}

std::vector<const Method*> ServiceTable::methods() const {
  std::vector<const Method*> all;
  all.reserve(state_->methods.size());
  for (const auto& method : state_->methods) all.push_back(method.get());
  return all;
}

}  // namespace conduit::rpc
