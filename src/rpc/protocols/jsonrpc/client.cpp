#include <poll.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <optional>

#include "conduit/ipc/file_descriptor.hpp"
#include "conduit/rpc/jsonrpc_client.hpp"
#include "rpc/http1/request_head.hpp"
#include "rpc/protocols/jsonrpc/client_parts.hpp"
#include "rpc/protocols/jsonrpc/engine.hpp"
#include "rpc/transports/connect.hpp"

namespace conduit::rpc {

namespace jsonrpc {

namespace http = boost::beast::http;

std::string notification(std::string_view method, std::string_view params) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  writer.StartObject();
  writer.Key("jsonrpc");
  writer.String("2.0");
  writer.Key("method");
  writer.String(method.data(), static_cast<rapidjson::SizeType>(method.size()));
  if (!params.empty()) {
    writer.Key("params");
    writer.RawValue(params.data(), params.size(), rapidjson::kObjectType);
  }
  writer.EndObject();
  return buffer.GetString();
}

ReplyReader::ReplyReader(bool http) : http_(http) {
  if (http_) {
    parser_.emplace();
    parser_->body_limit(64u << 20);
  }
}

bool ReplyReader::take(std::string& buffer) {
  if (!http_) {
    std::size_t end = buffer.find('\n', scanned_);
    if (end == std::string::npos) {
      scanned_ = buffer.size();  // a long reply is searched once, not once per read
      return false;
    }
    if (end + 1 == buffer.size()) {
      // The reply is all that was read (the usual case): taken, not copied.
      body_ = std::move(buffer);
      body_.resize(end);
      buffer.clear();
    } else {
      body_ = buffer.substr(0, end);
      buffer.erase(0, end + 1);
    }
    scanned_ = 0;
    return true;
  }
  boost::beast::error_code error;
  while (!buffer.empty() && !parser_->is_done()) {
    std::size_t used = parser_->put(boost::asio::buffer(buffer), error);
    buffer.erase(0, used);
    if (error == http::error::need_more) return false;
    if (error) throw ProtocolError("a malformed HTTP reply: " + error.message());
    if (used == 0) return false;
  }
  return parser_->is_done();
}

bool ReplyReader::finish_at_end_of_stream() {
  if (!http_) return false;
  boost::beast::error_code error;
  parser_->put_eof(error);
  return !error && parser_->is_done();
}

std::string ReplyReader::reply(bool expected, const std::string& from) {
  if (!http_) return std::move(body_);
  auto& response = parser_->get();
  unsigned status = response.result_int();
  if (!expected && (status == 204 || status == 200)) return {};
  if (status != 200 && response.body().empty())
    throw ProtocolError(from + " answered HTTP " + std::to_string(status));
  return std::move(response.body());
}

bool ReplyReader::keep_alive() const {
  return !http_ || parser_->get().keep_alive();
}

Target parse_target(std::string_view uri) {
  Target target;
  target.text = std::string(uri);
  try {
    if (uri.starts_with("http://")) {
      std::string_view rest = uri.substr(7);
      const std::size_t slash = rest.find('/');
      target.http = true;
      target.http_path =
          slash == std::string_view::npos ? "/jsonrpc" : std::string(rest.substr(slash));
      target.address = transport::parse_address("tcp://" + std::string(rest.substr(0, slash)),
                                                transport::Role::client);
      return target;
    }
    target.address = transport::parse_address(uri, transport::Role::client);
  } catch (const InvalidUri& error) {
    throw InvalidUri(std::string(error.what()) +
                     "(a JSON-RPC client also takes http://HOST:PORT/PATH)");
  }
  return target;
}

std::string frame_request(const Target& target, std::string body, std::string_view headers) {
  if (!target.http) {
    body += '\n';
    return body;
  }
  const std::string& host_name = target.address.host;
  std::string host = host_name.find(':') != std::string::npos ? "[" + host_name + "]" : host_name;
  return "POST " + target.http_path + " HTTP/1.1\r\nHost: " + host + ":" +
         std::to_string(target.address.port) +
         "\r\nContent-Type: application/json\r\nAccept: application/json\r\n" +
         std::string(headers) + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
         body;
}

}  // namespace jsonrpc

using jsonrpc::Target;
using Clock = std::chrono::steady_clock;

