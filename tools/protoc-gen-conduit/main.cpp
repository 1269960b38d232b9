// protoc-gen-conduit: a protoc plugin that writes, beside every foo.pb.h,
// a foo.conduit.h holding for each service Foo of foo.proto
//
//   class Foo      the service's base: a server derives from it, overrides
//                  the methods it offers, and adds itself to a ServiceTable
//                  (add_to); the others answer UNIMPLEMENTED.
//   class FooStub  calls Foo through a conduit::rpc::ClientChannel, each
//                  method in a form that throws RpcError and one that
//                  returns the Status.
//
// Methods keep the names the .proto gives them (SayHello stays SayHello), as
// every gRPC binding keeps them; a C++ keyword gets an underscore, as
// protoc's C++ generator does. Every kind of method is generated:
//   unary             Status Name(CallContext&, const Req&, Resp&)
//   server-streaming  Status Name(CallContext&, const Req&, StreamWriter<Resp>&)
//   client-streaming  Status Name(CallContext&, StreamReader<Req>&, Resp&)
//   bidirectional     Status Name(CallContext&, StreamReader<Req>&, StreamWriter<Resp>&)
// and in the stub, beside the two unary forms, a ClientReader<Resp>,
// ClientWriter<Req, Resp> or ClientReaderWriter<Req, Resp> for the
// streaming ones (client_channel.hpp). Everything is
// inline: the header is all there is. A file without services still gets its
// header, as protoc's own generators do, so that a build knows every output
// from the file names alone.
//
//   protoc --plugin=protoc-gen-conduit=PATH --cpp_out=DIR --conduit_out=DIR foo.proto
#include <google/protobuf/compiler/code_generator.h>
#include <google/protobuf/compiler/plugin.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream.h>

#include <cctype>
#include <cstddef>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

namespace pb = google::protobuf;

// The repository's .clang-format limit, which generated code keeps to.
constexpr std::size_t kColumnLimit = 100;
constexpr std::string_view kContinuationIndent = "    ";

// Names the base class already uses for itself.
const std::set<std::string, std::less<>> kBaseMemberNames = {"add_to", "descriptor"};

// C++20's keywords and alternative tokens, each between spaces.
constexpr std::string_view kCppKeywords =
    " alignas alignof and and_eq asm auto bitand bitor bool break case catch char char8_t"
    " char16_t char32_t class compl concept const consteval constexpr constinit const_cast"
    " continue co_await co_return co_yield decltype default delete do double dynamic_cast else"
    " enum explicit export extern false float for friend goto if inline int long mutable"
    " namespace new noexcept not not_eq nullptr operator or or_eq private protected public"
    " register reinterpret_cast requires return short signed sizeof static static_assert"
    " static_cast struct switch template this thread_local throw true try typedef typeid"
    " typename union unsigned using virtual void volatile wchar_t while xor xor_eq ";

bool is_cpp_keyword(std::string_view word) {
  return kCppKeywords.find(" " + std::string(word) + " ") != std::string_view::npos;
}

// protoc's C++ generator appends an underscore to names that are keywords.
std::string cpp_identifier(std::string_view name) {
  std::string identifier(name);
  if (is_cpp_keyword(identifier)) identifier += '_';
  return identifier;
}

// "a.b.c" -> "a::b::c", each part made an identifier.
std::string scoped_name(std::string_view dotted) {
  std::string scoped;
  while (!dotted.empty()) {
    const std::size_t dot = dotted.find('.');
    if (!scoped.empty()) scoped += "::";
    scoped += cpp_identifier(dotted.substr(0, dot));
    dotted = dot == std::string_view::npos ? std::string_view() : dotted.substr(dot + 1);
  }
  return scoped;
}

// The C++ name of a message as written in code of `package`: relative in
// its own package ("SubtractRequest", "Outer::Inner"), from the global
// namespace otherwise ("::google::protobuf::Value").
std::string cpp_type(const pb::Descriptor& message, const std::string& package) {
  const std::string& full_name = message.full_name();
  if (!package.empty() && message.file()->package() == package) {
    return scoped_name(std::string_view(full_name).substr(package.size() + 1));
  }
  return "::" + scoped_name(full_name);
}

