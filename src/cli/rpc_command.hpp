// `conduit serve` and `conduit call`: the RPC server and client.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>

namespace conduit::cli {

// Registers `serve` and `call` on app.
void add_rpc_commands(CLI::App& app);

// Runs whichever of them was chosen; std::nullopt when neither was.
std::optional<int> run_rpc_commands();

}  // namespace conduit::cli
