#include "rpc/protocol.hpp"

#include "conduit/error.hpp"
#include "rpc/http1/front_end.hpp"

namespace conduit::rpc {

// protocols/protocol_table.cpp: the protocols conduit comes with.
std::vector<std::unique_ptr<Protocol>> protocol_table();

namespace {

struct Registry {
  std::vector<std::unique_ptr<Protocol>> protocols = protocol_table();
  bool read = false;  // a derived table has been built: too late to add
};

Registry& registry() {
  static Registry instance;
  return instance;
}

}  // namespace

const std::vector<std::unique_ptr<Protocol>>& protocols() {
  return registry().protocols;
}

void register_protocol(std::unique_ptr<Protocol> protocol) {
  Registry& all = registry();
  if (all.read)
    throw Error("register_protocol(" + std::string(protocol->name()) +
                "): too late, a server already uses the protocol table; register before main()");
  for (const auto& known : all.protocols)
    if (known->name() == protocol->name())
      throw Error("register_protocol: a protocol named " + std::string(protocol->name()) +
                  " is already there");
  all.protocols.push_back(std::move(protocol));
}

const Protocol* protocol_for_uri(std::string_view uri) {
  for (const auto& protocol : protocols())
    if (protocol->takes_uri(uri)) return protocol.get();
  return nullptr;
}

std::string client_uri_forms() {
  std::size_t width = 0;
  for (const auto& protocol : protocols())
    for (const UriForm& form : protocol->client_uris()) width = std::max(width, form.form.size());
  std::string text;
  for (const auto& protocol : protocols()) {
    for (const UriForm& form : protocol->client_uris()) {
      text += "  " + form.form + std::string(width + 2 - form.form.size(), ' ') + form.description +
              "\n";
    }
  }
  return text;
}

std::unique_ptr<ClientChannel> make_channel(std::string_view uri,
                                            std::chrono::milliseconds timeout) {
  const Protocol* protocol = protocol_for_uri(uri);
  if (!protocol)
    throw InvalidUri("no protocol takes '" + std::string(uri) +
                     "'; a client connects to one of:\n" + client_uri_forms());
  return protocol->make_channel(uri, timeout);
}

const std::vector<http1::Route>& http_routes() {
  static const std::vector<http1::Route> routes = [] {
    registry().read = true;
    std::vector<http1::Route> all;
    for (const auto& protocol : protocols())
      for (http1::Route& route : protocol->http_routes()) all.push_back(std::move(route));
    return all;
  }();
  return routes;
}

const std::vector<std::unique_ptr<StreamProtocol>>& stream_protocols() {
  static const std::vector<std::unique_ptr<StreamProtocol>> table = [] {
    registry().read = true;
    std::vector<std::unique_ptr<StreamProtocol>> all;
    for (const auto& protocol : protocols())
      for (auto& stream : protocol->stream_protocols()) all.push_back(std::move(stream));
    if (!http_routes().empty()) all.push_back(http1::make_front_end(http_routes()));
    return all;
  }();
  return table;
}

const std::vector<std::unique_ptr<MessageProtocol>>& message_protocols() {
  static const std::vector<std::unique_ptr<MessageProtocol>> table = [] {
    registry().read = true;
    std::vector<std::unique_ptr<MessageProtocol>> all;
    for (const auto& protocol : protocols())
      if (auto message = protocol->message_protocol()) all.push_back(std::move(message));
    return all;
  }();
  return table;
}

}  // namespace conduit::rpc
