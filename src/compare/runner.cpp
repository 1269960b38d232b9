#include "compare/runner.hpp"

#include <fmt/core.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>

#include "compare/report.hpp"
#include "conduit/error.hpp"

namespace conduit::compare {

namespace {

using Clock = std::chrono::steady_clock;

std::string utc_now() {
  std::time_t now = std::time(nullptr);
  std::tm parts{};
  gmtime_r(&now, &parts);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &parts);
  return text;
}

// A private directory for sockets and FIFOs, removed with everything in it.
class ScratchDirectory {
 public:
  ScratchDirectory() {
    char path[] = "/tmp/conduit-compare-XXXXXX";
    if (!::mkdtemp(path)) throw Error("mkdtemp(/tmp/conduit-compare-XXXXXX) failed");
    path_ = path;
  }
  ~ScratchDirectory() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  ScratchDirectory(const ScratchDirectory&) = delete;
  ScratchDirectory& operator=(const ScratchDirectory&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

bool better_than(const Latency& a, const Latency& b) {
  return a.p50_us < b.p50_us;
}

bool better_than(const Throughput& a, const Throughput& b) {
  return a.messages_per_second > b.messages_per_second;
}

// The better of two runs of the same figure; a failure or a cap in either
// stands, so an error is never hidden behind a good run.
template <typename Figure>
Outcome<Figure> better(Outcome<Figure> a, Outcome<Figure> b) {
  if (!a.ok()) return a;
  if (!b.ok()) return b;
  return better_than(*a.figure, *b.figure) ? a : b;
}

}  // namespace

std::vector<const Entry*> select_entries(const Registry& registry, const Options& options) {
  std::vector<const Entry*> selected;
  std::vector<std::string> unknown;
  for (const std::string& key : options.only) {
    if (!registry.find(key)) unknown.push_back(key);
  }
  if (!unknown.empty()) {
    std::string names;
    for (const auto& key : unknown) names += (names.empty() ? "" : ", ") + key;
    throw Error(fmt::format("unknown mechanism {}; choose from: {}", names, registry.keys()));
  }
  for (const Entry& entry : registry.entries()) {
    if (options.only.empty() ||
        std::find(options.only.begin(), options.only.end(), entry.key) != options.only.end())
      selected.push_back(&entry);
  }
  return selected;
}

Report run_comparison(const Registry& registry, const Options& options, Progress& progress) {
  auto started = Clock::now();
  Report report;
  report.options = options;
  report.started_at = utc_now();
  report.machine = describe_machine();
  std::vector<const Entry*> entries = select_entries(registry, options);

  Placement placement;
  placement.cpus = options.pin;
  if (placement.cpus) pin_to_cpu(placement.cpus->first);

  ScratchDirectory scratch;
  RunContext context;
  context.placement = placement;
  context.scratch = Scratch{scratch.path(), fmt::format("/conduit-compare-{}", ::getpid())};
  auto duration = std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::duration<double>(options.duration_seconds));
  context.loop.duration = options.quick ? duration : duration / 2;  // each side runs twice
  context.loop.warmup =
      std::max<std::chrono::nanoseconds>(duration / 10, std::chrono::milliseconds(20));
  context.loop.histogram = options.histograms;
  context.watchdog = std::chrono::seconds(30) + std::chrono::duration_cast<std::chrono::seconds>(
                                                    10 * (duration + context.loop.warmup));

  std::size_t sides = 0;
  for (const Entry* entry : entries) sides += entry->raw_name.empty() ? 1 : 2;
  const std::size_t runs = options.quick ? 1 : 2;
  const std::size_t total =
      1 + runs * sides * (options.latency_sizes.size() + options.throughput_sizes.size());
  progress.start(total);
  std::size_t done = 0;
  progress.advance(done, "the machine's limits", "");
  report.limits = measure_limits(placement);
  context.loop.clock_overhead_ns = report.limits.clock_overhead_ns;
  ++done;

  for (const Entry* entry : entries) {
    Row row;
    row.family = entry->family;
    row.key = entry->key;
    row.name = entry->name;
    row.transport = entry->transport;
    row.raw_name = entry->raw_name;
    auto run = [&](const auto& how, Side side, std::size_t size, const char* what) {
      progress.advance(done, entry->name,
                       fmt::format("{}{} of {}", side == Side::raw ? "raw " : "", what,
                                   size_label(size)));
      auto outcome = how(side, size, context);
      ++done;
      return outcome;
    };
    // Each side runs twice, in the order conduit, raw, raw, conduit, so that
    // a drift of the machine during the pair (a CPU waking up or slowing
    // down) weighs on both alike; each keeps its better run.
    auto measure = [&](auto& measured, const auto& how, std::size_t size, const char* what) {
      bool raw = !entry->raw_name.empty();
      if (options.quick) {  // one run each: a first look, not a verdict
        measured.conduit = run(how, Side::conduit, size, what);
        if (raw) measured.raw = run(how, Side::raw, size, what);
        return;
      }
      auto first = run(how, Side::conduit, size, what);
      if (raw) {
        auto raw_first = run(how, Side::raw, size, what);
        measured.raw = better(raw_first, run(how, Side::raw, size, what));
      }
      measured.conduit = better(first, run(how, Side::conduit, size, what));
    };
    for (std::size_t size : options.latency_sizes) {
      Measured<Latency> measured;
      measure(measured, entry->latency, size, "round trips");
      row.latency.push_back(std::move(measured));
    }
    for (std::size_t size : options.throughput_sizes) {
      Measured<Throughput> measured;
      measure(measured, entry->throughput, size, "throughput");
      row.throughput.push_back(std::move(measured));
    }
    if (entry->extra) row.extra = entry->extra(context);
    report.rows.push_back(std::move(row));
  }
  report.limits.cache_line_round_trip_end_us = cache_line_round_trip_us(placement);
  progress.advance(done, "", "");
  progress.finish();
  report.verdicts = judge_claims(report);
  report.elapsed_seconds = std::chrono::duration<double>(Clock::now() - started).count();
  return report;
}

}  // namespace conduit::compare
