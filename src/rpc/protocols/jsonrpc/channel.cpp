// JsonRpcChannel (conduit/rpc/client_channel.hpp): messages as proto3 JSON
// params and results, error objects as a Status.
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <deque>
#include <exception>
#include <map>
#include <string>
#include <thread>
#include <utility>

#include "conduit/rpc/client_channel.hpp"
#include "rpc/protocols/jsonrpc/client_parts.hpp"
#include "rpc/protocols/jsonrpc/engine.hpp"
#include "rpc/protocols/jsonrpc/json_document.hpp"
#include "rpc/protocols/jsonrpc/proto_json.hpp"
#include "rpc/protocols/jsonrpc/status_mapping.hpp"
#include "rpc/transports/client_wire.hpp"
#include "rpc/waiter.hpp"

namespace conduit::rpc {

namespace {

namespace pb = google::protobuf;

Status status_of(const JsonRpcError& error) {
  const jsonrpc::JsonDocument object(error.error_json(), jsonrpc::kMaxMappingDepth);
  const rapidjson::Value* data = nullptr;
  if (object.ok() && object.root().IsObject()) {
    const auto found = object.root().FindMember("data");
    if (found != object.root().MemberEnd()) data = &found->value;
  }
  return jsonrpc::status_for_error(error.code(), error.what(), data);
}

// The params that carry `request`: none for a type without fields.
Status params_of(const pb::Message& request, std::string& params) {
  if (request.GetDescriptor()->field_count() == 0) return {};
  jsonrpc::JsonWriter writer(params);
  if (Status written = jsonrpc::write_message(request, writer); !written.ok()) {
    return {StatusCode::invalid_argument, written.message()};
  }
  if (params.empty() || (params.front() != '[' && params.front() != '{')) {
    return {StatusCode::invalid_argument, "JSON-RPC params are an array or an object; this " +
                                              request.GetDescriptor()->full_name() + " is " +
                                              params};
  }
  return {};
}

Status read_result(const pb::MethodDescriptor& method, const std::string& result,
                   pb::Message& response) {
  // A method with nothing to return may answer null.
  if (response.GetDescriptor()->field_count() == 0 && result == "null") {
    response.Clear();
    return {};
  }
  const jsonrpc::JsonDocument document(result, jsonrpc::kMaxMappingDepth);
  // Read as a server reads params: Value, ListValue and Struct whole,
  // other messages by name or by position.
  const Status read = document.ok() ? jsonrpc::params_to_message(&document.root(), response)
                                    : Status(StatusCode::internal, "not valid JSON");
  if (!read.ok()) {
    return {StatusCode::internal, "the result of " + method.name() + " is not a " +
                                      response.GetDescriptor()->full_name() + ": " +
                                      read.message()};
  }
  return {};
}

}  // namespace

// A channel's one connection over a raw stream (one JSON text per line) or
// shared memory (one text per ring message), carrying every call at once:
// each request goes out with an id of its own as soon as it is made, and each
// reply is matched to its call by its id, in whatever order the server
// answers. Driven by its own I/O thread.
class JsonRpcChannel::Mux {
 public:
  using Done = std::function<void(Status, std::string)>;  // the status, the result

  explicit Mux(std::string_view uri)
      : target_(jsonrpc::parse_target(uri)),
        work_(boost::asio::make_work_guard(io_)),
        thread_([this] { io_.run(); }) {}

  ~Mux() {
    boost::asio::post(io_, [this] {
      end_connection({StatusCode::cancelled, "the channel was destroyed"});
    });
    work_.reset();
    thread_.join();
  }

  boost::asio::any_io_executor executor() { return io_.get_executor(); }
  bool on_io_thread() const { return std::this_thread::get_id() == thread_.get_id(); }

  // Calls `method` with `params` (JSON text, or empty); `done` runs once on
  // the I/O thread.
  void start(std::string method, std::string params, std::chrono::milliseconds timeout,
             std::shared_ptr<CallCanceller> canceller, Done done) {
    boost::asio::post(io_, [this, method = std::move(method), params = std::move(params), timeout,
                            canceller = std::move(canceller), done = std::move(done)]() mutable {
      begin(method, params, timeout, std::move(canceller), std::move(done));
    });
  }

 private:
  struct Pending {
    Done done;
    std::unique_ptr<boost::asio::steady_timer> timer;
    std::shared_ptr<CallCanceller> canceller;
  };

