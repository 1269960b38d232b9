// The seed's claims about RPC, judged from a report's figures.
#include <gtest/gtest.h>

#include "compare/runner.hpp"

namespace conduit::compare {
namespace {

Row rpc_row(const std::string& key, double p50, double raw_p50,
            std::vector<std::pair<std::size_t, double>> throughput) {
  Row row;
  row.family = "RPC";
  row.key = key;
  row.name = key;
  row.transport = "UNIX socket";
  Measured<Latency> latency;
  latency.conduit.figure = Latency{64, 1000, p50, p50, p50, p50, {}};
  latency.raw.figure = Latency{64, 1000, raw_p50, raw_p50, raw_p50, raw_p50, {}};
  row.latency.push_back(latency);
  for (auto [size, megabytes] : throughput) {
    Measured<Throughput> measured;
    Throughput figure;
    figure.size = size;
    figure.megabytes_per_second = megabytes;
    measured.conduit.figure = figure;
    row.throughput.push_back(measured);
  }
  return row;
}

const Verdict& find(const std::vector<Verdict>& verdicts, const std::string& claim) {
  for (const Verdict& verdict : verdicts)
    if (verdict.claim == claim) return verdict;
  throw std::runtime_error("no verdict on " + claim);
}

TEST(RpcVerdicts, JsonLosesToProtobufAtTheLargestSizeBothCarried) {
  Report report;
  report.rows.push_back(rpc_row("grpc-unix", 40.0, 25.5, {{64, 1.2}, {1 << 20, 271}}));
  report.rows.push_back(rpc_row("jsonrpc-unix", 46.3, 30.0, {{64, 1.3}, {1 << 20, 9.3}}));
  auto verdicts = judge_claims(report);
  const Verdict& json = find(verdicts, "JSON-RPC: less efficient than Protobuf");
  EXPECT_EQ(json.verdict, "yes");
  EXPECT_NE(json.reason.find("271.0 MB/s"), std::string::npos) << json.reason;
  const Verdict& fast = find(verdicts, "gRPC: fast");
  EXPECT_EQ(fast.verdict, "yes");
  EXPECT_NE(fast.reason.find("1.57x"), std::string::npos) << fast.reason;
}

TEST(RpcVerdicts, WhenThroughputAndLatencyDisagreeTheVerdictSaysWhichSaysWhat) {
  Report report;
  report.rows.push_back(rpc_row("grpc-unix", 46.7, 29.8, {{64, 1.2}, {1 << 20, 271}}));
  report.rows.push_back(rpc_row("jsonrpc-unix", 46.3, 30.0, {{64, 1.3}, {1 << 20, 9.3}}));
  const auto verdicts = judge_claims(report);
  const Verdict& json = find(verdicts, "JSON-RPC: less efficient than Protobuf");
  EXPECT_EQ(json.verdict, "partly");
  EXPECT_NE(json.reason.find("by throughput yes, by latency no"), std::string::npos) << json.reason;
}

TEST(RpcVerdicts, FiguresDecideTheOtherWayToo) {
  Report report;
  report.rows.push_back(rpc_row("grpc-unix", 100, 20, {{4096, 10}}));
  report.rows.push_back(rpc_row("jsonrpc-unix", 50, 20, {{4096, 20}}));
  auto verdicts = judge_claims(report);
  EXPECT_EQ(find(verdicts, "JSON-RPC: less efficient than Protobuf").verdict, "no");
  EXPECT_EQ(find(verdicts, "gRPC: fast").verdict, "partly");
}

TEST(RpcVerdicts, WithoutTheRowsTheClaimsAreNotMeasured) {
  auto verdicts = judge_claims(Report{});
  EXPECT_EQ(find(verdicts, "gRPC: fast").verdict, "not measured");
  EXPECT_EQ(find(verdicts, "JSON-RPC: less efficient than Protobuf").verdict, "not measured");
}

TEST(RpcVerdicts, RpcAgainstIpcTakesTheFastestProtocolOverSharedMemory) {
  Report report;
  Row ring = rpc_row("shm", 0.2, 0.2, {});
  ring.family = "IPC";
  report.rows.push_back(ring);
  report.rows.push_back(rpc_row("jsonrpc-shm", 9.0, 0.9, {}));
  report.rows.push_back(rpc_row("grpc-shm", 5.0, 0.2, {}));
  const Verdict& verdict =
      find(judge_claims(report), "RPC is slower than IPC (serialization and protocol on top)");
  EXPECT_EQ(verdict.verdict, "yes");
  EXPECT_NE(verdict.reason.find("(grpc-shm) 5.00 us"), std::string::npos) << verdict.reason;
}

}  // namespace
}  // namespace conduit::compare
