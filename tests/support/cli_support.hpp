// Helpers for the tests that run the conduit binary: running it with
// arguments and checking for other programs on PATH.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace conduit::testing {

// Runs the conduit binary with args (stdin from /dev/null, or `input`).
inline CommandResult conduit(std::vector<std::string> args,
                             std::chrono::milliseconds timeout = std::chrono::seconds(30),
                             const std::string& input = "") {
  args.insert(args.begin(), conduit_binary());
  return run_command(args, timeout, input);
}

// True when `name` is a program the shell finds.
inline bool has_program(const std::string& name) {
  return run_command({"sh", "-c", "command -v " + name}).status.success();
}

}  // namespace conduit::testing