  void begin(const std::string& method, const std::string& params,
             std::chrono::milliseconds timeout, std::shared_ptr<CallCanceller> canceller,
             Done done) {
    if (!wire_) {
      try {
        wire_ = transport::connect_wire(io_, target_.address, timeout, target_.text,
                                        transport::Pieces::messages);
      } catch (const Error& error) {
        done({StatusCode::unavailable, error.what()}, {});
        return;
      }
      buffer_.clear();
      wire_->start([this](std::string_view bytes) { received(bytes); },
                   [this](Status why) { end_connection(why); });
    }
    const std::int64_t id = next_id_++;
    Pending& pending = pending_[id];
    pending.done = std::move(done);
    pending.canceller = std::move(canceller);
    pending.timer = std::make_unique<boost::asio::steady_timer>(io_, timeout);
    pending.timer->async_wait([this, id, timeout](boost::system::error_code error) {
      if (error) return;
      complete(id, {StatusCode::deadline_exceeded, "no reply from " + target_.text + " within " +
                                                       std::to_string(timeout.count()) + " ms"});
    });
    if (pending.canceller && !pending.canceller->set_hook([this, id] {
          boost::asio::post(io_, [this, id] { cancel(id); });
        })) {
      complete(id, {StatusCode::cancelled, "the call was cancelled by the client"});
      return;
    }
    std::string request = jsonrpc::make_request(method, params, id);
    if (target_.address.kind != transport::Kind::shm) request += '\n';
    send(std::move(request));
  }

  void send(std::string text) {
    outbound_.push_back(std::move(text));
    if (!writing_) write_next();
  }

  void write_next() {
    if (outbound_.empty() || !wire_) {
      writing_ = false;
      return;
    }
    writing_ = true;
    wire_->send(outbound_.front(), [this](bool sent) {
      outbound_.pop_front();
      if (!sent) {
        end_connection({StatusCode::unavailable, target_.text + " closed the connection"});
        return;
      }
      write_next();
    });
  }

  // Lines over a socket; whole messages over shared memory.
  void received(std::string_view bytes) {
    if (target_.address.kind == transport::Kind::shm) {
      answer(std::string(bytes));
      return;
    }
    buffer_.append(bytes);
    std::size_t start = 0;
    for (std::size_t end; (end = buffer_.find('\n', start)) != std::string::npos; start = end + 1) {
      std::string line = buffer_.substr(start, end - start);
      if (line.find_first_not_of(" \t\r") != std::string::npos) answer(std::move(line));
      if (!wire_) return;  // the connection ended under a reply
    }
    buffer_.erase(0, start);
  }

  // One reply, to the call whose id it has.
  void answer(std::string text) {
    std::optional<std::int64_t> id;
    try {
      id = jsonrpc::reply_id(text);
    } catch (const ProtocolError& error) {
      end_connection({StatusCode::internal,
                      target_.text + " sent what is not a JSON-RPC reply (" + error.what() + ")"});
      return;
    }
    // id null: the server could not read a request's id. The oldest call
    // waiting gets it.
    if (!id) {
      if (pending_.empty()) return;
      id = pending_.begin()->first;
    }
    if (!pending_.contains(*id)) return;  // a call given up on already
    try {
      jsonrpc::Reply reply = jsonrpc::parse_reply(std::move(text), *id);
      if (reply.ok) {
        complete(*id, {}, std::move(reply.result_json));
      } else {
        complete(*id,
                 status_of(JsonRpcError(reply.error_code, reply.error_message, reply.error_json)));
      }
    } catch (const ProtocolError& error) {
      complete(*id, {StatusCode::internal, error.what()});
    }
  }

  void complete(std::int64_t id, Status status, std::string result = {}) {
    auto found = pending_.find(id);
    if (found == pending_.end()) return;
    Pending pending = std::move(found->second);
    pending_.erase(found);
    pending.timer->cancel();
    if (pending.canceller) pending.canceller->clear_hook();
    pending.done(std::move(status), std::move(result));
  }

  // A call given up on: the server hears of it by its connection closing,
  // when no other call is waiting on that connection (it then cancels the
  // calls it runs); else the late reply is dropped when it comes.
  void cancel(std::int64_t id) {
    if (!pending_.contains(id)) return;
    complete(id, {StatusCode::cancelled, "the call was cancelled by the client"});
    if (pending_.empty() && wire_) {
      wire_->close();
      wire_.reset();
      outbound_.clear();
      writing_ = false;
    }
  }

  void end_connection(const Status& why) {
    if (wire_) wire_->close();
    wire_.reset();
    outbound_.clear();
    writing_ = false;
    while (!pending_.empty()) complete(pending_.begin()->first, why);
  }

