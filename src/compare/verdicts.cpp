// The claims of the document conduit grew from, each judged by this run's
// figures (64-byte round-trip p50 through conduit, unless said otherwise).
#include <fmt/core.h>

#include <algorithm>
#include <optional>

#include "compare/report.hpp"
#include "compare/runner.hpp"
#include "rpc/protocol.hpp"

namespace conduit::compare {

namespace {

const Row* row_of(const Report& report, const std::string& key) {
  for (const Row& row : report.rows)
    if (row.key == key) return &row;
  return nullptr;
}

// The disturbed figures the verdict being judged has looked at.
thread_local std::vector<std::string>* consulted = nullptr;

template <typename Figure>
void look_at(const Row& row, const Outcome<Figure>& outcome, const char* what) {
  if (consulted && !outcome.disturbed.empty()) {
    const std::string note = row.key + " " + what;  // the footnote of the tables says why
    if (std::find(consulted->begin(), consulted->end(), note) == consulted->end())
      consulted->push_back(note);
  }
}

std::optional<double> p50(const Report& report, const std::string& key) {
  const Row* row = row_of(report, key);
  if (!row || row->latency.empty() || !row->latency.front().conduit.ok()) return std::nullopt;
  look_at(*row, row->latency.front().conduit, "round trips");
  return row->latency.front().conduit.figure->p50_us;
}

// Throughput at the largest size both rows carried.
std::optional<std::pair<double, double>> largest_throughput(const Report& report,
                                                            const std::string& a,
                                                            const std::string& b,
                                                            std::size_t* size) {
  const Row *first = row_of(report, a), *second = row_of(report, b);
  if (!first || !second) return std::nullopt;
  for (std::size_t i = std::min(first->throughput.size(), second->throughput.size()); i-- > 0;) {
    const auto &x = first->throughput[i].conduit, &y = second->throughput[i].conduit;
    if (x.ok() && y.ok()) {
      look_at(*first, x, "throughput");
      look_at(*second, y, "throughput");
      *size = x.figure->size;
      return std::pair(x.figure->megabytes_per_second, y.figure->megabytes_per_second);
    }
  }
  return std::nullopt;
}

std::string us(double value) {
  return value < 10 ? fmt::format("{:.2f} us", value) : fmt::format("{:.1f} us", value);
}

Verdict not_measured(std::string claim, const std::string& missing) {
  return Verdict{std::move(claim), "not measured", missing + " not in this run"};
}

// A run's rows, as the protocols' claims read them.
class ReportFigures final : public rpc::ComparisonFigures {
 public:
  explicit ReportFigures(const Report& report) : report_(report) {}
  std::optional<double> p50_us(std::string_view row) const override {
    return p50(report_, std::string(row));
  }
  std::optional<double> raw_p50_us(std::string_view key) const override {
    const Row* row = row_of(report_, std::string(key));
    if (!row || row->latency.empty() || !row->latency.front().raw.ok()) return std::nullopt;
    look_at(*row, row->latency.front().raw, "raw round trips");
    return row->latency.front().raw.figure->p50_us;
  }
  std::string transport(std::string_view key) const override {
    const Row* row = row_of(report_, std::string(key));
    return row ? row->transport : std::string();
  }
  std::optional<Throughputs> largest_common_throughput(std::string_view first,
                                                       std::string_view second) const override {
    std::size_t size = 0;
    auto pair = largest_throughput(report_, std::string(first), std::string(second), &size);
    if (!pair) return std::nullopt;
    return Throughputs{size, pair->first, pair->second};
  }
  std::string microseconds(double value) const override { return us(value); }
  std::string size(std::size_t bytes) const override { return size_label(bytes); }

 private:
  const Report& report_;
};

// Each verdict is told apart by what it looked at: judge_claims() below
// notes the disturbed figures each one rests on.
class Verdicts {
 public:
  explicit Verdicts(std::vector<std::string>& looked_at) : looked_at_(looked_at) {}
  void push_back(Verdict verdict) {
    if (!looked_at_.empty() && verdict.verdict != "not measured") {
      std::string notes;
      for (const std::string& note : looked_at_) notes += (notes.empty() ? "" : "; ") + note;
      verdict.reason +=
          " [rests on disturbed figures: " + notes + "; run again on a quiet machine]";
    }
    looked_at_.clear();
    all_.push_back(std::move(verdict));
  }
  std::vector<Verdict> take() { return std::move(all_); }

