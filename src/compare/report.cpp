#include "compare/report.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>

namespace conduit::compare {

namespace {

// Three significant figures or so: 0.123, 12.3, 1234.
std::string number(double value) {
  if (!std::isfinite(value)) return "-";
  double magnitude = std::fabs(value);
  if (magnitude < 10) return fmt::format("{:.2f}", value);
  if (magnitude < 100) return fmt::format("{:.1f}", value);
  return fmt::format("{:.0f}", value);
}

std::string ratio(double value) {
  return std::isfinite(value) && value > 0 ? fmt::format("{:.2f}x", value) : "-";
}

struct Style {
  bool colour;
  std::string paint(const std::string& text, const char* code) const {
    return colour ? fmt::format("\033[{}m{}\033[0m", code, text) : text;
  }
  std::string bold(const std::string& text) const { return paint(text, "1"); }
  std::string dim(const std::string& text) const { return paint(text, "2"); }
};

std::string row_label(const Row& row) {
  return row.transport.empty() ? row.name : fmt::format("{} ({})", row.name, row.transport);
}

// A figure as printed: "~" in front when it is disturbed.
template <typename Figure>
std::string shown(const Outcome<Figure>& outcome, const std::string& text) {
  return outcome.disturbed.empty() ? text : "~" + text;
}

template <typename Figure>
std::string why_missing(const Outcome<Figure>& outcome) {
  if (outcome.capped_at) return fmt::format("max {}", size_label(*outcome.capped_at));
  if (!outcome.error.empty()) return "failed";
  return "-";
}

// The width of the label column of a family's tables.
std::size_t label_width(const Report& report, const std::string& family) {
  std::size_t width = 34;
  for (const Row& row : report.rows)
    if (row.family == family) width = std::max(width, row_label(row).size());
  return width;
}

std::vector<std::string> families_of(const Report& report) {
  std::vector<std::string> families;
  for (const Row& row : report.rows)
    if (std::find(families.begin(), families.end(), row.family) == families.end())
      families.push_back(row.family);
  return families;
}

void latency_table(std::string& out, const Report& report, const std::string& family,
                   std::size_t index, const Style& style) {
  std::size_t size = report.options.latency_sizes[index];
  out += style.bold(fmt::format("{}: round trip of {} messages between two processes (us)\n",
                                family, size_label(size)));
  const std::size_t width = label_width(report, family);
  out += fmt::format("  {:<{}} {:>9} {:>9} {:>9} {:>9}   {:>9} {:>9}\n", "", width, "p50", "p99",
                     "p99.9", "max", "raw p50", "overhead");
  for (const Row& row : report.rows) {
    if (row.family != family || index >= row.latency.size()) continue;
    const Measured<Latency>& measured = row.latency[index];
    std::string line = fmt::format("  {:<{}}", row_label(row), width);
    if (measured.conduit.ok()) {
      const Latency& l = *measured.conduit.figure;
      line += fmt::format(" {:>9} {:>9} {:>9} {:>9}", shown(measured.conduit, number(l.p50_us)),
                          number(l.p99_us), number(l.p999_us), number(l.max_us));
    } else {
      line += fmt::format(" {:>9} {:>9} {:>9} {:>9}", why_missing(measured.conduit), "", "", "");
    }
    if (measured.raw.ok()) {
      double raw = measured.raw.figure->p50_us;
      const bool either = !measured.raw.disturbed.empty() || !measured.conduit.disturbed.empty();
      line += fmt::format("   {:>9} {:>9}", shown(measured.raw, number(raw)),
                          measured.conduit.ok()
                              ? (either ? "~" : "") + ratio(measured.conduit.figure->p50_us / raw)
                              : "-");
    } else {
      line += fmt::format("   {:>9} {:>9}", why_missing(measured.raw), "");
    }
    out += line + "\n";
  }
  out += "\n";
}

// For `conduit bench`: where the round trips of each size fell, by power of
// two of nanoseconds, as bars.
void histograms(std::string& out, const Report& report, const std::string& family,
                const Style& style) {
  for (const Row& row : report.rows) {
    if (row.family != family) continue;
    for (const Measured<Latency>& measured : row.latency) {
      if (!measured.conduit.ok() || measured.conduit.figure->histogram.empty()) continue;
      const Latency& latency = *measured.conduit.figure;
      out += style.bold(fmt::format("{}: round trips of {} messages, {} samples\n", row_label(row),
                                    size_label(latency.size), latency.samples));
      std::size_t largest = *std::max_element(latency.histogram.begin(), latency.histogram.end());
      for (std::size_t k = 0; k < latency.histogram.size(); ++k) {
        std::size_t count = latency.histogram[k];
        if (count == 0) continue;
        double from_us = k == 0 ? 0 : std::ldexp(1.0, static_cast<int>(k) - 1) / 1000.0;
        double to_us = std::ldexp(1.0, static_cast<int>(k)) / 1000.0;
        auto width = static_cast<std::size_t>(std::ceil(40.0 * count / largest));
        out += fmt::format("  {:>9} - {:<9} us {:>9}  {}\n", number(from_us), number(to_us), count,
                           std::string(width, '#'));
      }
      out += "\n";
    }
  }
}

void throughput_table(std::string& out, const Report& report, const std::string& family,
                      bool megabytes, const Style& style) {
  const auto& sizes = report.options.throughput_sizes;
  if (family == "RPC")
    out += style.bold(fmt::format(
        "RPC: echo calls one after another on one connection ({}; overhead against raw round "
        "trips of the same bytes)\n",
        megabytes ? "payload MB/s" : "calls/s"));
  else
    out += style.bold(fmt::format(
        "{}: one-way throughput between two processes ({}; conduit's overhead against the raw "
        "loop)\n",
        family, megabytes ? "MB/s" : "messages/s"));
  const std::size_t width = label_width(report, family);
  out += fmt::format("  {:<{}}", "", width);
  for (std::size_t size : sizes) out += fmt::format(" {:>17}", size_label(size));
  out += "\n";
  for (const Row& row : report.rows) {
    if (row.family != family) continue;
    std::string line = fmt::format("  {:<{}}", row_label(row), width);
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      if (i >= row.throughput.size()) {
        line += fmt::format(" {:>17}", "-");
        continue;
      }
      const Measured<Throughput>& measured = row.throughput[i];
      if (!measured.conduit.ok()) {
        line += fmt::format(" {:>17}", why_missing(measured.conduit));
        continue;
      }
      const Throughput& t = *measured.conduit.figure;
      double value = megabytes ? t.megabytes_per_second : t.messages_per_second;
      std::string cell = shown(measured.conduit, number(value));
      if (measured.raw.ok())
        cell += " (" +
                shown(measured.raw,
                      ratio(measured.raw.figure->messages_per_second / t.messages_per_second)) +
                ")";
      line += fmt::format(" {:>17}", cell);
    }
    out += line + "\n";
  }
  out += "\n";
}

void failures(std::string& out, const Report& report, const Style& style) {
  std::string text;
  auto note = [&](const Row& row, const char* side, const char* what, std::size_t size,
                  const std::string& error) {
    if (!error.empty())
      text += fmt::format("  {}{}, {} of {}: {}\n", row_label(row), side, what, size_label(size),
                          error);
  };
  for (const Row& row : report.rows) {
    for (std::size_t i = 0; i < row.latency.size(); ++i) {
      note(row, "", "round trips", report.options.latency_sizes[i], row.latency[i].conduit.error);
      note(row, " (raw)", "round trips", report.options.latency_sizes[i], row.latency[i].raw.error);
    }
    for (std::size_t i = 0; i < row.throughput.size(); ++i) {
      note(row, "", "throughput", report.options.throughput_sizes[i],
           row.throughput[i].conduit.error);
      note(row, " (raw)", "throughput", report.options.throughput_sizes[i],
           row.throughput[i].raw.error);
    }
  }
  if (!text.empty())
    out += style.paint("Failed figures (no number is printed for them)\n", "31") + text + "\n";
}

void disturbed(std::string& out, const Report& report, const Style& style) {
  std::string text;
  auto note = [&](const Row& row, const char* side, const char* what, std::size_t size,
                  const std::string& why) {
    if (!why.empty())
      text +=
          fmt::format("  {}{}, {} of {}: {}\n", row_label(row), side, what, size_label(size), why);
  };
  for (const Row& row : report.rows) {
    for (std::size_t i = 0; i < row.latency.size(); ++i) {
      note(row, "", "round trips", report.options.latency_sizes[i],
           row.latency[i].conduit.disturbed);
      note(row, " (raw)", "round trips", report.options.latency_sizes[i],
           row.latency[i].raw.disturbed);
    }
    for (std::size_t i = 0; i < row.throughput.size(); ++i) {
      note(row, "", "throughput", report.options.throughput_sizes[i],
           row.throughput[i].conduit.disturbed);
      note(row, " (raw)", "throughput", report.options.throughput_sizes[i],
           row.throughput[i].raw.disturbed);
    }
  }
  const std::string moved = cpus_moved(report);
  if (text.empty() && moved.empty()) return;
  out += style.paint(fmt::format("~ Disturbed figures, kept after {} rerun{} (run again on a quiet "
                                 "machine before drawing conclusions from them)\n",
                                 report.reruns, report.reruns == 1 ? "" : "s"),
                     "33") +
         text;
  if (!moved.empty()) out += "  " + moved + "\n";
  out += "\n";
}

std::string json_string(const std::string& text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20)
          out += fmt::format("\\u{:04x}", c);
        else
          out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

std::string json_number(double value) {
  return std::isfinite(value) ? fmt::format("{}", value) : "null";
}

template <typename Figure, typename Write>
std::string json_outcome(const Outcome<Figure>& outcome, Write write) {
  if (outcome.figure && !outcome.disturbed.empty()) {
    std::string text = write(*outcome.figure);
    text.pop_back();  // the closing brace
    return text + ",\"disturbed\":" + json_string(outcome.disturbed) + "}";
  }
  if (outcome.figure) return write(*outcome.figure);
  if (outcome.capped_at) return fmt::format("{{\"capped_at\":{}}}", *outcome.capped_at);
  if (!outcome.error.empty()) return fmt::format("{{\"error\":{}}}", json_string(outcome.error));
  return "null";
}

std::string json_latency(const Latency& l) {
  std::string histogram;
  for (std::size_t count : l.histogram)
    histogram += (histogram.empty() ? "" : ",") + std::to_string(count);
  return fmt::format(
      "{{\"size\":{},\"samples\":{},\"p50_us\":{},\"p99_us\":{},\"p999_us\":{},\"max_us\":{}{}}}",
      l.size, l.samples, json_number(l.p50_us), json_number(l.p99_us), json_number(l.p999_us),
      json_number(l.max_us),
      l.histogram.empty() ? "" : ",\"histogram_log2_ns\":[" + histogram + "]");
}

std::string json_throughput(const Throughput& t) {
  return fmt::format(
      "{{\"size\":{},\"messages\":{},\"seconds\":{},\"messages_per_second\":{},"
      "\"megabytes_per_second\":{}}}",
      t.size, t.messages, json_number(t.seconds), json_number(t.messages_per_second),
      json_number(t.megabytes_per_second));
}

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\n") == std::string::npos) return text;
  std::string out = "\"";
  for (char c : text) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

}  // namespace

