#include "rpc/protocol.hpp"

#include "conduit/error.hpp"
#include "rpc/http1/front_end.hpp"

namespace conduit::rpc {

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
    std::vector<http1::Route> all;
    for (const auto& protocol : protocols())
      for (http1::Route& route : protocol->http_routes()) all.push_back(std::move(route));
    return all;
  }();
  return routes;
}

const std::vector<std::unique_ptr<StreamProtocol>>& stream_protocols() {
  static const std::vector<std::unique_ptr<StreamProtocol>> table = [] {
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
    std::vector<std::unique_ptr<MessageProtocol>> all;
    for (const auto& protocol : protocols())
      if (auto message = protocol->message_protocol()) all.push_back(std::move(message));
    return all;
  }();
  return table;
}

}  // namespace conduit::rpc
