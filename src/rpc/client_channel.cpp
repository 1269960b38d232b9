#include "conduit/rpc/client_channel.hpp"

#include <utility>

namespace conduit::rpc {

RpcError::RpcError(Status status) : Error(status.to_string()), status_(std::move(status)) {}

namespace {

// The stream of a channel that cannot stream: nothing goes, nothing comes,
// and finish() says why.
class RefusedStream final : public ClientStream {
 public:
  explicit RefusedStream(Status why) : why_(std::move(why)) {}
  bool write(std::string_view) override { return false; }
  void writes_done() override {}
  bool read(std::string&) override { return false; }
  Status finish() override { return why_; }
  void cancel() override {}

 private:
  Status why_;
};

}  // namespace

std::unique_ptr<ClientStream> ClientChannel::open(const google::protobuf::MethodDescriptor& method,
                                                  const CallOptions&) {
  return std::make_unique<RefusedStream>(
      Status(StatusCode::unimplemented,
             method.full_name() +
                 " streams, and this channel's protocol carries one request "
                 "and one response per call (call it through a channel whose protocol streams)"));
}

}  // namespace conduit::rpc
