// The Report as text for a terminal, JSON, and CSV (svg_chart.hpp draws it).
#pragma once

#include <string>

#include "compare/results.hpp"

namespace conduit::compare {

// "64 B", "4 KiB", "1 MiB".
std::string size_label(std::size_t size);

// When the CPUs changed under the run (the cache-line ping-pong between
// them moved by more than 30% from start to end), what to tell the reader;
// else empty.
std::string cpus_moved(const Report& report);

// Tables per family, the machine's limits and the verdicts on the seed's
// claims. `colour`: ANSI colours (for a terminal).
std::string text_report(const Report& report, bool colour);

// Every figure, the machine and the options, as one JSON object.
std::string json_report(const Report& report);

// One line per figure: family,key,name,transport,side,metric,size,value,unit.
std::string csv_report(const Report& report);

}  // namespace conduit::compare
