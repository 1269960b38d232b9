// Reading the kernel's tunables, so an error caused by a limit can say which
// limit it was and what it is set to now.
#pragma once

#include <string>
#include <string_view>

namespace conduit::ipc::detail {

// The current value of a sysctl given by its dotted name ("kernel.shmmax"),
// read from /proc/sys in this process's namespaces, whitespace runs collapsed
// to one space; "unknown" when it cannot be read.
std::string kernel_setting(std::string_view name);

// "kernel.shmmax = 4096" (the name and its current value), for error hints.
std::string describe_kernel_setting(std::string_view name);

}  // namespace conduit::ipc::detail