JsonRpcError::JsonRpcError(int code, std::string message, std::string error_json)
    : Error(std::move(message)), code_(code), error_json_(std::move(error_json)) {}

class JsonRpcClient::Impl {
 public:
  Impl(std::string_view uri, std::chrono::milliseconds timeout)
      : target_(jsonrpc::parse_target(uri)), timeout_(timeout) {}

  std::string call(std::string_view method, std::string_view params) {
    aborted_ = false;
    std::int64_t id = next_id_++;
    std::string request = jsonrpc::make_request(method, params, id);
    std::string reply = exchange(std::move(request), true);
    jsonrpc::Reply parsed = jsonrpc::parse_reply(std::move(reply), id);
    if (!parsed.ok) throw JsonRpcError(parsed.error_code, parsed.error_message, parsed.error_json);
    return std::move(parsed.result_json);
  }

  void notify(std::string_view method, std::string_view params) {
    if (!params.empty() && params.find_first_not_of(" \t\r\n") != std::string_view::npos) {
      char first = params[params.find_first_not_of(" \t\r\n")];
      if (first != '[' && first != '{')
        throw Error("params must be a JSON array or object, not " + std::string(params));
    }
    exchange(jsonrpc::notification(method, params), false);
  }

  void set_timeout(std::chrono::milliseconds timeout) { timeout_ = timeout; }

  void set_headers(const std::multimap<std::string, std::string>& headers) {
    if (!headers.empty() && !target_.http)
      throw Error(target_.text + " carries no headers: JSON-RPC over a raw stream has none; " +
                  "send metadata over http://HOST:PORT/jsonrpc");
    std::string lines;
    for (const auto& [name, value] : headers) {
      if (!http1::is_token(name)) throw Error("\"" + name + "\" is not an HTTP header name");
      if (!http1::is_field_value(value))
        throw Error("the value of header " + name +
                    " holds a control character (CR, LF, NUL, ...)");
      lines += name + ": " + value + "\r\n";
    }
    headers_ = std::move(lines);
  }

 private:
  // Sends one request and returns its reply (or "" when none is expected).
  // A connection kept from an earlier call may have been closed by the
  // server meanwhile: then the request is sent again on a new one.
  std::string exchange(std::string request, bool reply_expected) {
    if (target_.address.kind == transport::Kind::shm) return exchange_shm(request, reply_expected);
    const std::string framed = jsonrpc::frame_request(target_, std::move(request), headers_);
    bool reused = fd_.get() >= 0;
    for (int attempt = 0;; ++attempt) {
      if (fd_.get() < 0) connect();
      try {
        send_all(framed);
        if (!target_.http && !reply_expected) return {};
        return read_reply(reply_expected);
      } catch (const PeerGone&) {
        drop();
        if (aborted_) throw Cancelled("the call was cancelled by the client");
        if (!reused || attempt > 0) throw;
      }
    }
  }

  // Over shared memory: one ring message each way.
  std::string exchange_shm(const std::string& request, bool reply_expected) {
    if (!link_) {
      shm::Link link = transport::connect_shm(target_.address, timeout_);
      std::lock_guard lock(abort_mutex_);
      link_.emplace(std::move(link));
    }
    try {
      link_->send(request);
      sent_ += request.size();
      if (!reply_expected) return {};
      bool timed_out = false;
      auto reply = link_->receive(timeout_, &timed_out);
      if (timed_out)
        throw Timeout("no reply from " + target_.text + " within " +
                      std::to_string(timeout_.count()) + " ms");
      if (!reply) throw PeerGone(target_.text + " closed the connection");
      received_ += reply->size();
      return std::string(*reply);
    } catch (const Error&) {
      drop();  // the next call connects again
      if (aborted_) throw Cancelled("the call was cancelled by the client");
      throw;
    }
  }

  void connect() {
    ipc::FileDescriptor fd = transport::connect_socket(target_.address, timeout_);
    std::lock_guard lock(abort_mutex_);
    fd_ = std::move(fd);
  }

  // Lets the connection go (the next call makes a new one).
  void drop() {
    std::lock_guard lock(abort_mutex_);
    fd_.reset();
    link_.reset();
    buffer_.clear();
  }