  jsonrpc::Target target_;
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  // On the I/O thread:
  std::unique_ptr<transport::ClientWire> wire_;
  std::string buffer_;                       // bytes of a reply not yet whole
  std::map<std::int64_t, Pending> pending_;  // by id, oldest first
  std::deque<std::string> outbound_;         // requests not yet written
  bool writing_ = false;
  std::int64_t next_id_ = 1;
  std::thread thread_;
};

JsonRpcChannel::JsonRpcChannel(std::string_view uri, std::chrono::milliseconds timeout)
    : uri_(uri),
      timeout_(timeout),
      most_connections_(uri.starts_with("http://") ? kMostHttpConnections : 1) {
  if (!uri.starts_with("http://")) {
    mux_ = std::make_unique<Mux>(uri);  // checks the URI at once (InvalidUri)
    return;
  }
  // The first connection's client checks the URI at once (InvalidUri).
  idle_.push_back(std::make_unique<JsonRpcClient>(uri, timeout));
  opened_ = 1;
}

JsonRpcChannel::~JsonRpcChannel() = default;

Status JsonRpcChannel::call(const pb::MethodDescriptor& method, const pb::Message& request,
                            pb::Message& response, const CallOptions& options) {
  if (mux_) {
    if (mux_->on_io_thread()) return blocking_call_on_channel_thread();
    Waiter<Status> waiter;
    start(method, request, response, options, waiter.setter());
    return waiter.wait();
  }
  std::string params;
  if (Status written = params_of(request, params); !written.ok()) return written;
  const std::chrono::milliseconds timeout =
      options.timeout.count() > 0 ? options.timeout : timeout_;
  // A connection no other call holds: an idle one, a new one while there
  // are fewer than the most, or the first returned, up to the timeout.
  std::unique_ptr<JsonRpcClient> client;
  {
    std::unique_lock lock(mutex_);
    if (!returned_.wait_for(lock, timeout,
                            [this] { return !idle_.empty() || opened_ < most_connections_; }))
      return {StatusCode::deadline_exceeded,
              "the call's deadline passed while the channel's other calls held its connections"};
    if (!idle_.empty()) {
      client = std::move(idle_.back());
      idle_.pop_back();
    } else {
      ++opened_;
    }
  }
  if (!client) client = std::make_unique<JsonRpcClient>(uri_, timeout);
  struct GiveBack {
    JsonRpcChannel& channel;
    std::unique_ptr<JsonRpcClient>& client;
    ~GiveBack() {
      {
        std::lock_guard lock(channel.mutex_);
        channel.idle_.push_back(std::move(client));
      }
      channel.returned_.notify_one();
    }
  } give_back{*this, client};
  client->set_timeout(timeout);
  struct Unhook {
    CallCanceller* canceller;
    ~Unhook() {
      if (canceller) canceller->clear_hook();
    }
  } unhook{options.canceller.get()};
  if (options.canceller &&
      !options.canceller->set_hook([client = client.get()] { client->abort(); }))
    return {StatusCode::cancelled, "the call was cancelled by the client"};
  try {
    client->set_headers(options.metadata);
  } catch (const Error& error) {
    return {StatusCode::invalid_argument, error.what()};
  }
  if (options.received) options.received->clear();  // JSON-RPC answers with none
  std::string result;
  try {
    result = client->call(method.name(), params);
  } catch (const JsonRpcError& error) {
    return status_of(error);
  } catch (const PeerGone& error) {
    return {StatusCode::unavailable, error.what()};
  } catch (const SystemError& error) {
    return {StatusCode::unavailable, error.what()};
  } catch (const ProtocolError& error) {
    return {StatusCode::internal, error.what()};
  } catch (const Timeout& error) {
    return {StatusCode::deadline_exceeded, error.what()};
  } catch (const Cancelled& error) {
    return {StatusCode::cancelled, error.what()};
  } catch (const Error& error) {
    // The others come from finding the server: a host name that does not
    // resolve, a shm: server that never sent its rings.
    return {StatusCode::unavailable, error.what()};
  } catch (const std::exception& error) {
    return {StatusCode::internal, error.what()};
  }
  return read_result(method, result, response);
}

boost::asio::any_io_executor JsonRpcChannel::executor() {
  if (mux_) return mux_->executor();
  std::lock_guard lock(mutex_);
  if (!threads_) threads_.emplace(most_connections_);
  return threads_->get_executor();
}

void JsonRpcChannel::start(const pb::MethodDescriptor& method, const pb::Message& request,
                           pb::Message& response, const CallOptions& options,
                           std::function<void(Status)> done) {
  if (mux_) {
    std::string params;
    Status checked = params_of(request, params);
    if (checked.ok() && !options.metadata.empty())
      checked = {StatusCode::invalid_argument,
                 uri_ +
                     " carries no metadata: JSON-RPC over a raw stream has no headers; "
                     "send metadata over http://HOST:PORT/jsonrpc"};
    if (!checked.ok()) {
      boost::asio::post(mux_->executor(), [done = std::move(done), checked] { done(checked); });
      return;
    }
    if (options.received) options.received->clear();  // JSON-RPC answers with none
    mux_->start(method.name(), std::move(params),
                options.timeout.count() > 0 ? options.timeout : timeout_, options.canceller,
                [&method, &response, done = std::move(done)](Status status, std::string result) {
                  if (status.ok()) status = read_result(method, result, response);
                  done(std::move(status));
                });
    return;
  }
  std::shared_ptr<pb::Message> copy(request.New());
  copy->CopyFrom(request);
  boost::asio::post(executor(), [this, &method, copy, &response, options, done = std::move(done)] {
    done(call(method, *copy, response, options));
  });
}

}  // namespace conduit::rpc
