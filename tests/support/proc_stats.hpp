// What /proc says of a running process, for tests that bound a server's
// use of the machine.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

namespace conduit::testing {

// CPU time (user and system) process `pid` has used so far, in seconds,
// from /proc/PID/stat. Throws when the process is gone.
inline double cpu_seconds(pid_t pid) {
  std::ifstream file("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  // The command name, in parentheses, may hold spaces: fields are counted
  // after its closing one, from field 3 (state); utime and stime are 14, 15.
  const auto name_end = stat.rfind(')');
  if (name_end == std::string::npos) throw std::runtime_error("no process " + std::to_string(pid));
  std::istringstream fields(stat.substr(name_end + 1));
  std::string field;
  long long ticks = 0;
  for (int number = 3; number <= 15 && fields >> field; ++number)
    if (number >= 14) ticks += std::stoll(field);
  return static_cast<double>(ticks) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

}  // namespace conduit::testing
