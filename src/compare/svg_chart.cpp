#include "compare/svg_chart.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <iterator>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

namespace conduit::compare {
namespace {

// ---- text ----

// XML 1.0 forbids most control characters even when escaped, so they become
// spaces rather than breaking the document.
std::string escape_xml(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default: {
        auto byte = static_cast<unsigned char>(c);
        bool forbidden = byte < 0x20 && c != '\t' && c != '\n' && c != '\r';
        out += forbidden ? ' ' : c;
      }
    }
  }
  return out;
}

// A rough rendered width, enough to reserve room for labels: UTF-8
// continuation bytes do not count as characters.
double text_width(std::string_view text, double font_size) {
  auto characters = std::count_if(text.begin(), text.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  });
  return static_cast<double>(characters) * font_size * 0.6;
}

// "64 B", "4 KiB", "1 MiB", "1.5 KiB".
std::string size_label(double bytes) {
  constexpr std::array<std::string_view, 5> kUnits{"B", "KiB", "MiB", "GiB", "TiB"};
  std::size_t unit = 0;
  while (bytes >= 1024 && unit + 1 < kUnits.size()) {
    bytes /= 1024;
    ++unit;
  }
  int decimals = bytes == std::floor(bytes) ? 0 : 1;
  return fmt::format("{:.{}f} {}", bytes, decimals, kUnits[unit]);
}

// About three significant figures, never in exponent notation above 0.01.
std::string figure_label(double value) {
  if (value >= 100) return fmt::format("{:.0f}", value);
  if (value >= 10) return fmt::format("{:.1f}", value);
  if (value >= 1) return fmt::format("{:.2f}", value);
  if (value >= 0.01) return fmt::format("{:.3f}", value);
  return fmt::format("{:.2g}", value);
}

// 10^exponent as people write it: "0.01", "1", "1000", "10 000".
std::string decade_label(int exponent) {
  if (exponent < -4 || exponent > 9) return fmt::format("1e{}", exponent);
  if (exponent < 0) return fmt::format("{:.{}f}", std::pow(10.0, exponent), -exponent);
  std::string digits = "1" + std::string(static_cast<std::size_t>(exponent), '0');
  if (digits.size() <= 4) return digits;
  for (auto at = static_cast<std::ptrdiff_t>(digits.size()) - 3; at > 0; at -= 3)
    digits.insert(static_cast<std::size_t>(at), " ");
  return digits;
}

std::string row_label(const Row& row) {
  if (row.transport.empty()) return row.name;
  return fmt::format("{} ({})", row.name, row.transport);
}

// ---- colours ----

constexpr std::array<std::string_view, 14> kPalette{
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
    "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39"};
// Once the palette runs out, lines differ by dash pattern as well.
constexpr std::array<std::string_view, 4> kDashes{"", "8 4", "2 3", "10 3 2 3"};

struct Style {
  std::string_view colour;
  std::string_view dash;  // stroke-dasharray; empty: solid
};

Style style_of(std::size_t series) {
  return {kPalette[series % kPalette.size()], kDashes[(series / kPalette.size()) % kDashes.size()]};
}

std::string stroke(Style style, double width) {
  std::string out = fmt::format(R"(stroke="{}" stroke-width="{}")", style.colour, width);
  if (!style.dash.empty()) out += fmt::format(R"( stroke-dasharray="{}")", style.dash);
  return out;
}

// ---- figures worth drawing ----

bool positive(double value) {
  return std::isfinite(value) && value > 0;
}

struct LatencyBar {
  std::size_t series = 0;  // the row's index in the report: picks its colour
  std::string label;
  double p50_us = 0;
  double p99_us = 0;      // 0: not drawn
  double raw_p50_us = 0;  // 0: no raw loop, or it failed
};

struct Sample {
  double bytes = 0;
  double megabytes_per_second = 0;
};

struct ThroughputLine {
  std::size_t series = 0;
  std::string label;
  std::vector<Sample> samples;  // by size, ascending
};

std::optional<std::size_t> first_latency_size(const Options& options) {
  if (options.latency_sizes.empty()) return std::nullopt;
  return options.latency_sizes.front();
}

// The row's latency at the report's first latency size (or the row's first
// entry when the options name no sizes), or null.
const Measured<Latency>* first_size_latency(const Row& row, const Options& options) {
  auto size = first_latency_size(options);
  if (!size) return row.latency.empty() ? nullptr : &row.latency.front();
  for (const auto& measured : row.latency)
    if (measured.conduit.ok() && measured.conduit.figure->size == *size) return &measured;
  return nullptr;
}

