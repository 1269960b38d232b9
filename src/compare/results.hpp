// What `conduit compare` and `conduit bench` measure, as plain data: the
// runner fills it, the text, JSON, CSV and SVG writers read it.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace conduit::compare {

// Round-trip latency of one message size, in microseconds, with the clock's
// own cost taken off every sample.
struct Latency {
  std::size_t size = 0;     // bytes per message
  std::size_t samples = 0;  // round trips timed (warm-up excluded)
  double p50_us = 0, p99_us = 0, p999_us = 0, max_us = 0;
  // Samples by power-of-two bucket: histogram[k] counts round trips that took
  // [2^(k-1), 2^k) nanoseconds (bucket 0: under 1 ns). Filled for `bench`.
  std::vector<std::size_t> histogram;
};

// One-way throughput of one message size.
struct Throughput {
  std::size_t size = 0;  // bytes per message
  std::size_t messages = 0;
  double seconds = 0;
  double messages_per_second = 0;
  double megabytes_per_second = 0;  // 10^6 bytes
};

// A figure, or why there is none: the mechanism cannot carry the size (a
// kernel limit: `capped_at` holds the largest size it can), or the run failed.
template <typename Figure>
struct Outcome {
  std::optional<Figure> figure;
  std::optional<std::size_t> capped_at;
  std::string error;  // non-empty when the run failed; the reason
  // Non-empty when the figure cannot be trusted, and why: something else
  // ran on the machine meanwhile, its runs disagree, or it beats the raw
  // loop it is built on. The best figure there was, kept after reruns.
  std::string disturbed;

  bool ok() const { return figure.has_value(); }
};

// Measured through conduit, and with the bare system calls of the same
// mechanism in the same run. `overhead()` is conduit's cost as a ratio
// (latency: conduit / raw; throughput: raw / conduit), so above 1 means
// conduit is slower.
template <typename Figure>
struct Measured {
  Outcome<Figure> conduit;
  Outcome<Figure> raw;  // no figure and no error: this row has no raw loop
};

// One mechanism (IPC) or one protocol over one transport (RPC).
struct Row {
  std::string family;     // "IPC" or "RPC"
  std::string key;        // what --only and `conduit bench` take: "pipe", "shm-loan"
  std::string name;       // what people read: "anonymous pipe"
  std::string transport;  // RPC: "tcp", "unix", ...; empty for IPC
  std::string raw_name;   // what the raw loop does: "write/read on two pipes"
  std::vector<Measured<Latency>> latency;        // by message size
  std::vector<Measured<Throughput>> throughput;  // by message size
  // Anything else worth a column, e.g. "bytes_on_wire_per_call".
  std::map<std::string, double> extra;
};

struct Machine {
  std::string cpu_model;
  int cpus_online = 0;
  int cpus_usable = 0;  // in this process's affinity mask
  std::string kernel;   // uname -sr
  std::string hostname;
};

// The machine's own ceilings, measured in the same run.
struct Limits {
  double memcpy_gb_per_second = 0;      // single process, 1 MiB blocks, cache-hot
  double cache_line_round_trip_us = 0;  // busy-poll ping-pong between the two CPUs
  // The same at the end of the run: a virtual machine's CPUs can be moved
  // while it runs, and this shows it.
  double cache_line_round_trip_end_us = 0;
  double clock_overhead_ns = 0;  // one steady_clock::now(), subtracted from samples
};

struct Options {
  bool quick = false;
  double duration_seconds = 0.4;  // per figure (two runs of half), warm-up excluded
  // A side's two best runs further apart than this (0.3: 30%) disturb it.
  double disagreement = 0.3;
  std::vector<std::size_t> latency_sizes{64};
  std::vector<std::size_t> throughput_sizes{64, 4096, 65536, 1 << 20};
  std::vector<std::string> only;           // row keys; empty: all
  std::optional<std::pair<int, int>> pin;  // CPUs for the measuring side and its peer
  bool histograms = false;                 // fill Latency::histogram
};

// A seed claim and what this run says of it.
struct Verdict {
  std::string claim;    // "Shared memory: fastest IPC method"
  std::string verdict;  // "yes", "no", "partly", "not measured"
  std::string reason;   // "0.4 µs p50 vs 5.1 µs for a pipe"
};

struct Report {
  Machine machine;
  Options options;
  Limits limits;
  std::vector<Row> rows;
  std::vector<Verdict> verdicts;
  std::size_t reruns = 0;  // runs made again because a figure was disturbed
  std::string started_at;  // ISO 8601, UTC
  double elapsed_seconds = 0;
};

}  // namespace conduit::compare
