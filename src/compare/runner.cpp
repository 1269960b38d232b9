#include "compare/runner.hpp"

#include <fmt/core.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>

#include "compare/disturbance.hpp"
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

// How far apart two runs of a figure are: 0.3 when the worse is 30% off
// the better.
double spread(const Latency& better, const Latency& worse) {
  return better.p50_us > 0 ? worse.p50_us / better.p50_us - 1 : 0;
}
double spread(const Throughput& better, const Throughput& worse) {
  return worse.messages_per_second > 0 ? better.messages_per_second / worse.messages_per_second - 1
                                       : 0;
}

// conduit's cost against its raw loop (above 1: conduit is slower).
double overhead(const Latency& conduit, const Latency& raw) {
  return raw.p50_us > 0 ? conduit.p50_us / raw.p50_us : 1;
}
double overhead(const Throughput& conduit, const Throughput& raw) {
  return conduit.messages_per_second > 0 ? raw.messages_per_second / conduit.messages_per_second
                                         : 1;
}
// conduit's path holds its raw loop's system calls: a figure that beats
// the raw loop by more than this factor was measured wrong.
constexpr double kImpossibleOverhead = 0.5;

// settle() (runner.hpp), for either kind of figure.
template <typename Figure>
Outcome<Figure> settle_runs(const std::vector<Outcome<Figure>>& runs, double disagreement) {
  for (const Outcome<Figure>& run : runs)
    if (!run.ok()) return run;
  std::vector<const Outcome<Figure>*> clean, all;
  for (const Outcome<Figure>& run : runs) {
    all.push_back(&run);
    if (run.disturbed.empty()) clean.push_back(&run);
  }
  auto by_figure = [](const Outcome<Figure>* a, const Outcome<Figure>* b) {
    return better_than(*a->figure, *b->figure);
  };
  std::sort(clean.begin(), clean.end(), by_figure);
  std::sort(all.begin(), all.end(), by_figure);
  if (clean.empty()) return *all.front();
  Outcome<Figure> best = *clean.front();
  if (clean.size() >= 2) {
    const double apart = spread(*clean[0]->figure, *clean[1]->figure);
    if (apart > disagreement)
      best.disturbed = fmt::format("its two best runs are {:.0f}% apart", 100 * apart);
  }
  return best;
}

}  // namespace

Outcome<Latency> settle(const std::vector<Outcome<Latency>>& runs, double disagreement) {
  return settle_runs(runs, disagreement);
}
Outcome<Throughput> settle(const std::vector<Outcome<Throughput>>& runs, double disagreement) {
  return settle_runs(runs, disagreement);
}

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
  context.loop.duration = duration / 2;  // each side runs twice
  context.loop.warmup =
      std::max<std::chrono::nanoseconds>(duration / 10, std::chrono::milliseconds(20));
  context.loop.histogram = options.histograms;
  context.watchdog = std::chrono::seconds(30) + std::chrono::duration_cast<std::chrono::seconds>(
                                                    10 * (duration + context.loop.warmup));

  std::size_t sides = 0;
  for (const Entry* entry : entries) sides += entry->raw_name.empty() ? 1 : 2;
  const std::size_t runs = 2;
  const std::size_t planned =
      runs * sides * (options.latency_sizes.size() + options.throughput_sizes.size());
  const std::size_t total = 1 + planned;
  // Disturbed figures are measured again, up to half as many runs again.
  std::size_t reruns_left = planned / 2;
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
    // A run, watched for what else ran on the machine meanwhile.
    auto watched = [&](const auto& how, Side side, std::size_t size) {
      DisturbanceWatch watch;
      auto outcome = how(side, size, context);
      if (outcome.ok()) outcome.disturbed = watch.verdict();
      return outcome;
    };
    auto counted = [&](const auto& how, Side side, std::size_t size, const char* what) {
      progress.advance(
          done, entry->name,
          fmt::format("{}{} of {}", side == Side::raw ? "raw " : "", what, size_label(size)));
      auto outcome = watched(how, side, size);
      ++done;
      return outcome;
    };
    // Each side runs twice, in the order conduit, raw, raw, conduit, so that
    // a drift of the machine during the pair (a CPU waking up or slowing
    // down) weighs on both alike; each keeps its best undisturbed run
    // (settle()). A disturbed side runs again while reruns are left.
    auto measure = [&](auto& measured, const auto& how, std::size_t size, const char* what) {
      const bool raw = !entry->raw_name.empty();
      using Runs = std::vector<std::decay_t<decltype(measured.conduit)>>;
      Runs mine, theirs;
      mine.push_back(counted(how, Side::conduit, size, what));
      if (raw) {
        theirs.push_back(counted(how, Side::raw, size, what));
        theirs.push_back(counted(how, Side::raw, size, what));
      }
      mine.push_back(counted(how, Side::conduit, size, what));
      for (;;) {
        measured.conduit = settle(mine, options.disagreement);
        if (raw) measured.raw = settle(theirs, options.disagreement);
        bool impossible = false;
        if (raw && measured.conduit.ok() && measured.raw.ok()) {
          const double ratio = overhead(*measured.conduit.figure, *measured.raw.figure);
          if (ratio < kImpossibleOverhead) {
            impossible = true;
            const std::string why = fmt::format(
                "conduit's figure is {:.2f}x its raw loop's, which its path cannot beat", ratio);
            if (measured.conduit.disturbed.empty()) measured.conduit.disturbed = why;
            if (measured.raw.disturbed.empty()) measured.raw.disturbed = why;
          }
        }
        const bool mine_again = measured.conduit.ok() && !measured.conduit.disturbed.empty();
        const bool theirs_again = raw && measured.raw.ok() && !measured.raw.disturbed.empty();
        if ((!mine_again && !theirs_again) || reruns_left < (mine_again && theirs_again ? 2 : 1))
          break;
        const std::string why = mine_again ? measured.conduit.disturbed : measured.raw.disturbed;
        progress.advance(done, entry->name,
                         fmt::format("{} of {} again: {}", what, size_label(size), why));
        if (mine_again) {
          mine.push_back(watched(how, Side::conduit, size));
          --reruns_left, ++report.reruns;
        }
        if (theirs_again || (impossible && reruns_left > 0)) {
          theirs.push_back(watched(how, Side::raw, size));
          --reruns_left, ++report.reruns;
        }
      }
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
