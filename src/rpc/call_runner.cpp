#include "rpc/call_runner.hpp"

namespace conduit::rpc {

namespace {

std::optional<CallContext::Clock::time_point> deadline_for(
    const ServerOptions& options, std::optional<std::chrono::nanoseconds> timeout) {
  if (!timeout && options.call_timeout.count() == 0) return std::nullopt;  // no clock read
  const auto now = CallContext::Clock::now();
  std::optional<CallContext::Clock::time_point> deadline;
  // A timeout too long to add to now() is no deadline worth tracking.
  constexpr auto kLongest = std::chrono::hours(24 * 365 * 100);
  if (timeout && *timeout < kLongest) deadline = now + *timeout;
  if (options.call_timeout.count() > 0) {
    const auto server = now + options.call_timeout;
    if (!deadline || server < *deadline) deadline = server;
  }
  return deadline;
}

Status after_handler(Status status, const CallContext& context) {
  if ((status.ok() || status.code() == StatusCode::cancelled) && context.expired())
    return {StatusCode::deadline_exceeded, "the deadline passed during the call"};
  return status;
}

Status before_handler(const CallContext& context) {
  if (context.expired())
    return {StatusCode::deadline_exceeded, "the deadline passed before the call started"};
  return {};
}

}  // namespace

struct CallContext::Watch {
  std::function<bool()> gone;
  std::atomic<Clock::rep> next_ask{0};  // Clock ticks: not before then
};

void CallContext::watch_caller(std::function<bool()> gone) {
  watch_ = std::make_shared<Watch>();
  watch_->gone = std::move(gone);
}

bool CallContext::caller_gone() const {
  const Clock::rep now = Clock::now().time_since_epoch().count();
  Clock::rep next = watch_->next_ask.load(std::memory_order_relaxed);
  const Clock::rep later =
      now + std::chrono::duration_cast<Clock::duration>(std::chrono::milliseconds(1)).count();
  // One thread asks at a time; the others take the last answer (not gone).
  if (now < next || !watch_->next_ask.compare_exchange_strong(next, later)) return false;
  if (!watch_->gone()) return false;
  cancelled_->store(true, std::memory_order_relaxed);
  return true;
}

CallContext make_call_context(const ServerOptions& options, std::string_view protocol,
                              const Peer& peer, std::optional<std::chrono::nanoseconds> timeout) {
  CallContext context;
  context.protocol = std::string(protocol);
  context.peer = peer;
  context.deadline = deadline_for(options, timeout);
  return context;
}

CallContext make_call_context(Connection& connection, std::string_view protocol,
                              std::optional<std::chrono::nanoseconds> timeout) {
  connection.end_handshake();
  CallContext context(connection.cancellation());
  context.protocol = std::string(protocol);
  context.peer = connection.peer();
  context.deadline = deadline_for(connection.options(), timeout);
  return context;
}

Status run_unary(const Method& method, CallContext& context,
                 const google::protobuf::Message& request, google::protobuf::Message& response) {
  if (Status late = before_handler(context); !late.ok()) return late;
  return after_handler(method.invoke(context, request, response), context);
}

Status run_stream(const Method& method, CallContext& context, MessageReader& requests,
                  MessageWriter& responses) {
  if (Status late = before_handler(context); !late.ok()) return late;
  return after_handler(method.invoke_stream(context, requests, responses), context);
}

}  // namespace conduit::rpc
