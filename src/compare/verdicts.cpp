// The claims of the document conduit grew from, each judged by this run's
// figures (64-byte round-trip p50 through conduit, unless said otherwise).
#include <fmt/core.h>

#include <optional>

#include "compare/report.hpp"
#include "compare/runner.hpp"

namespace conduit::compare {

namespace {

const Row* row_of(const Report& report, const std::string& key) {
  for (const Row& row : report.rows)
    if (row.key == key) return &row;
  return nullptr;
}

std::optional<double> p50(const Report& report, const std::string& key) {
  const Row* row = row_of(report, key);
  if (!row || row->latency.empty() || !row->latency.front().conduit.ok()) return std::nullopt;
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

}  // namespace

std::vector<Verdict> judge_claims(const Report& report) {
  std::vector<Verdict> verdicts;
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
      verdicts.push_back({claim, *ring < *best ? "yes" : "no",
                          fmt::format("{} p50 vs {} for the fastest other, {}", us(*ring),
                                      us(*best), best_name)});
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
  for (const auto& [key, claim] : {std::pair{"mq", "POSIX message queues: more overhead than shared memory"},
                                   std::pair{"sysvmq", "System V message queues: more overhead than shared memory"},
                                   std::pair{"unix", "UNIX sockets: more overhead than shared memory"}}) {
    auto other = p50(report, key), ring = p50(report, shm);
    if (!other || !ring)
      verdicts.push_back(not_measured(claim, fmt::format("{} or shared memory", key)));
    else
      verdicts.push_back({claim, *other > *ring ? "yes" : "no",
                          fmt::format("{} p50 vs {} ({:.0f}x)", us(*other), us(*ring),
                                      *other / *ring)});
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
      verdicts.push_back({claim, *pipe <= *unix ? "yes" : "partly",
                          fmt::format("{} p50 vs {} for a UNIX stream socket", us(*pipe),
                                      us(*unix))});
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
      verdicts.push_back({claim, *fastest >= *tcp ? "no" : sockets_too ? "yes" : "partly",
                          reason});
    }
  }
  {
    std::string claim = "RPC is slower than IPC (serialization and protocol on top)";
    auto rpc = p50(report, "jsonrpc-shm"), ring = p50(report, "shm");
    if (!rpc || !ring)
      verdicts.push_back(not_measured(claim, "JSON-RPC over shared memory or ShmRing"));
    else
      verdicts.push_back({claim, *rpc > *ring ? "yes" : "no",
                          fmt::format("a JSON-RPC echo over shared memory {} p50 vs {} for a "
                                      "ShmRing round trip",
                                      us(*rpc), us(*ring))});
  }
  auto has = [&](const char* prefix) {
    for (const Row& row : report.rows)
      if (row.key.rfind(prefix, 0) == 0) return true;
    return false;
  };
  {
    // Against the raw socket's round trip beside it, the rows' own baseline.
    std::string claim = "gRPC: fast";
    const Row* grpc = row_of(report, "grpc-unix");
    if (!grpc) grpc = row_of(report, "grpc-tcp");
    if (!grpc || grpc->latency.empty() || !grpc->latency.front().conduit.ok() ||
        !grpc->latency.front().raw.ok()) {
      verdicts.push_back(not_measured(claim, "gRPC with its raw baseline"));
    } else {
      const double call = grpc->latency.front().conduit.figure->p50_us;
      const double raw = grpc->latency.front().raw.figure->p50_us;
      verdicts.push_back({claim, call <= 2 * raw ? "yes" : "partly",
                          fmt::format("a gRPC echo ({}) {} p50, {:.2f}x the raw round trip of {}",
                                      grpc->transport, us(call), call / raw, us(raw))});
    }
  }
  {
    // The same transport for both, so the difference is the encoding.
    std::string claim = "JSON-RPC: less efficient than Protobuf";
    std::size_t size = 0;
    auto pair = largest_throughput(report, "grpc-unix", "jsonrpc-unix", &size);
    auto grpc = p50(report, "grpc-unix"), json = p50(report, "jsonrpc-unix");
    if (!pair || !grpc || !json) {
      verdicts.push_back(not_measured(claim, "gRPC and JSON-RPC over a UNIX socket"));
    } else {
      verdicts.push_back(
          {claim, pair->first > pair->second ? "yes" : "no",
           fmt::format("over a UNIX socket, {} payloads: gRPC {:.1f} MB/s, JSON-RPC {:.1f} MB/s "
                       "({:.1f}x); 64 B round trips {} vs {} p50",
                       size_label(size), pair->first, pair->second, pair->first / pair->second,
                       us(*grpc), us(*json))});
    }
  }
  for (const auto& [claim, needs] :
       {std::pair{"XML-RPC: slower due to XML parsing", "xmlrpc"},
        std::pair{"CORBA: heavy compared to gRPC", "giop"}}) {
    if (!has(needs))
      verdicts.push_back({claim, "not measured", fmt::format("no {} rows in this run", needs)});
  }
  return verdicts;
}

}  // namespace conduit::compare
