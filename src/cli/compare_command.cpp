#include "cli/compare_command.hpp"

#include <fmt/core.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "cli/exit_codes.hpp"
#include "compare/report.hpp"
#include "compare/runner.hpp"
#include "compare/svg_chart.hpp"
#include "conduit/error.hpp"

namespace conduit::cli {

namespace {

using compare::Options;

struct CompareSettings {
  bool quick = false;
  std::string sizes;
  std::string only;
  std::string pin;
  double duration = 0;
  std::string json_file, csv_file, svg_file;
  std::string mechanism;  // bench
};

CompareSettings settings;
CLI::App* compare_command = nullptr;
CLI::App* bench_command = nullptr;

void print_error(std::string_view what) {
  fmt::print(stderr, "conduit: error: {}\n", what);
}

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::stringstream stream(text);
  std::string part;
  while (std::getline(stream, part, separator))
    if (!part.empty()) parts.push_back(part);
  return parts;
}

// "64", "4K", "4KiB", "1M", "1MiB".
std::size_t parse_size(const std::string& text) {
  std::size_t end = 0;
  unsigned long long value = 0;
  try {
    value = std::stoull(text, &end);
  } catch (const std::exception&) {
    throw Error(fmt::format("--sizes: '{}' is not a size (examples: 64, 4K, 1M)", text));
  }
  std::string unit = text.substr(end);
  std::size_t scale = 1;
  if (unit == "K" || unit == "KiB" || unit == "k") scale = 1024;
  else if (unit == "M" || unit == "MiB" || unit == "m") scale = 1 << 20;
  else if (!unit.empty() && unit != "B")
    throw Error(fmt::format("--sizes: unknown unit in '{}' (use B, K or M)", text));
  std::size_t size = value * scale;
  if (size < compare::Pattern::kMinimumSize || size > (64u << 20))
    throw Error(fmt::format("--sizes: {} bytes is outside {}..64M", size,
                            compare::Pattern::kMinimumSize));
  return size;
}

std::pair<int, int> parse_pin(const std::string& text) {
  auto parts = split(text, ',');
  int online = static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN));
  try {
    if (parts.size() == 2) {
      int a = std::stoi(parts[0]), b = std::stoi(parts[1]);
      if (a >= 0 && b >= 0 && a < online && b < online) return {a, b};
    }
  } catch (const std::exception&) {
  }
  throw Error(fmt::format("--pin takes two CPU numbers, CPU,CPU, below {} (got '{}')", online,
                          text));
}

Options options_from_settings() {
  Options options;
  options.quick = settings.quick;
  options.duration_seconds = settings.quick ? 0.05 : 0.4;
  if (settings.duration > 0) options.duration_seconds = settings.duration;
  if (!settings.sizes.empty()) {
    options.throughput_sizes.clear();
    for (const auto& part : split(settings.sizes, ',')) options.throughput_sizes.push_back(parse_size(part));
  }
  options.only = split(settings.only, ',');
  if (!settings.pin.empty()) {
    options.pin = parse_pin(settings.pin);
  } else if (compare::usable_cpu_count() >= 2) {
    // The first two usable CPUs, so that spinning peers never share one.
    cpu_set_t set;
    sched_getaffinity(0, sizeof set, &set);
    std::vector<int> cpus;
    for (int cpu = 0; cpu < CPU_SETSIZE && cpus.size() < 2; ++cpu)
      if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
    options.pin = std::pair(cpus[0], cpus[1]);
  }
  return options;
}

// A bar on a terminal; a line per mechanism otherwise.
class ConsoleProgress : public compare::Progress {
 public:
  ConsoleProgress() : terminal_(::isatty(STDERR_FILENO)) {}
  void start(std::size_t figures) override { total_ = figures; }
  void advance(std::size_t done, const std::string& row, const std::string& detail) override {
    if (terminal_) {
      constexpr int kWidth = 30;
      int filled = total_ ? static_cast<int>(kWidth * done / total_) : kWidth;
      std::string text = row.empty() ? "" : fmt::format("{}: {}", row, detail).substr(0, 60);
      fmt::print(stderr, "\r\033[K[{}{}] {:>3}/{} {}", std::string(filled, '#'),
                 std::string(kWidth - filled, '.'), done, total_, text);
    } else if (!row.empty() && row != last_) {
      fmt::print(stderr, "conduit compare: [{}/{}] {}\n", done, total_, row);
      last_ = row;
    }
    std::fflush(stderr);
  }
  void finish() override {
    if (terminal_) fmt::print(stderr, "\r\033[K");
  }

 private:
  bool terminal_;
  std::size_t total_ = 0;
  std::string last_;
};

void write_file(const std::string& path, const std::string& text, const char* what) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) throw Error(fmt::format("could not write the {} to {}: check the directory exists and is writable", what, path));
}

