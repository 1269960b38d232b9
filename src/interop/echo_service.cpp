#include "interop/echo_service.hpp"

#include "conduit/interop/echo.conduit.h"

namespace conduit::rpc {

namespace {

class BytesEcho final : public interop::Echo {
 public:
  Status bytes(CallContext&, const google::protobuf::BytesValue& request,
               google::protobuf::BytesValue& response) override {
    response.set_value(request.value());
    return {};
  }
};

}  // namespace

void add_echo_service(ServiceTable& table) {
  static BytesEcho echo;
  echo.add_to(table);
}

}  // namespace conduit::rpc
