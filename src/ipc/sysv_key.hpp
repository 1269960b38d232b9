// How System V IPC objects are named in error messages.
#pragma once

#include <sys/ipc.h>

#include <cstdio>
#include <string>

namespace conduit::ipc::detail {

// "IPC_PRIVATE" or "key 0x0000abcd" (the form `ipcs` prints keys in).
inline std::string describe_sysv_key(key_t key) {
  if (key == IPC_PRIVATE) return "IPC_PRIVATE";
  char text[32];
  std::snprintf(text, sizeof text, "key 0x%08x", static_cast<unsigned>(key));
  return text;
}

}  // namespace conduit::ipc::detail