std::optional<LatencyBar> latency_bar(const Report& report, std::size_t series) {
  const Row& row = report.rows[series];
  const Measured<Latency>* measured = first_size_latency(row, report.options);
  if (!measured || !measured->conduit.ok()) return std::nullopt;
  const Latency& conduit = *measured->conduit.figure;
  if (!positive(conduit.p50_us)) return std::nullopt;
  LatencyBar bar{series, row_label(row), conduit.p50_us};
  if (positive(conduit.p99_us)) bar.p99_us = conduit.p99_us;
  if (measured->raw.ok() && positive(measured->raw.figure->p50_us))
    bar.raw_p50_us = measured->raw.figure->p50_us;
  return bar;
}

std::vector<LatencyBar> latency_bars(const Report& report) {
  std::vector<LatencyBar> bars;
  for (std::size_t series = 0; series < report.rows.size(); ++series)
    if (auto bar = latency_bar(report, series)) bars.push_back(std::move(*bar));
  return bars;
}

bool drawable(const Outcome<Throughput>& outcome) {
  return outcome.ok() && !outcome.capped_at && outcome.error.empty() && outcome.figure->size > 0 &&
         positive(outcome.figure->megabytes_per_second);
}

std::vector<ThroughputLine> throughput_lines(const Report& report) {
  std::vector<ThroughputLine> lines;
  for (std::size_t series = 0; series < report.rows.size(); ++series) {
    const Row& row = report.rows[series];
    ThroughputLine line{series, row_label(row), {}};
    for (const auto& measured : row.throughput) {
      if (!drawable(measured.conduit)) continue;
      const Throughput& figure = *measured.conduit.figure;
      line.samples.push_back({static_cast<double>(figure.size), figure.megabytes_per_second});
    }
    if (line.samples.empty()) continue;
    std::sort(line.samples.begin(), line.samples.end(),
              [](const Sample& a, const Sample& b) { return a.bytes < b.bytes; });
    lines.push_back(std::move(line));
  }
  return lines;
}

// ---- geometry ----

struct Point {
  double x = 0;
  double y = 0;
};

// A coordinate as an attribute value; never "nan" or "inf".
std::string px(double value) {
  return fmt::format("{:.1f}", std::isfinite(value) ? value : 0.0);
}

// Maps positive values to pixels along a logarithmic axis whose ends are
// 10^low and 10^high. Values outside are pinned to the nearer end.
struct LogScale {
  double low = 0;
  double high = 1;
  double pixel_low = 0;
  double pixel_high = 1;

  double at(double value) const {
    if (!positive(value)) return pixel_low;
    double t = (std::log10(value) - low) / (high - low);
    return pixel_low + std::clamp(t, 0.0, 1.0) * (pixel_high - pixel_low);
  }
};

struct Decades {
  int low = 0;
  int high = 1;
};

// The whole decades around positive values, with a little room so that
// nothing sits exactly on an axis end. REQUIRES: values is not empty.
Decades decades_around(const std::vector<double>& values) {
  auto [min, max] = std::minmax_element(values.begin(), values.end());
  int low = static_cast<int>(std::floor(std::log10(*min) - 0.1));
  int high = static_cast<int>(std::ceil(std::log10(*max) + 0.02));
  return {low, std::max(high, low + 1)};
}

// ---- drawing ----

// Appends SVG elements; attributes are passed through, text content is escaped.
class Canvas {
 public:
  void line(Point from, Point to, std::string_view attributes) {
    append(R"(<line x1="{}" y1="{}" x2="{}" y2="{}" {}/>)", px(from.x), px(from.y), px(to.x),
           px(to.y), attributes);
  }
  void rect(Point corner, double width, double height, std::string_view attributes) {
    append(R"(<rect x="{}" y="{}" width="{}" height="{}" {}/>)", px(corner.x), px(corner.y),
           px(std::max(width, 0.0)), px(std::max(height, 0.0)), attributes);
  }
  void circle(Point centre, double radius, std::string_view attributes) {
    append(R"(<circle cx="{}" cy="{}" r="{}" {}/>)", px(centre.x), px(centre.y), px(radius),
           attributes);
  }
  void polyline(const std::vector<Point>& points, std::string_view attributes) {
    std::string coordinates;
    for (const Point& point : points)
      coordinates +=
          fmt::format("{}{},{}", coordinates.empty() ? "" : " ", px(point.x), px(point.y));
    append(R"(<polyline points="{}" fill="none" {}/>)", coordinates, attributes);
  }
  void text(Point at, std::string_view content, std::string_view attributes = "") {
    append(R"(<text x="{}" y="{}" {}>{}</text>)", px(at.x), px(at.y), attributes,
           escape_xml(content));
  }
  const std::string& body() const { return body_; }