  void send_all(const std::string& bytes) {
    std::size_t done = 0;
    while (done < bytes.size()) {
      ssize_t n = ::send(fd_.get(), bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
        throw PeerGone(target_.text + " closed the connection");
      if (n < 0) throw SystemError("send", target_.text, errno);
      done += static_cast<std::size_t>(n);
      sent_ += static_cast<std::uint64_t>(n);
    }
  }

  // Reads more bytes into buffer_; false at end of file.
  bool fill(Clock::time_point deadline) {
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) {
        // The late reply would otherwise be read as the answer to the next
        // call: that call gets a connection of its own.
        fd_.reset();
        buffer_.clear();
        throw Timeout("no reply from " + target_.text + " within " +
                      std::to_string(timeout_.count()) + " ms");
      }
      pollfd ready{fd_.get(), POLLIN, 0};
      int rc = ::poll(&ready, 1, static_cast<int>(left.count()));
      if (rc < 0 && errno == EINTR) continue;
      if (rc <= 0) continue;
      // Straight into the buffer, in large reads: a reply of megabytes
      // takes a few calls rather than hundreds.
      const std::size_t had = buffer_.size();
      buffer_.resize(had + std::max<std::size_t>(16384, std::min<std::size_t>(had, 1 << 20)));
      const ssize_t n = ::recv(fd_.get(), buffer_.data() + had, buffer_.size() - had, 0);
      const int error = errno;
      buffer_.resize(had + static_cast<std::size_t>(std::max<ssize_t>(n, 0)));
      if (n < 0 && error == EINTR) continue;
      if (n < 0 && error == ECONNRESET) return false;
      if (n < 0) throw SystemError("recv", target_.text, error);
      if (n == 0) return false;
      received_ += static_cast<std::uint64_t>(n);
      return true;
    }
  }

  std::string read_reply(bool reply_expected) {
    auto deadline = Clock::now() + timeout_;
    jsonrpc::ReplyReader reader(target_.http);
    bool any = !buffer_.empty();
    while (!reader.take(buffer_)) {
      if (!fill(deadline)) {
        if (aborted_) {
          drop();
          throw Cancelled("the call was cancelled by the client");
        }
        if (!any) throw PeerGone(target_.text + " closed the connection");
        if (reader.finish_at_end_of_stream()) break;
        throw ProtocolError(target_.text + " closed the connection in the middle of a reply");
      }
      any = true;
    }
    if (!reader.keep_alive()) drop();
    return reader.reply(reply_expected, target_.text);
  }

  Target target_;
  std::chrono::milliseconds timeout_;
  ipc::FileDescriptor fd_;
  std::optional<shm::Link> link_;
  std::string buffer_;
  std::string headers_;  // further HTTP headers, each with its CRLF
  std::int64_t next_id_ = 1;
  std::mutex abort_mutex_;  // fd_ and link_ as abort() sees them
  std::atomic<bool> aborted_{false};

 public:
  // Cuts the connection under a call in progress (any thread): it fails
  // with Cancelled, and the server sees the connection close.
  void abort() {
    std::lock_guard lock(abort_mutex_);
    aborted_ = true;
    if (fd_.get() >= 0) ::shutdown(fd_.get(), SHUT_RDWR);
    if (link_) link_->cancel();
  }

  std::uint64_t sent_ = 0, received_ = 0;
};

JsonRpcClient::JsonRpcClient(std::string_view uri, std::chrono::milliseconds timeout)
    : impl_(std::make_unique<Impl>(uri, timeout)) {}
JsonRpcClient::~JsonRpcClient() = default;
JsonRpcClient::JsonRpcClient(JsonRpcClient&&) noexcept = default;
JsonRpcClient& JsonRpcClient::operator=(JsonRpcClient&&) noexcept = default;

std::string JsonRpcClient::call(std::string_view method, std::string_view params) {
  return impl_->call(method, params);
}

void JsonRpcClient::notify(std::string_view method, std::string_view params) {
  impl_->notify(method, params);
}

void JsonRpcClient::abort() {
  impl_->abort();
}

void JsonRpcClient::set_timeout(std::chrono::milliseconds timeout) {
  impl_->set_timeout(timeout);
}

void JsonRpcClient::set_headers(const std::multimap<std::string, std::string>& headers) {
  impl_->set_headers(headers);
}

std::uint64_t JsonRpcClient::bytes_sent() const {
  return impl_->sent_;
}

std::uint64_t JsonRpcClient::bytes_received() const {
  return impl_->received_;
}

}  // namespace conduit::rpc