std::string cpus_moved(const Report& report) {
  const double start = report.limits.cache_line_round_trip_us;
  const double end = report.limits.cache_line_round_trip_end_us;
  if (start <= 0 || end <= 0 || std::max(start, end) / std::min(start, end) <= 1.3) return {};
  return fmt::format(
      "the CPUs changed during the run (cache-line ping-pong {} us at the start, {} us at the "
      "end): figures taken at different times may not compare",
      number(start), number(end));
}

std::string size_label(std::size_t size) {
  if (size >= (1u << 20) && size % (1u << 20) == 0) return fmt::format("{} MiB", size >> 20);
  if (size >= 1024 && size % 1024 == 0) return fmt::format("{} KiB", size >> 10);
  return fmt::format("{} B", size);
}

std::string text_report(const Report& report, bool colour) {
  Style style{colour};
  std::string out;
  const Machine& m = report.machine;
  out += style.bold(fmt::format("conduit compare: {}, {} CPUs ({} usable), {}; {}\n", m.cpu_model,
                                m.cpus_online, m.cpus_usable, m.kernel, report.started_at));
  out += style.dim(fmt::format(
      "each figure: {} after warm-up, every message checked;\n{}; {:.0f} s in all\n\n",
      fmt::format("the better of two runs of {:.2f} s (conduit, raw, raw, conduit{}), run "
                  "again while disturbed (~)",
                  report.options.duration_seconds / 2, report.options.quick ? "; --quick" : ""),
      report.options.pin ? fmt::format("measuring side on CPU {}, its peer on CPU {}",
                                       report.options.pin->first, report.options.pin->second)
                         : std::string("CPUs chosen by the scheduler"),
      report.elapsed_seconds));
  out += style.bold("Machine limits, measured in this run\n");
  out += fmt::format("  {:<50} {:>8} GB/s\n", "memcpy, one process, 1 MiB blocks",
                     number(report.limits.memcpy_gb_per_second));
  out += fmt::format("  {:<50} {:>8} us at the start, {} us at the end\n",
                     "cache-line ping-pong between two CPUs (round trip)",
                     number(report.limits.cache_line_round_trip_us),
                     number(report.limits.cache_line_round_trip_end_us));
  out += fmt::format("  {:<50} {:>8} ns\n\n", "reading the clock (taken off every sample)",
                     number(report.limits.clock_overhead_ns));
  for (const std::string& family : families_of(report)) {
    for (std::size_t i = 0; i < report.options.latency_sizes.size(); ++i)
      latency_table(out, report, family, i, style);
    if (report.options.histograms) histograms(out, report, family, style);
    if (!report.options.throughput_sizes.empty()) {
      throughput_table(out, report, family, true, style);
      throughput_table(out, report, family, false, style);
    }
    for (const Row& row : report.rows) {
      if (row.family != family || row.extra.empty()) continue;
      std::string figures;
      for (const auto& [name, value] : row.extra)
        figures += fmt::format("{}{} {}", figures.empty() ? "" : ", ", number(value), name);
      out += fmt::format("  {}: {}\n", row_label(row), figures);
    }
    out += style.dim("  raw loops: ");
    std::string legend;
    for (const Row& row : report.rows)
      if (row.family == family && !row.raw_name.empty())
        legend += fmt::format("{}{}: {}", legend.empty() ? "" : "; ", row.key, row.raw_name);
    out += style.dim(legend) + "\n";
    out += style.dim("  overhead: conduit's time per message over the raw loop's (1.00x: none)") +
           "\n\n";
  }
  failures(out, report, style);
  disturbed(out, report, style);
  if (!report.verdicts.empty()) {
    out += style.bold("The seed's claims, measured here\n");
    for (const Verdict& v : report.verdicts) {
      const char* code = v.verdict == "yes" ? "32" : v.verdict == "no" ? "31" : "33";
      out += fmt::format("  {}: {} {}\n", v.claim, style.paint(v.verdict, code),
                         v.reason.empty() ? "" : "- " + v.reason);
    }
  }
  return out;
}

