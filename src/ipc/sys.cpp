#include "sys.hpp"

#include <unistd.h>

namespace conduit::ipc::sys {

const Calls& real_calls() {
  static const Calls real{::read, ::writev, ::sendmsg, ::recvmsg, ::poll};
  return real;
}

Calls& calls() {
  static Calls current = real_calls();
  return current;
}

}  // namespace conduit::ipc::sys