bool every_figure_ok(const compare::Report& report) {
  for (const auto& row : report.rows) {
    for (const auto& m : row.latency)
      if (!m.conduit.error.empty() || !m.raw.error.empty()) return false;
    for (const auto& m : row.throughput)
      if (!m.conduit.error.empty() || !m.raw.error.empty()) return false;
  }
  return true;
}

int run(Options options) {
  compare::Registry registry = compare::default_registry();
  try {
    compare::select_entries(registry, options);
  } catch (const Error& error) {
    print_error(error.what());
    return kExitUsage;
  }
  if (options.pin && options.pin->first == options.pin->second)
    fmt::print(stderr,
               "conduit compare: warning: --pin puts both sides on CPU {}, so spinning "
               "mechanisms (shared memory) wait for the scheduler and look far slower than "
               "they are\n",
               options.pin->first);
  else if (compare::usable_cpu_count() < 2)
    fmt::print(stderr,
               "conduit compare: warning: only one CPU is usable, so each peer shares it with "
               "the other; spinning mechanisms (shared memory) look far slower than they are\n");
  ConsoleProgress progress;
  compare::Report report = compare::run_comparison(registry, options, progress);
  fmt::print("{}", compare::text_report(report, ::isatty(STDOUT_FILENO)));
  if (!settings.json_file.empty()) write_file(settings.json_file, compare::json_report(report), "JSON report");
  if (!settings.csv_file.empty()) write_file(settings.csv_file, compare::csv_report(report), "CSV report");
  if (!settings.svg_file.empty()) write_file(settings.svg_file, compare::svg_chart(report), "SVG chart");
  return every_figure_ok(report) ? kExitOk : kExitFailure;
}

// `conduit bench`: one mechanism, longer, more sizes, with histograms.
void go_in_depth(Options& options) {
  options.only = {settings.mechanism};
  options.histograms = true;
  if (settings.duration <= 0) options.duration_seconds = settings.quick ? 0.1 : 1.0;
  if (settings.sizes.empty()) {
    options.throughput_sizes.clear();
    for (std::size_t size = 16; size <= (4u << 20); size *= 4) options.throughput_sizes.push_back(size);
  }
  options.latency_sizes.clear();
  for (std::size_t size : options.throughput_sizes)
    if (size <= (1u << 20)) options.latency_sizes.push_back(size);
}

int measure(bool in_depth) {
  Options options;
  try {
    options = options_from_settings();
  } catch (const Error& error) {
    print_error(error.what());
    return kExitUsage;
  }
  if (in_depth) go_in_depth(options);
  return run(options);
}

void add_output_options(CLI::App* command) {
  command->add_option("--json", settings.json_file, "Also write every figure as JSON to FILE");
  command->add_option("--csv", settings.csv_file, "Also write every figure as CSV to FILE");
  command->add_option("--svg", settings.svg_file, "Also draw latency and throughput to FILE (SVG)");
  command->add_option("--sizes", settings.sizes,
                      "Throughput message sizes, comma-separated (e.g. 64,4K,64K,1M)");
  command->add_option("--duration", settings.duration, "Seconds timed per figure, split over its two runs (after warm-up)")
      ->check(CLI::PositiveNumber);
  command->add_option("--pin", settings.pin,
                      "CPUs for the measuring process and its peer, CPU,CPU (default: the first "
                      "two usable)");
}

}  // namespace

void add_compare_commands(CLI::App& app) {
  compare_command = app.add_subcommand(
      "compare", "Measure every IPC mechanism on this machine, beside its raw system calls");
  compare_command->add_flag("--quick", settings.quick, "Short figures: the whole run in about 15 s");
  compare_command->add_option("--only", settings.only,
                              "Mechanisms to measure, comma-separated (default: all)");
  add_output_options(compare_command);
  compare_command->footer(
      "Mechanisms: " + compare::default_registry().keys() +
      "\nExamples:\n"
      "  conduit compare --quick\n"
      "  conduit compare --only pipe,shm,unix --sizes 64,1M\n"
      "  conduit compare --json out.json --svg chart.svg\n"
      "Exit code: 0 every figure measured; 1 a figure failed (the reason is printed); 2 bad "
      "options.");

  bench_command = app.add_subcommand(
      "bench", "Measure one mechanism in depth: more sizes, longer runs, latency histograms");
  bench_command->add_option("MECHANISM", settings.mechanism, "One of the compare mechanisms")
      ->required();
  bench_command->add_flag("--quick", settings.quick, "Short figures");
  add_output_options(bench_command);
  bench_command->footer("Mechanisms: " + compare::default_registry().keys());
}

std::optional<int> run_compare_commands() {
  try {
    if (compare_command->parsed()) return measure(false);
    if (bench_command->parsed()) return measure(true);
  } catch (const Error& error) {
    print_error(error.what());
    return kExitFailure;
  }
  return std::nullopt;
}

}  // namespace conduit::cli
