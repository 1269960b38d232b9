// `conduit compare` and `conduit bench MECHANISM`: the measured comparison.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>

namespace conduit::cli {

// Registers `compare` and `bench` on app.
void add_compare_commands(CLI::App& app);

// Runs whichever of them was chosen; std::nullopt when neither was.
std::optional<int> run_compare_commands();

}  // namespace conduit::cli