 private:
  template <typename... Args>
  void append(fmt::format_string<Args...> format, Args&&... args) {
    fmt::format_to(std::back_inserter(body_), format, std::forward<Args>(args)...);
    body_ += '\n';
  }

  std::string body_;
};

constexpr std::string_view kGrid = R"(stroke="#dddddd" stroke-width="1")";
constexpr std::string_view kAxis = R"(stroke="#333333" stroke-width="1")";
constexpr std::string_view kReference =
    R"(stroke="#555555" stroke-width="1.5" stroke-dasharray="6 4")";
constexpr std::string_view kSmallGrey = R"(font-size="11" fill="#555555")";
constexpr double kFontSize = 12;

// Where things go across the page; both panels share the plot's left edge.
struct Layout {
  double left = 0;  // row labels and y-axis labels sit left of this
  double plot_width = 620;
  double right = 0;  // value labels and the legend sit right of the plot

  double plot_right() const { return left + plot_width; }
  double width() const { return left + plot_width + right; }
};

Layout layout_for(const std::vector<LatencyBar>& bars, const std::vector<ThroughputLine>& lines) {
  double labels = 0;
  for (const LatencyBar& bar : bars) labels = std::max(labels, text_width(bar.label, kFontSize));
  double legend = 0;
  for (const ThroughputLine& line : lines)
    legend = std::max(legend, text_width(line.label, kFontSize));
  return {std::max(90.0, labels + 28), 620, std::max(190.0, legend + 64)};
}

std::string cpus_text(const Machine& machine) {
  if (machine.cpus_usable > 0 && machine.cpus_usable != machine.cpus_online)
    return fmt::format("{} of {} CPUs usable", machine.cpus_usable, machine.cpus_online);
  if (machine.cpus_online == 1) return "1 CPU";
  if (machine.cpus_online > 0) return fmt::format("{} CPUs", machine.cpus_online);
  return "";
}

// "conduit compare on <cpu>, <cpus>", leaving out what the report lacks.
std::string title_text(const Machine& machine) {
  std::string title = "conduit compare";
  std::string cpu = machine.cpu_model.empty() ? "unknown CPU" : machine.cpu_model;
  std::string cpus = cpus_text(machine);
  title += fmt::format(" on {}", cpu);
  if (!cpus.empty()) title += fmt::format(", {}", cpus);
  return title;
}

std::string subtitle_text(const Report& report) {
  std::vector<std::string> parts;
  if (!report.started_at.empty()) parts.push_back("started " + report.started_at);
  if (!report.machine.kernel.empty()) parts.push_back(report.machine.kernel);
  if (positive(report.elapsed_seconds))
    parts.push_back(fmt::format("{:.1f} s elapsed", report.elapsed_seconds));
  return fmt::format("{}", fmt::join(parts, " · "));
}

// Returns the y where the next block starts.
double draw_title(Canvas& canvas, const Report& report) {
  canvas.text({16, 28}, title_text(report.machine), R"(font-size="17" font-weight="bold")");
  canvas.text({16, 48}, subtitle_text(report), kSmallGrey);
  return 64;
}

double draw_heading(Canvas& canvas, double top, std::string_view heading) {
  canvas.text({16, top + 20}, heading, R"(font-size="14" font-weight="bold")");
  return top + 28;
}

