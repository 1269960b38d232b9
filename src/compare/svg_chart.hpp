// The report as a chart people can read at a glance: one standalone SVG.
#pragma once

#include <string>

#include "compare/results.hpp"

namespace conduit::compare {

// Returns a complete, standalone SVG document (UTF-8, with xmlns, width,
// height and viewBox) showing, under a title naming the machine and when the
// run started, two panels stacked vertically:
//   1. round-trip latency at the first latency size, one horizontal bar per
//      row (conduit's p50, a whisker to its p99, a dark tick at the raw
//      loop's p50), on a logarithmic µs axis with a reference line at
//      limits.cache_line_round_trip_us;
//   2. one-way throughput against message size, one line per row on
//      log-log axes, with a legend and a reference line at memcpy bandwidth.
// Capped, failed, zero, negative and non-finite figures are left out; a row
// with nothing left is not drawn, and a panel with no rows says "no figures".
// All report text is escaped for XML.
std::string svg_chart(const Report& report);

}  // namespace conduit::compare
