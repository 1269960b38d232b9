// `conduit ipc ...`: echo server, pinger and a quick table over every URI.
#pragma once

#include <CLI/CLI.hpp>

namespace conduit::cli {

// Registers `ipc serve`, `ipc ping` and `ipc table` on app. The selected
// command runs when run_ipc_command() is called after parsing.
void add_ipc_command(CLI::App& app);

// Runs the ipc subcommand chosen on the command line; returns the exit code.
int run_ipc_command(CLI::App& app);

}  // namespace conduit::cli
