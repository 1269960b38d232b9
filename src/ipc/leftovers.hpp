// Finding what killed processes left behind (internal).
//
// A client that is killed cannot remove what it created: its FIFO pair
// (fifo:), its reply queue (mq:). Their names carry the client's pid, so a
// server tells a leftover from a live client's by asking whether that
// process still exists. Like every pid check, this assumes the server and
// its clients share a PID namespace.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "conduit/ipc/file_descriptor.hpp"

namespace conduit::ipc {

// How often a server looks for what its killed clients left behind.
inline constexpr std::chrono::seconds kLeftoverSweepInterval{1};

// True when no process has this pid (kill(pid, 0) fails with ESRCH).
bool process_gone(pid_t pid);

// This process's PID namespace (the inode of /proc/self/ns/pid; 0 when
// unknown), recorded beside a pid so that a process in another namespace,
// where the pid means nothing, does not take it for gone.
std::uint64_t pid_namespace();

// process_gone(pid), when `recorded_namespace` is this process's own; false
// (cannot tell) otherwise.
bool process_gone(pid_t pid, std::uint64_t recorded_namespace);

// The hint of the error a client of a killed server gets: "the server is
// gone (pid PID ended without removing WHAT); a server started on URI takes
// it over".
std::string server_gone_hint(pid_t pid, const std::string& what, const std::string& uri);

// The pid in `name` when it reads "PREFIX PID" or "PREFIX PID.MORE" (PID: a
// positive decimal number); std::nullopt otherwise. `rest` receives MORE.
std::optional<pid_t> pid_after(std::string_view name, std::string_view prefix,
                               std::string_view* rest = nullptr);

// The names in a directory (not "." and ".."); empty when it cannot be read.
std::vector<std::string> directory_entries(const std::string& path);
// The same for a directory open as `fd` (read from its start each time).
std::vector<std::string> directory_entries(int fd);

// A descriptor on the directory of this IPC namespace's mqueue filesystem,
// where every POSIX message queue is a file: /dev/mqueue when it is mounted
// there, else a mount of its own in a mount namespace of its own (which needs
// CAP_SYS_ADMIN), seen by nobody else. Empty when neither can be had: then
// queues cannot be listed.
FileDescriptor open_mqueue_directory();

}  // namespace conduit::ipc
