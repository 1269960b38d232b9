// Validation of POSIX IPC object names ("/name"), shared by shared memory and
// named semaphores, so a malformed name fails with the rule it broke instead
// of a bare EINVAL from glibc.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace conduit::ipc::detail {

// Throws SystemError(call, name, EINVAL, reason) unless `name` is one '/'
// followed by 1 to `max_length` characters, none of them '/'.
void check_posix_name(std::string_view call, const std::string& name, std::size_t max_length);

}  // namespace conduit::ipc::detail