 private:
  std::vector<std::string>& looked_at_;
  std::vector<Verdict> all_;
};

}  // namespace

std::vector<Verdict> judge_claims(const Report& report) {
  std::vector<std::string> looked_at;
  consulted = &looked_at;
  Verdicts verdicts(looked_at);
  const char* shm = "shm";

  {
    std::string claim = "Shared memory: fastest IPC method";
    auto ring = p50(report, shm);
    std::optional<double> best;
    std::string best_name;
    for (const Row& row : report.rows) {
      if (row.family != "IPC" || row.key.rfind("shm", 0) == 0) continue;
      auto value = p50(report, row.key);
      if (value && (!best || *value < *best)) best = value, best_name = row.name;
    }
    if (!ring || !best)
      verdicts.push_back(not_measured(claim, "shared memory or another mechanism"));
    else
      verdicts.push_back(
          {claim, *ring < *best ? "yes" : "no",
           fmt::format("{} p50 vs {} for the fastest other, {}", us(*ring), us(*best), best_name)});
  }
  {
    std::string claim = "Shared memory: avoids copying";
    std::size_t size = 0;
    auto pair = largest_throughput(report, "shm-loan", shm, &size);
    if (!pair)
      verdicts.push_back(not_measured(claim, "the loan and copy paths of ShmRing"));
    else
      verdicts.push_back(
          {claim, pair->first >= pair->second ? "yes, with loan()" : "partly",
           fmt::format("built and read in place, {} messages move at {:.0f} MB/s; copied in, "
                       "{:.0f} MB/s",
                       size_label(size), pair->first, pair->second)});
  }
  for (const auto& [key, claim] :
       {std::pair{"mq", "POSIX message queues: more overhead than shared memory"},
        std::pair{"sysvmq", "System V message queues: more overhead than shared memory"},
        std::pair{"unix", "UNIX sockets: more overhead than shared memory"}}) {
    auto other = p50(report, key), ring = p50(report, shm);
    if (!other || !ring)
      verdicts.push_back(not_measured(claim, fmt::format("{} or shared memory", key)));
    else
      verdicts.push_back(
          {claim, *other > *ring ? "yes" : "no",
           fmt::format("{} p50 vs {} ({:.0f}x)", us(*other), us(*ring), *other / *ring)});
  }
  {
    std::string claim = "Pipes: only work between related processes";
    auto fifo = p50(report, "fifo"), pipe = p50(report, "pipe");
    if (!fifo)
      verdicts.push_back(not_measured(claim, "the FIFO"));
    else
      verdicts.push_back(
          {claim, "no",
           fmt::format("named pipes are opened by path by any process: FIFO {} p50{}", us(*fifo),
                       pipe ? fmt::format(" vs {} for an anonymous pipe", us(*pipe)) : "")});
  }
  {
    std::string claim = "Pipes: simple, efficient for parent-child processes";
    auto pipe = p50(report, "pipe"), unix = p50(report, "unix");
    if (!pipe || !unix)
      verdicts.push_back(not_measured(claim, "the pipe or the UNIX socket"));
    else
      verdicts.push_back(
          {claim, *pipe <= *unix ? "yes" : "partly",
           fmt::format("{} p50 vs {} for a UNIX stream socket", us(*pipe), us(*unix))});
  }
  {
    std::string claim = "IPC is faster than going through the network stack";
    auto tcp = p50(report, "tcp"), unix = p50(report, "unix");
    std::optional<double> fastest;
    std::string fastest_name;
    for (const Row& row : report.rows) {
      auto value = p50(report, row.key);
      if (row.family == "IPC" && row.key != "tcp" && value && (!fastest || *value < *fastest))
        fastest = value, fastest_name = row.name;
    }
    if (!tcp || !fastest) {
      verdicts.push_back(not_measured(claim, "TCP or a local mechanism"));
    } else {
      std::string reason =
          fmt::format("TCP loopback {} p50 vs {} for {}", us(*tcp), us(*fastest), fastest_name);
      bool sockets_too = !unix || *unix < *tcp;
      if (unix) reason += fmt::format(" and {} for a UNIX stream socket", us(*unix));
      verdicts.push_back({claim, *fastest >= *tcp ? "no" : sockets_too ? "yes" : "partly", reason});
    }
  }
  {
    // The fastest RPC over shared memory, whichever protocol it is.
    std::string claim = "RPC is slower than IPC (serialization and protocol on top)";
    std::optional<double> rpc;
    std::string rpc_name;
    for (const Row& row : report.rows) {
      const auto value = p50(report, row.key);
      if (row.family == "RPC" && row.key.ends_with("-shm") && value && (!rpc || *value < *rpc))
        rpc = value, rpc_name = row.name;
    }
    auto ring = p50(report, shm);
    if (!rpc || !ring)
      verdicts.push_back(not_measured(claim, "RPC over shared memory or ShmRing"));
    else
      verdicts.push_back({claim, *rpc > *ring ? "yes" : "no",
                          fmt::format("the fastest RPC echo over shared memory ({}) {} p50 vs {} "
                                      "for a ShmRing round trip",
                                      rpc_name, us(*rpc), us(*ring))});
  }
  // The claims each registered protocol answers.
  const ReportFigures figures(report);
  std::vector<std::string> answered;
  for (const auto& protocol : rpc::protocols()) {
    for (const rpc::Claim& claim : protocol->claims()) {
      const rpc::Claim::Verdict verdict = claim.judge(figures);
      verdicts.push_back({claim.text, verdict.verdict, verdict.reason});
      answered.push_back(claim.text);
    }
  }
  // The document's claims about protocols conduit does not speak yet.
  for (const auto& [claim, protocol] :
       {std::pair{"XML-RPC: slower due to XML parsing", "XML-RPC"},
        std::pair{"CORBA: heavy compared to gRPC", "CORBA (GIOP)"}}) {
    if (std::find(answered.begin(), answered.end(), claim) == answered.end())
      verdicts.push_back({claim, "not measured", fmt::format("no {} rows in this run", protocol)});
  }
  consulted = nullptr;
  std::vector<Verdict> all = verdicts.take();
  if (const std::string moved = cpus_moved(report); !moved.empty()) {
    for (Verdict& verdict : all)
      if (verdict.verdict != "not measured") verdict.reason += " [" + moved + "]";
  }
  return all;
}

}  // namespace conduit::compare