std::string json_report(const Report& report) {
  const Machine& m = report.machine;
  const Options& o = report.options;
  auto sizes = [](const std::vector<std::size_t>& list) {
    std::string text;
    for (std::size_t size : list) text += (text.empty() ? "" : ",") + std::to_string(size);
    return "[" + text + "]";
  };
  std::string only;
  for (const auto& key : o.only) only += (only.empty() ? "" : ",") + json_string(key);
  std::string out = "{\n";
  out += fmt::format(
      "  \"tool\":\"conduit compare\",\"started_at\":{},\"elapsed_seconds\":{},\"reruns\":{},\n",
      json_string(report.started_at), json_number(report.elapsed_seconds), report.reruns);
  out += fmt::format(
      "  \"machine\":{{\"cpu_model\":{},\"cpus_online\":{},\"cpus_usable\":{},\"kernel\":{},"
      "\"hostname\":{}}},\n",
      json_string(m.cpu_model), m.cpus_online, m.cpus_usable, json_string(m.kernel),
      json_string(m.hostname));
  out += fmt::format(
      "  \"options\":{{\"quick\":{},\"duration_seconds\":{},\"latency_sizes\":{},"
      "\"throughput_sizes\":{},\"only\":[{}],\"pin\":{}}},\n",
      o.quick ? "true" : "false", json_number(o.duration_seconds), sizes(o.latency_sizes),
      sizes(o.throughput_sizes), only,
      o.pin ? fmt::format("[{},{}]", o.pin->first, o.pin->second) : "null");
  out += fmt::format(
      "  \"limits\":{{\"memcpy_gb_per_second\":{},\"cache_line_round_trip_us\":{},"
      "\"cache_line_round_trip_end_us\":{},\"clock_overhead_ns\":{}}},\n",
      json_number(report.limits.memcpy_gb_per_second),
      json_number(report.limits.cache_line_round_trip_us),
      json_number(report.limits.cache_line_round_trip_end_us),
      json_number(report.limits.clock_overhead_ns));
  out += "  \"rows\":[\n";
  for (std::size_t r = 0; r < report.rows.size(); ++r) {
    const Row& row = report.rows[r];
    std::string latency, throughput, extra;
    for (const auto& measured : row.latency)
      latency += fmt::format("{}{{\"conduit\":{},\"raw\":{}}}", latency.empty() ? "" : ",",
                             json_outcome(measured.conduit, json_latency),
                             json_outcome(measured.raw, json_latency));
    for (const auto& measured : row.throughput)
      throughput += fmt::format("{}{{\"conduit\":{},\"raw\":{}}}", throughput.empty() ? "" : ",",
                                json_outcome(measured.conduit, json_throughput),
                                json_outcome(measured.raw, json_throughput));
    for (const auto& [name, value] : row.extra)
      extra +=
          fmt::format("{}{}:{}", extra.empty() ? "" : ",", json_string(name), json_number(value));
    out += fmt::format(
        "    {{\"family\":{},\"key\":{},\"name\":{},\"transport\":{},\"raw\":{},\"latency\":[{}],"
        "\"throughput\":[{}],\"extra\":{{{}}}}}{}\n",
        json_string(row.family), json_string(row.key), json_string(row.name),
        json_string(row.transport), json_string(row.raw_name), latency, throughput, extra,
        r + 1 < report.rows.size() ? "," : "");
  }
  out += "  ],\n  \"verdicts\":[\n";
  for (std::size_t v = 0; v < report.verdicts.size(); ++v) {
    const Verdict& verdict = report.verdicts[v];
    out += fmt::format("    {{\"claim\":{},\"verdict\":{},\"reason\":{}}}{}\n",
                       json_string(verdict.claim), json_string(verdict.verdict),
                       json_string(verdict.reason), v + 1 < report.verdicts.size() ? "," : "");
  }
  out += "  ]\n}\n";
  return out;
}

