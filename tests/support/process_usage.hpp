// What the kernel says a running process holds, read from /proc: resident
// memory, threads and open descriptors, for tests that bound what a server
// keeps while clients misbehave.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

namespace conduit::testing {

struct ProcessUsage {
  std::size_t resident_bytes = 0;  // VmRSS
  std::size_t threads = 0;
  std::size_t descriptors = 0;  // entries of /proc/PID/fd
};

// Throws std::runtime_error when the process is gone.
inline ProcessUsage usage_of(pid_t pid) {
  const std::string dir = "/proc/" + std::to_string(pid);
  std::ifstream status(dir + "/status");
  if (!status) throw std::runtime_error("no " + dir + "/status: the process is gone");
  ProcessUsage usage;
  bool resident = false, threads = false;
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) {
      usage.resident_bytes = std::stoull(line.substr(6)) * 1024;  // "VmRSS:   9876 kB"
      resident = true;
    } else if (line.rfind("Threads:", 0) == 0) {
      usage.threads = std::stoull(line.substr(8));
      threads = true;
    }
  }
  if (!resident || !threads) throw std::runtime_error(dir + "/status has no VmRSS or Threads");
  std::error_code error;
  for (auto it = std::filesystem::directory_iterator(dir + "/fd", error);
       !error && it != std::filesystem::directory_iterator(); it.increment(error))
    ++usage.descriptors;
  if (error) throw std::runtime_error("cannot list " + dir + "/fd: " + error.message());
  return usage;
}

}  // namespace conduit::testing
