// Runs the registry's entries and fills a Report.
#pragma once

#include <string>
#include <vector>

#include "compare/registry.hpp"
#include "compare/results.hpp"

namespace conduit::compare {

// Told about each figure as the run goes, to show progress.
class Progress {
 public:
  virtual ~Progress() = default;
  virtual void start(std::size_t figures) = 0;
  // `done` figures are finished; next comes `detail` of the row `row`
  // (both empty at the end).
  virtual void advance(std::size_t done, const std::string& row, const std::string& detail) = 0;
  virtual void finish() = 0;
};

// The entries `options.only` selects, in registry order. Throws Error naming
// the unknown keys and the valid ones.
std::vector<const Entry*> select_entries(const Registry& registry, const Options& options);

// Measures the selected entries. Figures that fail carry their error; the
// run goes on. Creates and removes its scratch directory and names.
Report run_comparison(const Registry& registry, const Options& options, Progress& progress);

// The figure a side's runs give: a failure or a cap in any of them stands
// (an error is never hidden behind a good run); else the best undisturbed
// run, itself disturbed when the two best undisturbed runs are further
// apart than `disagreement` (0.3: 30%); else, when every run was disturbed,
// the best of them with its reason.
Outcome<Latency> settle(const std::vector<Outcome<Latency>>& runs, double disagreement);
Outcome<Throughput> settle(const std::vector<Outcome<Throughput>>& runs, double disagreement);

Machine describe_machine();
Limits measure_limits(const Placement& placement);
// A busy-poll ping-pong of one cache line between the two CPUs, in us.
double cache_line_round_trip_us(const Placement& placement);

// Verdicts on the seed's claims from the figures of `report`.
std::vector<Verdict> judge_claims(const Report& report);

}  // namespace conduit::compare