std::string csv_report(const Report& report) {
  std::string out = "family,key,name,transport,side,metric,size,value,unit\n";
  auto line = [&](const Row& row, const char* side, const char* metric, std::size_t size,
                  double value, const char* unit) {
    out += fmt::format("{},{},{},{},{},{},{},{},{}\n", csv_field(row.family), csv_field(row.key),
                       csv_field(row.name), csv_field(row.transport), side, metric, size,
                       json_number(value), unit);
  };
  auto latency = [&](const Row& row, const char* side, const Outcome<Latency>& outcome) {
    if (!outcome.figure) return;
    const Latency& l = *outcome.figure;
    line(row, side, "latency_p50", l.size, l.p50_us, "us");
    line(row, side, "latency_p99", l.size, l.p99_us, "us");
    line(row, side, "latency_p999", l.size, l.p999_us, "us");
    line(row, side, "latency_max", l.size, l.max_us, "us");
  };
  auto throughput = [&](const Row& row, const char* side, const Outcome<Throughput>& outcome) {
    if (!outcome.figure) return;
    const Throughput& t = *outcome.figure;
    line(row, side, "throughput", t.size, t.messages_per_second, "messages/s");
    line(row, side, "throughput", t.size, t.megabytes_per_second, "MB/s");
  };
  for (const Row& row : report.rows) {
    for (const auto& measured : row.latency) {
      latency(row, "conduit", measured.conduit);
      latency(row, "raw", measured.raw);
    }
    for (const auto& measured : row.throughput) {
      throughput(row, "conduit", measured.conduit);
      throughput(row, "raw", measured.raw);
    }
    for (const auto& [name, value] : row.extra) line(row, "conduit", name.c_str(), 0, value, "");
  }
  return out;
}

}  // namespace conduit::compare