// "conduit/interop/jsonrpc_examples.proto" -> "conduit/interop/jsonrpc_examples".
std::string stem(const std::string& proto_name) {
  const std::string suffix = ".proto";
  if (proto_name.size() > suffix.size() && proto_name.ends_with(suffix)) {
    return proto_name.substr(0, proto_name.size() - suffix.size());
  }
  return proto_name;
}

// A comment as the .proto wrote it, one "//" line per line, indented.
std::string comment(const std::string& text, std::string_view indent) {
  std::string lines;
  std::string_view rest = text;
  while (!rest.empty() && (rest.back() == '\n' || rest.back() == ' ')) rest.remove_suffix(1);
  while (!rest.empty()) {
    const std::size_t end = rest.find('\n');
    std::string_view line = rest.substr(0, end);
    while (!line.empty() && (line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
    // Lines of a /* */ comment come without the space a // comment keeps.
    const std::string_view space = line.empty() || line.front() == ' ' ? "" : " ";
    lines.append(indent).append("//").append(space).append(line).append("\n");
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
  }
  return lines;
}

// Prose of this generator as "//" lines, filled to the width comments in
// the repository keep to.
std::string prose(std::string_view text, std::string_view indent) {
  constexpr std::size_t kCommentWidth = 80;
  std::string lines;
  std::string line;
  while (!text.empty()) {
    const std::size_t space = text.find(' ');
    const std::string_view word = text.substr(0, space);
    text = space == std::string_view::npos ? std::string_view() : text.substr(space + 1);
    if (!line.empty() && indent.size() + 3 + line.size() + 1 + word.size() > kCommentWidth) {
      lines.append(indent).append("// ").append(line).append("\n");
      line.clear();
    }
    line += (line.empty() ? "" : " ") + std::string(word);
  }
  if (!line.empty()) lines.append(indent).append("// ").append(line).append("\n");
  return lines;
}

template <typename Descriptor>
std::string leading_comment(const Descriptor& descriptor, std::string_view indent) {
  pb::SourceLocation location;
  if (!descriptor.GetSourceLocation(&location)) return {};
  return comment(location.leading_comments, indent);
}

// `head` (which ends with "(") followed by `arguments` and `tail`, wrapped
// as clang-format wraps a call or a declaration: on one line if it fits;
// else packed after the parenthesis; else on lines of their own, four
// spaces further in than `head`.
std::string wrapped(const std::string& head, const std::vector<std::string>& arguments,
                    const std::string& tail) {
  const auto pack = [&](std::string first_line, std::size_t column, bool& fits) {
    std::string text;
    std::string line = std::move(first_line);
    bool line_has_argument = false;
    for (std::size_t i = 0; i < arguments.size(); ++i) {
      const std::string piece = arguments[i] + (i + 1 < arguments.size() ? "," : tail);
      if (!line_has_argument) {
        line += piece;
      } else if (line.size() + 1 + piece.size() <= kColumnLimit) {
        line += " " + piece;
      } else {
        fits = fits && line.size() <= kColumnLimit;
        text += line + "\n";
        line = std::string(column, ' ') + piece;
      }
      line_has_argument = true;
    }
    if (arguments.empty()) line += tail;
    fits = fits && line.size() <= kColumnLimit;
    return text + line + "\n";
  };

  std::string one_line = head;
  for (std::size_t i = 0; i < arguments.size(); ++i) {
    one_line += (i > 0 ? ", " : "") + arguments[i];
  }
  one_line += tail;
  if (one_line.size() <= kColumnLimit) return one_line + "\n";

  bool fits = true;
  std::string after_parenthesis = pack(head, head.size(), fits);
  if (fits) return after_parenthesis;

  const std::string indent =
      head.substr(0, head.find_first_not_of(' ')) + std::string(kContinuationIndent);
  fits = true;
  return head + "\n" + pack(indent, indent.size(), fits);
}

// One rpc, with the names generated code gives it.
enum class Kind { unary, server_streaming, client_streaming, bidirectional };

struct Method {
  const pb::MethodDescriptor* descriptor;
  Kind kind;
  std::string name;           // the C++ function: "SayHello" (a keyword gets an underscore)
  std::string stub_member;    // the stub's pointer to its descriptor: "SayHello_method_"
  std::string request_type;   // "HelloRequest", "::google::protobuf::Empty"
  std::string response_type;  // "HelloReply"
  std::string full_name;      // "package.Service/SayHello", as a ServiceTable knows it
};

Kind kind_of(const pb::MethodDescriptor& method) {
  if (method.client_streaming() && method.server_streaming()) return Kind::bidirectional;
  if (method.client_streaming()) return Kind::client_streaming;
  if (method.server_streaming()) return Kind::server_streaming;
  return Kind::unary;
}

// The handler's parameters after the context, in the base.
std::vector<std::string> handler_parameters(const Method& method, bool named) {
  const std::string request = named ? " request" : "";
  const std::string response = named ? " response" : "";
  const std::string reader = "::conduit::rpc::StreamReader<" + method.request_type + ">&";
  const std::string writer = "::conduit::rpc::StreamWriter<" + method.response_type + ">&";
  switch (method.kind) {
    case Kind::unary:
      return {"const " + method.request_type + "&" + request,
              method.response_type + "&" + response};
    case Kind::server_streaming:
      return {"const " + method.request_type + "&" + request, writer + (named ? " responses" : "")};
    case Kind::client_streaming:
      return {reader + (named ? " requests" : ""), method.response_type + "&" + response};
    case Kind::bidirectional:
      return {reader + (named ? " requests" : ""), writer + (named ? " responses" : "")};
  }
  return {};
}

// How a ServiceTable takes a method of this kind.
std::string table_adder(Kind kind) {
  switch (kind) {
    case Kind::unary:
      return "add";
    case Kind::server_streaming:
      return "add_server_stream";
    case Kind::client_streaming:
      return "add_client_stream";
    case Kind::bidirectional:
      return "add_bidi_stream";
  }
  return "add";
}

// The stub's stream type for a streaming method.
std::string stub_stream_type(const Method& method) {
  switch (method.kind) {
    case Kind::server_streaming:
      return "::conduit::rpc::ClientReader<" + method.response_type + ">";
    case Kind::client_streaming:
      return "::conduit::rpc::ClientWriter<" + method.request_type + ", " + method.response_type +
             ">";
    case Kind::bidirectional:
      return "::conduit::rpc::ClientReaderWriter<" + method.request_type + ", " +
             method.response_type + ">";
    case Kind::unary:
      break;
  }
  return {};
}

class ServiceWriter {
 public:
  ServiceWriter(const pb::ServiceDescriptor& service, const std::string& package)
      : service_(service), stub_(service.name() + "Stub") {
    for (int i = 0; i < service.method_count(); ++i) {
      const pb::MethodDescriptor& method = *service.method(i);
      const std::string name = cpp_identifier(method.name());
      methods_.push_back({&method, kind_of(method), name, method.name() + "_method_",
                          cpp_type(*method.input_type(), package),
                          cpp_type(*method.output_type(), package),
                          service.full_name() + "/" + method.name()});
    }
  }

  // Why the service cannot be generated; empty when it can.
  std::string problem() const {
    const pb::DescriptorPool& pool = *service_.file()->pool();
    const std::string stub_full_name =
        (service_.file()->package().empty() ? "" : service_.file()->package() + ".") + stub_;
    if (pool.FindMessageTypeByName(stub_full_name) || pool.FindEnumTypeByName(stub_full_name) ||
        pool.FindServiceByName(stub_full_name)) {
      return stub_full_name + " is already defined; it is the name of " + service_.full_name() +
             "'s stub";
    }
    std::set<std::string, std::less<>> names;
    for (const Method& method : methods_) {
      if (kBaseMemberNames.contains(method.name)) {
        return method.full_name + " would be the C++ function " + method.name +
               ", which the service's base class has already";
      }
      if (!names.insert(method.name).second) {
        return method.full_name + " would be the C++ function " + method.name +
               ", which another method of " + service_.full_name() + " has already";
      }
    }
    return {};
  }

  std::string declarations() const { return base_declaration() + "\n" + stub_declaration(); }
  std::string definitions() const { return base_definitions() + stub_definitions(); }

 private:
  std::string base_declaration() const {
    const std::string& name = service_.name();
    std::string text = leading_comment(service_, "");
    if (!text.empty()) text += "//\n";
    text += prose("The base of a " + service_.full_name() +
                      " server: override the methods it offers, then add_to() a ServiceTable. "
                      "The others answer UNIMPLEMENTED.",
                  "");
    text += "class " + name + " {\n";
    text += " public:\n";
    text += "  virtual ~" + name + "() = default;\n";
    for (const Method& method : methods_) {
      text += "\n" + leading_comment(*method.descriptor, "  ");
      std::vector<std::string> parameters = {"::conduit::rpc::CallContext& context"};
      for (std::string& parameter : handler_parameters(method, true))
        parameters.push_back(std::move(parameter));
      text += wrapped("  virtual ::conduit::rpc::Status " + method.name + "(", parameters, ");");
    }
    text +=
        "\n"
        "  // Adds every method to `table`, each calling this object, which must\n"
        "  // outlive the table's use. Throws conduit::Error when one of them is\n"
        "  // there already.\n"
        "  void add_to(::conduit::rpc::ServiceTable& table);\n"
        "\n"
        "  // The service as the generated descriptor pool knows it.\n"
        "  static const ::google::protobuf::ServiceDescriptor& descriptor();\n"
        "};\n";
    return text;
  }

  std::string stub_declaration() const {
    std::string text = prose("Calls " + service_.full_name() +
                                 " through a channel. Each method has two forms: one returns "
                                 "the response and throws conduit::rpc::RpcError when the call "
                                 "fails; the other returns the call's Status and fills "
                                 "`*response`, which must not be null. A streaming method "
                                 "returns its call's stream.",
                             "");
    text += "class " + stub_ + " {\n";
    text += " public:\n";
    text += "  // `channel` must outlive the stub.\n";
    text += "  explicit " + stub_ + "(::conduit::rpc::ClientChannel& channel);\n";
    for (const Method& method : methods_) {
      text += "\n" + leading_comment(*method.descriptor, "  ");
      if (method.kind != Kind::unary) {
        std::vector<std::string> parameters;
        if (method.kind == Kind::server_streaming)
          parameters.push_back("const " + method.request_type + "& request");
        parameters.push_back("const ::conduit::rpc::CallOptions& options = {}");
        text +=
            wrapped("  " + stub_stream_type(method) + " " + method.name + "(", parameters, ");");
        continue;
      }
      text += wrapped("  " + method.response_type + " " + method.name + "(",
                      {"const " + method.request_type + "& request",
                       "const ::conduit::rpc::CallOptions& options = {}"},
                      ");");
      text += wrapped(
          "  ::conduit::rpc::Status " + method.name + "(",
          {"const " + method.request_type + "& request", method.response_type + "* response",
           "const ::conduit::rpc::CallOptions& options = {}"},
          ");");
      // The asynchronous form: a template, so written here whole.
      text +=
          "  // Without waiting, completing with the call's Status through an Asio\n"
          "  // completion token (a callback, boost::asio::use_awaitable, ...);\n"
          "  // `response` must live until then.\n";
      text += "  template <typename Token>\n";
      text += wrapped(
          "  auto async_" + method.name + "(",
          {"const " + method.request_type + "& request", method.response_type + "& response",
           "::conduit::rpc::CallOptions options", "Token&& token"},
          ") {");
      text += wrapped("    return channel_->async_call(",
                      {"*" + method.stub_member, "request", "response", "std::move(options)",
                       "std::forward<Token>(token)"},
                      ");");
      text += "  }\n";
    }
    text += "\n private:\n";
    text += "  ::conduit::rpc::ClientChannel* channel_;\n";
    for (const Method& method : methods_) {
      text += "  const ::google::protobuf::MethodDescriptor* " + method.stub_member + ";\n";
    }
    text += "};\n";
    return text;
  }

  std::string base_definitions() const {
    const std::string& name = service_.name();
    std::string text;
    for (const Method& method : methods_) {
      text += "\n";
      std::vector<std::string> parameters = {"::conduit::rpc::CallContext&"};
      for (std::string& parameter : handler_parameters(method, false))
        parameters.push_back(std::move(parameter));
      text += wrapped("inline ::conduit::rpc::Status " + name + "::" + method.name + "(",
                      parameters, ") {");
      text += wrapped("  return {",
                      {"::conduit::rpc::StatusCode::unimplemented",
                       "\"" + method.full_name + " is not implemented\""},
                      "};");
      text += "}\n";
    }

    if (methods_.empty()) {
      text += "\ninline void " + name + "::add_to(::conduit::rpc::ServiceTable&) {}\n";
    } else {
      text += "\ninline void " + name + "::add_to(::conduit::rpc::ServiceTable& table) {\n";
      text += "  (void)descriptor();  // the methods are found in the generated pool\n";
      for (const Method& method : methods_) {
        text += wrapped("  table." + table_adder(method.kind) + "<" + method.request_type + ", " +
                            method.response_type + ">(",
                        {"\"" + method.full_name + "\"",
                         "std::bind_front(&" + name + "::" + method.name + ", this)"},
                        ");");
      }
      text += "}\n";
    }

    text += "\ninline const ::google::protobuf::ServiceDescriptor& " + name + "::descriptor() {\n";
    const pb::FileDescriptor& file = *service_.file();
    if (file.message_type_count() > 0) {
      // Any message of the file leads to it, and naming one keeps the
      // file's generated code linked in with its descriptors.
      text += "  static const ::google::protobuf::ServiceDescriptor& service =\n";
      text += "      *" + cpp_type(*file.message_type(0), file.package()) +
              "::descriptor()->file()->service(" + std::to_string(service_.index()) + ");\n";
    } else {
      // No message to name: the file's descriptor table, named as protoc's
      // C++ generator names it, keeps its generated code linked in.
      std::string table = "descriptor_table_";
      for (unsigned char c : file.name()) {
        if (std::isalnum(c) || c == '_') {
          table += static_cast<char>(c);
        } else {
          static constexpr char kHex[] = "0123456789abcdef";
          table += '_';
          table += kHex[c >> 4];
          table += kHex[c & 15];
        }
      }
      text += "  // The file's generated code (and its descriptors) is linked in as long\n";
      text += "  // as something refers to it; this pointer does.\n";
      text += "  static const void* volatile linked = &::" + table + ";\n";
      text += "  (void)linked;\n";
      text += "  static const ::google::protobuf::ServiceDescriptor& service =\n";
      text +=
          wrapped("      *::google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(",
                  {"\"" + service_.full_name() + "\""}, ");");
    }
    text += "  return service;\n";
    text += "}\n";
    return text;
  }

  std::string stub_definitions() const {
    const std::string& name = service_.name();
    const std::string signature =
        "inline " + stub_ + "::" + stub_ + "(::conduit::rpc::ClientChannel& channel)";
    std::string text = "\n";
    std::vector<std::string> initializers = {"channel_(&channel)"};
    for (const Method& method : methods_) {
      initializers.push_back(method.stub_member + "(" + name +
                             "::descriptor().FindMethodByName(\"" + method.descriptor->name() +
                             "\"))");
    }
    std::string all_initializers;
    for (std::size_t i = 0; i < initializers.size(); ++i) {
      all_initializers += (i > 0 ? ", " : "") + initializers[i];
    }
    if (signature.size() + 3 + all_initializers.size() + 3 <= kColumnLimit) {
      text += signature + " : " + all_initializers + " {}\n";
    } else if (4 + 2 + all_initializers.size() + 3 <= kColumnLimit) {
      text += signature + "\n    : " + all_initializers + " {}\n";
    } else {
      text += signature + "\n";
      for (std::size_t i = 0; i < initializers.size(); ++i) {
        text += (i == 0 ? "    : " : "      ") + initializers[i] +
                (i + 1 < initializers.size() ? ",\n" : " {}\n");
      }
    }

    for (const Method& method : methods_) {
      if (method.kind != Kind::unary) {
        const std::string type = stub_stream_type(method);
        std::vector<std::string> parameters;
        if (method.kind == Kind::server_streaming)
          parameters.push_back("const " + method.request_type + "& request");
        parameters.push_back("const ::conduit::rpc::CallOptions& options");
        text += "\n";
        text +=
            wrapped("inline " + type + " " + stub_ + "::" + method.name + "(", parameters, ") {");
        text += "  auto stream = channel_->open(*" + method.stub_member + ", options);\n";
        if (method.kind == Kind::server_streaming) {
          text += "  if (stream->write(request.SerializeAsString())) stream->writes_done();\n";
        }
        text += "  return " + type + "(std::move(stream));\n";
        text += "}\n";
        continue;
      }
      const std::string call_head = "channel_->call(";
      text += "\n";
      text += wrapped("inline " + method.response_type + " " + stub_ + "::" + method.name + "(",
                      {"const " + method.request_type + "& request",
                       "const ::conduit::rpc::CallOptions& options"},
                      ") {");
      text += "  " + method.response_type + " response;\n";
      // As clang-format has it: broken after the "=" when the call fits on
      // a line of its own there but not beside it.
      const std::string status = "  ::conduit::rpc::Status status =";
      const std::string call =
          call_head + "*" + method.stub_member + ", request, response, options);";
      if (status.size() + 1 + call.size() > kColumnLimit && 6 + call.size() <= kColumnLimit) {
        text += status + "\n      " + call + "\n";
      } else {
        text += wrapped(status + " " + call_head,
                        {"*" + method.stub_member, "request", "response", "options"}, ");");
      }
      text += "  if (!status.ok()) throw ::conduit::rpc::RpcError(std::move(status));\n";
      text += "  return response;\n";
      text += "}\n";

      text += "\n";
      text += wrapped(
          "inline ::conduit::rpc::Status " + stub_ + "::" + method.name + "(",
          {"const " + method.request_type + "& request", method.response_type + "* response",
           "const ::conduit::rpc::CallOptions& options"},
          ") {");
      text += wrapped("  return " + call_head,
                      {"*" + method.stub_member, "request", "*response", "options"}, ");");
      text += "}\n";
    }
    return text;
  }

  const pb::ServiceDescriptor& service_;
  std::string stub_;
  std::vector<Method> methods_;
};

class ConduitGenerator : public pb::compiler::CodeGenerator {
 public:
  bool Generate(const pb::FileDescriptor* file, const std::string& /*parameter*/,
                pb::compiler::GeneratorContext* context, std::string* error) const override {
    const std::string& package = file->package();
    std::vector<ServiceWriter> services;
    for (int i = 0; i < file->service_count(); ++i) {
      services.emplace_back(*file->service(i), package);
      if (std::string problem = services.back().problem(); !problem.empty()) {
        *error = problem;
        return false;
      }
    }

    std::string text =
        "// Generated by protoc-gen-conduit from " + file->name() + ". Do not edit.\n";
    if (services.empty()) text += "// " + file->name() + " defines no services.\n";
    text += "#pragma once\n\n";
    if (!services.empty()) {
      text +=
          "#include <google/protobuf/descriptor.h>\n"
          "\n"
          "#include <functional>\n"
          "#include <utility>\n"
          "\n";
    }
    std::set<std::string> includes = {stem(file->name()) + ".pb.h"};
    if (!services.empty()) {
      includes.insert({"conduit/rpc/call_context.hpp", "conduit/rpc/client_channel.hpp",
                       "conduit/rpc/service.hpp", "conduit/rpc/status.hpp"});
    }
    for (const std::string& include : includes) text += "#include \"" + include + "\"\n";
    if (!services.empty()) {
      const std::string namespace_name = scoped_name(package);
      std::string body;
      for (const ServiceWriter& service : services) body += "\n" + service.declarations();
      for (const ServiceWriter& service : services) body += service.definitions();
      if (namespace_name.empty()) {
        text += body;
      } else {
        text += "\nnamespace " + namespace_name + " {\n" + body + "\n}  // namespace " +
                namespace_name + "\n";
      }
    }

    std::unique_ptr<pb::io::ZeroCopyOutputStream> stream(
        context->Open(stem(file->name()) + ".conduit.h"));
    pb::io::CodedOutputStream output(stream.get());
    output.WriteString(text);
    return !output.HadError();
  }

  uint64_t GetSupportedFeatures() const override { return FEATURE_PROTO3_OPTIONAL; }
};

}  // namespace

int main(int argc, char* argv[]) {
  ConduitGenerator generator;
  return pb::compiler::PluginMain(argc, argv, &generator);
}
