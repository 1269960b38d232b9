#include "conduit/rpc/client_channel.hpp"

#include <utility>

namespace conduit::rpc {

RpcError::RpcError(Status status) : Error(status.to_string()), status_(std::move(status)) {}

void CallCanceller::cancel() {
  std::function<void()> hook;
  {
    std::lock_guard lock(mutex_);
    if (cancelled_) return;
    cancelled_ = true;
    hook = std::move(hook_);
    hook_ = nullptr;
  }
  if (hook) hook();
}

bool CallCanceller::cancelled() const {
  std::lock_guard lock(mutex_);
  return cancelled_;
}

bool CallCanceller::set_hook(std::function<void()> hook) {
  std::lock_guard lock(mutex_);
  if (cancelled_) return false;
  hook_ = std::move(hook);
  return true;
}

void CallCanceller::clear_hook() {
  std::lock_guard lock(mutex_);
  hook_ = nullptr;
}

namespace {

// The stream of a channel that cannot stream: nothing goes, nothing comes,
// and finish() says why.
class RefusedStream final : public ClientStream {
 public:
  RefusedStream(Status why, boost::asio::any_io_executor executor)
      : why_(std::move(why)), executor_(std::move(executor)) {}
  bool write(std::string_view) override { return false; }
  void writes_done() override {}
  bool read(std::string&) override { return false; }
  Status finish() override { return why_; }
  void cancel() override {}
  void start_write(std::string, std::function<void(bool)> done) override {
    boost::asio::post(executor_, [done = std::move(done)] { done(false); });
  }
  void start_read(std::string&, std::function<void(bool)> done) override {
    boost::asio::post(executor_, [done = std::move(done)] { done(false); });
  }
  void start_finish(std::function<void(Status)> done) override {
    boost::asio::post(executor_, [done = std::move(done), why = why_] { done(why); });
  }
  boost::asio::any_io_executor executor() const override { return executor_; }

 private:
  Status why_;
  boost::asio::any_io_executor executor_;
};

}  // namespace

std::unique_ptr<ClientStream> ClientChannel::open(const google::protobuf::MethodDescriptor& method,
                                                  const CallOptions&) {
  return std::make_unique<RefusedStream>(
      Status(StatusCode::unimplemented,
             method.full_name() +
                 " streams, and this channel's protocol carries one request "
                 "and one response per call (call it through a channel whose protocol streams)"),
      executor());
}

}  // namespace conduit::rpc