double draw_no_figures(Canvas& canvas, const Layout& layout, double top, std::string_view heading) {
  double y = draw_heading(canvas, top, heading);
  canvas.text({layout.left + layout.plot_width / 2, y + 30}, "no figures",
              R"(text-anchor="middle" font-size="13" fill="#777777")");
  return y + 56;
}

// ---- panel 1: latency ----

constexpr double kRowPitch = 26;
constexpr double kBarHeight = 14;

std::string latency_heading(const Report& report) {
  auto size = first_latency_size(report.options);
  std::string messages = size ? fmt::format(", {} messages", size_label(double(*size))) : "";
  return fmt::format("Round-trip latency{}", messages);
}

// The small key under the heading: what the bar, whisker and tick mean.
double draw_latency_key(Canvas& canvas, const Layout& layout, double top) {
  double y = top + 8;
  double x = layout.left;
  canvas.rect({x, y - 5}, 18, 10, R"(fill="#9e9e9e")");
  canvas.text({x + 24, y + 4}, "conduit p50", kSmallGrey);
  x += 110;
  canvas.line({x, y}, {x + 18, y}, R"(stroke="#222222" stroke-width="1.2")");
  canvas.line({x + 18, y - 4}, {x + 18, y + 4}, R"(stroke="#222222" stroke-width="1.2")");
  canvas.text({x + 24, y + 4}, "p99", kSmallGrey);
  x += 70;
  canvas.line({x + 8, y - 7}, {x + 8, y + 7}, R"(stroke="#111111" stroke-width="3")");
  canvas.text({x + 18, y + 4}, "raw system calls p50", kSmallGrey);
  return top + 22;
}

void draw_latency_axis(Canvas& canvas, const LogScale& scale, Decades decades, double top,
                       double bottom) {
  for (int exponent = decades.low; exponent <= decades.high; ++exponent) {
    double x = scale.at(std::pow(10.0, exponent));
    canvas.line({x, top}, {x, bottom}, kGrid);
    canvas.text({x, bottom + 16}, decade_label(exponent),
                R"(class="latency-tick" text-anchor="middle")");
  }
  canvas.line({scale.pixel_low, bottom}, {scale.pixel_high, bottom}, kAxis);
  canvas.line({scale.pixel_low, top}, {scale.pixel_low, bottom}, kAxis);
  canvas.text({(scale.pixel_low + scale.pixel_high) / 2, bottom + 36},
              "round-trip latency, µs (log scale)", R"(text-anchor="middle")");
}

void draw_cache_line_reference(Canvas& canvas, const Layout& layout, const LogScale& scale,
                               double microseconds, double top, double bottom) {
  double x = scale.at(microseconds);
  canvas.line({x, top - 6}, {x, bottom}, kReference);
  // The label runs away from the nearer edge so that it stays on the page.
  bool left_half = x < layout.left + layout.plot_width / 2;
  canvas.text({left_half ? x + 4 : x - 4, top - 8},
              fmt::format("cache-line ping-pong {} µs", figure_label(microseconds)),
              fmt::format(R"(text-anchor="{}" {})", left_half ? "start" : "end", kSmallGrey));
}

void draw_latency_bar(Canvas& canvas, const Layout& layout, const LogScale& scale,
                      const LatencyBar& bar, double centre) {
  Style style = style_of(bar.series);
  canvas.text({layout.left - 8, centre + 4}, bar.label, R"(text-anchor="end")");
  double p50 = scale.at(bar.p50_us);
  canvas.rect({scale.pixel_low, centre - kBarHeight / 2}, p50 - scale.pixel_low, kBarHeight,
              fmt::format(R"(class="bar" fill="{}")", style.colour));
  double end = p50;
  if (bar.p99_us > 0) {
    double p99 = scale.at(bar.p99_us);
    std::string_view whisker = R"(class="p99" stroke="#222222" stroke-width="1.2")";
    canvas.line({p50, centre}, {p99, centre}, whisker);
    canvas.line({p99, centre - 4}, {p99, centre + 4}, whisker);
    end = std::max(end, p99);
  }
  if (bar.raw_p50_us > 0) {
    double raw = scale.at(bar.raw_p50_us);
    canvas.line({raw, centre - 9}, {raw, centre + 9},
                R"(class="raw-p50" stroke="#111111" stroke-width="3")");
    end = std::max(end, raw);
  }
  std::string value = fmt::format("{} µs", figure_label(bar.p50_us));
  if (bar.p99_us > 0) value += fmt::format(" (p99 {})", figure_label(bar.p99_us));
  canvas.text({end + 8, centre + 4}, value, kSmallGrey);
}

std::vector<double> latency_values(const std::vector<LatencyBar>& bars, double cache_line_us) {
  std::vector<double> values;
  for (const LatencyBar& bar : bars)
    for (double value : {bar.p50_us, bar.p99_us, bar.raw_p50_us})
      if (value > 0) values.push_back(value);
  if (positive(cache_line_us)) values.push_back(cache_line_us);
  return values;
}

// REQUIRES: bars is not empty. Returns the y where the next block starts.
double draw_latency_panel(Canvas& canvas, const Report& report, const Layout& layout,
                          const std::vector<LatencyBar>& bars, double top) {
  double y = draw_heading(canvas, top, latency_heading(report));
  double plot_top = draw_latency_key(canvas, layout, y) + 18;
  double plot_bottom = plot_top + kRowPitch * static_cast<double>(bars.size());
  double cache_line_us = report.limits.cache_line_round_trip_us;
  Decades decades = decades_around(latency_values(bars, cache_line_us));
  LogScale scale{double(decades.low), double(decades.high), layout.left, layout.plot_right()};
  draw_latency_axis(canvas, scale, decades, plot_top, plot_bottom);
  if (positive(cache_line_us))
    draw_cache_line_reference(canvas, layout, scale, cache_line_us, plot_top, plot_bottom);
  for (std::size_t i = 0; i < bars.size(); ++i)
    draw_latency_bar(canvas, layout, scale, bars[i],
                     plot_top + kRowPitch * (static_cast<double>(i) + 0.5));
  return plot_bottom + 52;
}

// ---- panel 2: throughput ----

constexpr double kLegendPitch = 20;

struct ThroughputScales {
  LogScale size;
  LogScale rate;
  Decades rate_decades;
};

ThroughputScales throughput_scales(const std::vector<ThroughputLine>& lines, double memcpy_mb_s,
                                   const Layout& layout, double top, double bottom) {
  std::vector<double> sizes;
  std::vector<double> rates;
  for (const ThroughputLine& line : lines)
    for (const Sample& sample : line.samples) {
      sizes.push_back(sample.bytes);
      rates.push_back(sample.megabytes_per_second);
    }
  if (positive(memcpy_mb_s)) rates.push_back(memcpy_mb_s);
  auto [min_size, max_size] = std::minmax_element(sizes.begin(), sizes.end());
  // A little room either side so the first and last points are not on the frame.
  LogScale size{std::log10(*min_size / 1.6), std::log10(*max_size * 1.6), layout.left,
                layout.plot_right()};
  Decades decades = decades_around(rates);
  return {size, {double(decades.low), double(decades.high), bottom, top}, decades};
}

std::vector<double> distinct_sizes(const std::vector<ThroughputLine>& lines) {
  std::vector<double> sizes;
  for (const ThroughputLine& line : lines)
    for (const Sample& sample : line.samples) sizes.push_back(sample.bytes);
  std::sort(sizes.begin(), sizes.end());
  sizes.erase(std::unique(sizes.begin(), sizes.end()), sizes.end());
  return sizes;
}

// Ticks at the sizes measured; a label that would crowd the previous one is
// left out.
void draw_size_axis(Canvas& canvas, const ThroughputScales& scales,
                    const std::vector<double>& sizes, double top, double bottom) {
  double last_label_end = -1e9;
  for (double bytes : sizes) {
    double x = scales.size.at(bytes);
    canvas.line({x, top}, {x, bottom}, kGrid);
    canvas.line({x, bottom}, {x, bottom + 4}, kAxis);
    std::string label = size_label(bytes);
    double half = text_width(label, kFontSize) / 2;
    if (x - half < last_label_end + 6) continue;
    canvas.text({x, bottom + 17}, label, R"(class="size-tick" text-anchor="middle")");
    last_label_end = x + half;
  }
  canvas.line({scales.size.pixel_low, bottom}, {scales.size.pixel_high, bottom}, kAxis);
  canvas.text({(scales.size.pixel_low + scales.size.pixel_high) / 2, bottom + 38},
              "message size (log scale)", R"(text-anchor="middle")");
}

void draw_rate_axis(Canvas& canvas, const ThroughputScales& scales, const Layout& layout) {
  const LogScale& rate = scales.rate;
  for (int exponent = scales.rate_decades.low; exponent <= scales.rate_decades.high; ++exponent) {
    double y = rate.at(std::pow(10.0, exponent));
    canvas.line({layout.left, y}, {layout.plot_right(), y}, kGrid);
    canvas.text({layout.left - 6, y + 4}, decade_label(exponent),
                R"(class="rate-tick" text-anchor="end")");
  }
  canvas.line({layout.left, rate.pixel_low}, {layout.left, rate.pixel_high}, kAxis);
  Point title{layout.left - 62, (rate.pixel_low + rate.pixel_high) / 2};
  canvas.text(title, "one-way throughput, MB/s (log scale)",
              fmt::format(R"svg(text-anchor="middle" transform="rotate(-90 {} {})")svg",
                          px(title.x), px(title.y)));
}

void draw_memcpy_reference(Canvas& canvas, const Layout& layout, const LogScale& rate,
                           double gigabytes_per_second) {
  double y = rate.at(gigabytes_per_second * 1000);
  canvas.line({layout.left, y}, {layout.plot_right(), y}, kReference);
  canvas.text({layout.plot_right() - 4, y - 5},
              fmt::format("memcpy {} GB/s", figure_label(gigabytes_per_second)),
              fmt::format(R"(text-anchor="end" {})", kSmallGrey));
}

void draw_series(Canvas& canvas, const ThroughputScales& scales, const ThroughputLine& line) {
  Style style = style_of(line.series);
  std::vector<Point> points;
  for (const Sample& sample : line.samples)
    points.push_back({scales.size.at(sample.bytes), scales.rate.at(sample.megabytes_per_second)});
  canvas.polyline(points, fmt::format(R"(class="series" {})", stroke(style, 2)));
  for (const Point& point : points)
    canvas.circle(point, 3.5, fmt::format(R"(class="point" fill="{}")", style.colour));
}

void draw_legend(Canvas& canvas, const Layout& layout, const std::vector<ThroughputLine>& lines,
                 double top) {
  double x = layout.plot_right() + 20;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    Style style = style_of(lines[i].series);
    double y = top + 10 + kLegendPitch * static_cast<double>(i);
    canvas.line({x, y}, {x + 28, y}, stroke(style, 2));
    canvas.circle({x + 14, y}, 3.5, fmt::format(R"(fill="{}")", style.colour));
    canvas.text({x + 36, y + 4}, lines[i].label, R"(class="legend")");
  }
}

// REQUIRES: lines is not empty. Returns the y where the next block starts.
double draw_throughput_panel(Canvas& canvas, const Report& report, const Layout& layout,
                             const std::vector<ThroughputLine>& lines, double top) {
  double plot_top = draw_heading(canvas, top, "One-way throughput by message size") + 12;
  double legend_height = kLegendPitch * static_cast<double>(lines.size());
  double plot_bottom = plot_top + std::max(300.0, legend_height);
  double memcpy_mb_s = report.limits.memcpy_gb_per_second * 1000;
  ThroughputScales scales = throughput_scales(lines, memcpy_mb_s, layout, plot_top, plot_bottom);
  draw_rate_axis(canvas, scales, layout);
  draw_size_axis(canvas, scales, distinct_sizes(lines), plot_top, plot_bottom);
  if (positive(memcpy_mb_s))
    draw_memcpy_reference(canvas, layout, scales.rate, report.limits.memcpy_gb_per_second);
  for (const ThroughputLine& line : lines) draw_series(canvas, scales, line);
  draw_legend(canvas, layout, lines, plot_top);
  return plot_bottom + 52;
}

std::string document(const Canvas& canvas, double width, double height, std::string_view title) {
  return fmt::format(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      R"(<svg xmlns="http://www.w3.org/2000/svg" width="{0}" height="{1}" viewBox="0 0 {0} {1}" )"
      R"(font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="{2}">)"
      "\n<title>{3}</title>\n"
      R"(<rect x="0" y="0" width="{0}" height="{1}" fill="#ffffff"/>)"
      "\n{4}</svg>\n",
      px(width), px(height), kFontSize, escape_xml(title), canvas.body());
}

}  // namespace

std::string svg_chart(const Report& report) {
  std::vector<LatencyBar> bars = latency_bars(report);
  std::vector<ThroughputLine> lines = throughput_lines(report);
  Layout layout = layout_for(bars, lines);
  Canvas canvas;
  double y = draw_title(canvas, report);
  y = bars.empty() ? draw_no_figures(canvas, layout, y, latency_heading(report))
                   : draw_latency_panel(canvas, report, layout, bars, y);
  y = lines.empty() ? draw_no_figures(canvas, layout, y, "One-way throughput by message size")
                    : draw_throughput_panel(canvas, report, layout, lines, y);
  return document(canvas, layout.width(), y, title_text(report.machine));
}

}  // namespace conduit::compare
