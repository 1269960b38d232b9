// Tests for conduit::compare::svg_chart (svg_chart.hpp): the document is
// well-formed SVG, every figure worth drawing is drawn and nothing else is,
// report text is escaped, and no coordinate is ever NaN or infinite.
#include "compare/svg_chart.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <regex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "test_support.hpp"

namespace conduit::compare {
namespace {

using conduit::testing::contains;
using conduit::testing::run_command;
using conduit::testing::TempDir;

// ---- building reports by hand ----

Measured<Latency> latency(std::size_t size, double p50, double p99, double raw_p50 = 0) {
  Measured<Latency> measured;
  measured.conduit.figure = Latency{size, 1000, p50, p99, p99, p99, {}};
  if (raw_p50 != 0)
    measured.raw.figure = Latency{size, 1000, raw_p50, raw_p50, raw_p50, raw_p50, {}};
  return measured;
}

Measured<Throughput> throughput(std::size_t size, double megabytes_per_second) {
  Measured<Throughput> measured;
  measured.conduit.figure = Throughput{size, 1000, 0.4, 1000 / 0.4, megabytes_per_second};
  return measured;
}

Measured<Throughput> capped_throughput(std::size_t capped_at) {
  Measured<Throughput> measured;
  measured.conduit.capped_at = capped_at;
  measured.raw.capped_at = capped_at;
  return measured;
}

template <typename Figure>
Measured<Figure> failed() {
  Measured<Figure> measured;
  measured.conduit.error = "connection refused";
  measured.raw.error = "connection refused";
  return measured;
}

Row row(std::string name, std::string transport = "") {
  Row row;
  row.family = transport.empty() ? "IPC" : "RPC";
  row.key = "key";
  row.name = std::move(name);
  row.transport = std::move(transport);
  return row;
}

Row row_with_throughput(std::string name, double megabytes_per_second) {
  Row r = row(std::move(name));
  r.throughput = {throughput(64, megabytes_per_second), throughput(4096, megabytes_per_second * 8)};
  return r;
}

Report sample_report() {
  Report report;
  report.machine = {"Xeon & <friends>", 4, 2, "Linux 6.1.0", "host"};
  report.limits = {12.5, 0.2, 20};
  report.started_at = "2024-05-01T10:00:00Z";
  report.elapsed_seconds = 12.3;

  Row pipe = row("anonymous pipe");
  pipe.latency = {latency(64, 5.1, 9.0, 4.2)};
  pipe.throughput = {throughput(64, 40), throughput(4096, 900), throughput(65536, 3000),
                     throughput(1 << 20, 4500)};

  Row datagram = row("datagram & <socket>");
  datagram.latency = {latency(64, 7.5, 20.0)};
  datagram.throughput = {throughput(64, 30), throughput(4096, 600), capped_throughput(65507),
                         capped_throughput(65507)};

  Row broken = row("broken mechanism");
  broken.latency = {failed<Latency>()};
  broken.throughput = {failed<Throughput>(), failed<Throughput>(), failed<Throughput>(),
                       failed<Throughput>()};

  Row rpc = row("json-rpc \"v2\"", "it's tcp");
  rpc.latency = {latency(64, 45.0, 60.0, 30.0)};
  rpc.throughput = {throughput(64, 2), throughput(4096, 100), throughput(65536, 800),
                    throughput(1 << 20, 1500)};

  report.rows = {pipe, datagram, broken, rpc};
  return report;
}

// ---- reading the document back ----

struct Parsed {
  bool well_formed = false;
  std::string root;  // the root element's tag, with its namespace
  std::string errors;
};

// Parses svg with Python's XML parser, which rejects any document that is
// not well-formed.
Parsed parse_xml(const std::string& svg) {
  TempDir dir;
  std::string path = dir / "chart.svg";
  std::ofstream(path, std::ios::binary) << svg;
  auto result = run_command(
      {"/usr/bin/python3", "-c",
       "import sys, xml.etree.ElementTree as E; print(E.parse(sys.argv[1]).getroot().tag)", path});
  std::string root = result.out;
  while (!root.empty() && root.back() == '\n') root.pop_back();
  return {result.status.success(), root, result.err};
}

std::size_t count(const std::string& text, const std::string& part) {
  std::size_t n = 0;
  for (auto at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

std::vector<std::smatch> matches(const std::string& text, const std::string& pattern) {
  std::regex re(pattern);
  return {std::sregex_iterator(text.begin(), text.end(), re), std::sregex_iterator()};
}

// Attribute values that hold numbers or coordinates and contain "nan" or "inf".
std::vector<std::string> non_finite_attributes(const std::string& svg) {
  std::vector<std::string> bad;
  for (const auto& match : matches(
           svg,
           R"re(\b(x|y|x1|y1|x2|y2|cx|cy|r|width|height|points|viewBox|transform)="([^"]*)")re")) {
    std::string value = match[2].str();
    for (char& c : value) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (contains(value, "nan") || contains(value, "inf")) bad.push_back(match[0].str());
  }
  return bad;
}

// The text of every <text> element of class css_class, in document order.
std::vector<std::string> texts_of_class(const std::string& svg, const std::string& css_class) {
  std::vector<std::string> texts;
  for (const auto& match : matches(svg, "<text [^>]*class=\"" + css_class + "\"[^>]*>([^<]*)<"))
    texts.push_back(match[1].str());
  return texts;
}

// How many points each polyline has, in document order.
std::vector<std::size_t> polyline_point_counts(const std::string& svg) {
  std::vector<std::size_t> counts;
  for (const auto& match : matches(svg, R"re(<polyline points="([^"]*)")re"))
    counts.push_back(count(match[1].str(), ","));
  return counts;
}

void expect_valid_svg(const std::string& svg) {
  Parsed parsed = parse_xml(svg);
  EXPECT_TRUE(parsed.well_formed) << parsed.errors << "\n" << svg;
  EXPECT_EQ(parsed.root, "{http://www.w3.org/2000/svg}svg");
  EXPECT_EQ(non_finite_attributes(svg), std::vector<std::string>{});
}

// ---- the document ----

TEST(SvgChart, IsWellFormedSvgWithSizeAndViewBox) {
  std::string svg = svg_chart(sample_report());
  expect_valid_svg(svg);
  EXPECT_EQ(svg.rfind("<?xml version=\"1.0\" encoding=\"UTF-8\"?>", 0), 0u);
  EXPECT_EQ(matches(svg, R"re(<svg xmlns="http://www.w3.org/2000/svg" width="[0-9.]+" )re"
                         R"re(height="[0-9.]+" viewBox="0 0 [0-9.]+ [0-9.]+")re")
                .size(),
            1u);
  EXPECT_TRUE(svg.ends_with("</svg>\n"));
}

TEST(SvgChart, TitleNamesTheMachineAndStartTime) {
  std::string svg = svg_chart(sample_report());
  EXPECT_CONTAINS(svg, "Xeon &amp; &lt;friends&gt;, 2 of 4 CPUs usable");
  EXPECT_CONTAINS(svg, "2024-05-01T10:00:00Z");
}

TEST(SvgChart, EscapesRowNamesAndTransports) {
  std::string svg = svg_chart(sample_report());
  EXPECT_CONTAINS(svg, ">anonymous pipe<");
  EXPECT_CONTAINS(svg, ">datagram &amp; &lt;socket&gt;<");
  EXPECT_CONTAINS(svg, ">json-rpc &quot;v2&quot; (it&apos;s tcp)<");
  EXPECT_FALSE(contains(svg, "<socket>"));
  EXPECT_FALSE(contains(svg, "& <"));
}

TEST(SvgChart, ReplacesControlCharactersInText) {
  Report report;
  Row r = row("tab\there\x01 bell");
  r.latency = {latency(64, 1, 2)};
  report.rows = {r};
  std::string svg = svg_chart(report);
  expect_valid_svg(svg);
  EXPECT_CONTAINS(svg, ">tab\there  bell<");
}

// ---- panel 1: latency ----

TEST(SvgChart, DrawsOneBarPerRowWithALatencyFigure) {
  std::string svg = svg_chart(sample_report());
  EXPECT_EQ(count(svg, R"(class="bar")"), 3u);
  // Whiskers are a line and an end cap each.
  EXPECT_EQ(count(svg, R"(class="p99")"), 6u);
  EXPECT_EQ(count(svg, R"(class="raw-p50")"), 2u);
}

TEST(SvgChart, LeavesOutRowsThatFailed) {
  std::string svg = svg_chart(sample_report());
  EXPECT_FALSE(contains(svg, "broken mechanism"));
}

TEST(SvgChart, LatencyBarsUseTheFirstLatencySizeOnly) {
  Report report;
  report.options.latency_sizes = {64, 4096};
  Row both = row("both sizes");
  both.latency = {latency(64, 3, 4), latency(4096, 300, 400)};
  Row large_only = row("large only");
  large_only.latency = {failed<Latency>(), latency(4096, 50, 60)};
  report.rows = {both, large_only};
  std::string svg = svg_chart(report);
  EXPECT_EQ(count(svg, R"(class="bar")"), 1u);
  EXPECT_CONTAINS(svg, ">3.00 µs (p99 4.00)<");
  EXPECT_FALSE(contains(svg, "large only"));
  EXPECT_CONTAINS(svg, "Round-trip latency, 64 B messages");
}

TEST(SvgChart, LatencyAxisHasDecadeLabelsCoveringTheData) {
  std::string svg = svg_chart(sample_report());
  // Figures from 0.2 µs (the cache-line reference) to 60 µs.
  EXPECT_EQ(texts_of_class(svg, "latency-tick"),
            (std::vector<std::string>{"0.1", "1", "10", "100"}));
  EXPECT_CONTAINS(svg, "µs (log scale)");
}

TEST(SvgChart, DrawsTheCacheLineReferenceOnlyWhenMeasured) {
  Report report = sample_report();
  EXPECT_CONTAINS(svg_chart(report), "cache-line ping-pong 0.200 µs");
  report.limits.cache_line_round_trip_us = 0;
  EXPECT_FALSE(contains(svg_chart(report), "cache-line ping-pong"));
}

// ---- panel 2: throughput ----

TEST(SvgChart, DrawsOneLinePerRowSkippingCappedSizes) {
  std::string svg = svg_chart(sample_report());
  EXPECT_EQ(polyline_point_counts(svg), (std::vector<std::size_t>{4, 2, 4}));
  EXPECT_EQ(count(svg, R"(class="point")"), 10u);
  EXPECT_EQ(count(svg, R"(class="legend")"), 3u);
}

TEST(SvgChart, SizeAxisIsLabelledInBinaryUnits) {
  std::string svg = svg_chart(sample_report());
  EXPECT_EQ(texts_of_class(svg, "size-tick"),
            (std::vector<std::string>{"64 B", "4 KiB", "64 KiB", "1 MiB"}));
}

TEST(SvgChart, DrawsTheMemcpyReferenceOnlyWhenMeasured) {
  Report report = sample_report();
  std::string svg = svg_chart(report);
  EXPECT_CONTAINS(svg, "memcpy 12.5 GB/s");
  // From 2 MB/s up to memcpy's 12 500 MB/s.
  EXPECT_EQ(texts_of_class(svg, "rate-tick"),
            (std::vector<std::string>{"1", "10", "100", "1000", "10 000", "100 000"}));
  report.limits.memcpy_gb_per_second = 0;
  EXPECT_FALSE(contains(svg_chart(report), "memcpy"));
}

TEST(SvgChart, GivesEverySeriesItsOwnColourAndDashEvenBeyondThePalette) {
  Report report;
  for (int i = 0; i < 30; ++i)
    report.rows.push_back(row_with_throughput("row " + std::to_string(i), 10.0 + i));
  std::string svg = svg_chart(report);
  std::set<std::string> styles;
  for (const auto& match : matches(svg, R"re(<polyline [^>]*class="series" ([^/]*)/>)re"))
    styles.insert(match[1].str());
  EXPECT_EQ(styles.size(), 30u);
  EXPECT_CONTAINS(svg, "stroke-dasharray");
  expect_valid_svg(svg);
}

// ---- figures not worth drawing ----

TEST(SvgChart, SkipsZeroNegativeAndNonFiniteFigures) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  Report report;
  report.limits = {nan, -1, 0};
  Row zero = row("zero latency");
  zero.latency = {latency(64, 0, 0)};
  zero.throughput = {throughput(64, 0), throughput(0, 50)};
  Row odd = row("odd figures");
  odd.latency = {latency(64, nan, inf, -3)};
  odd.throughput = {throughput(64, -5), throughput(4096, inf), throughput(65536, nan)};
  Row fine = row("fine");
  fine.latency = {latency(64, 2, inf, nan)};
  fine.throughput = {throughput(64, 100), throughput(4096, nan)};
  report.rows = {zero, odd, fine};

  std::string svg = svg_chart(report);
  expect_valid_svg(svg);
  EXPECT_EQ(count(svg, R"(class="bar")"), 1u);
  EXPECT_EQ(count(svg, R"(class="p99")"), 0u);
  EXPECT_EQ(count(svg, R"(class="raw-p50")"), 0u);
  EXPECT_EQ(polyline_point_counts(svg), std::vector<std::size_t>{1});
  EXPECT_FALSE(contains(svg, "zero latency"));
  EXPECT_FALSE(contains(svg, "odd figures"));
  EXPECT_FALSE(contains(svg, "memcpy"));
  EXPECT_FALSE(contains(svg, "cache-line"));
}

TEST(SvgChart, EmptyReportSaysNoFiguresInBothPanels) {
  std::string svg = svg_chart(Report{});
  expect_valid_svg(svg);
  EXPECT_EQ(count(svg, ">no figures<"), 2u);
  EXPECT_EQ(count(svg, "<polyline"), 0u);
  EXPECT_EQ(count(svg, R"(class="bar")"), 0u);
}

TEST(SvgChart, PanelWithoutFiguresSaysSoWhileTheOtherDraws) {
  Report report;
  report.rows = {row_with_throughput("throughput only", 100)};
  std::string svg = svg_chart(report);
  expect_valid_svg(svg);
  EXPECT_EQ(count(svg, ">no figures<"), 1u);
  EXPECT_EQ(polyline_point_counts(svg), std::vector<std::size_t>{2});
}

TEST(SvgChart, SingleRowReportDrawsBothPanels) {
  Report report;
  Row only = row("only row", "unix");
  only.latency = {latency(64, 12, 30, 9)};
  only.throughput = {throughput(64, 80)};
  report.rows = {only};
  std::string svg = svg_chart(report);
  expect_valid_svg(svg);
  EXPECT_EQ(count(svg, R"(class="bar")"), 1u);
  EXPECT_EQ(polyline_point_counts(svg), std::vector<std::size_t>{1});
  EXPECT_CONTAINS(svg, ">only row (unix)<");
  EXPECT_FALSE(contains(svg, "no figures"));
}

}  // namespace
}  // namespace conduit::compare
