// `conduit compare` and `conduit bench` as a user runs them: real processes
// over every mechanism, checked for shape and sanity, never for speed.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "cli_support.hpp"
#include "test_support.hpp"

namespace conduit::testing {
namespace {

using namespace std::chrono_literals;

const char* kEveryMechanism =
    "pipe,fifo,mq,sysvmq,shm,shm-loan,unix,unix-seqpacket,unix-dgram,tcp,"
    "jsonrpc-http,jsonrpc-tcp,jsonrpc-unix,jsonrpc-shm,grpc-tcp,grpc-unix,grpc-shm";

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(CompareCommand, QuickRunMeasuresEveryMechanismAndWritesJsonCsvAndSvg) {
  TempDir dir;
  std::string json = dir.path() + "/out.json", csv = dir.path() + "/out.csv",
              svg = dir.path() + "/out.svg";
  CommandResult run =
      conduit({"compare", "--quick", "--json", json, "--csv", csv, "--svg", svg}, 220s);
  ASSERT_TRUE(run.status.success()) << run.status.describe() << "\n" << run.out << run.err;
  for (const char* heading : {"Machine limits", "IPC: round trip of 64 B messages",
                              "IPC: one-way throughput", "RPC: round trip of 64 B messages",
                              "The seed's claims"})
    EXPECT_CONTAINS(run.out, heading);
  for (const char* name : {"anonymous pipe", "named pipe (FIFO)", "POSIX message queue",
                           "System V message queue", "shared memory (ShmRing, copy)",
                           "shared memory (ShmRing, loan)", "UNIX stream socket",
                           "UNIX seqpacket socket", "UNIX datagram socket", "TCP loopback",
                           "JSON-RPC 2.0 (HTTP/1.1 over TCP)", "JSON-RPC 2.0 (shared memory)"})
    EXPECT_CONTAINS(run.out, name);
  EXPECT_EQ(run.out.find("failed"), std::string::npos) << run.out;
  EXPECT_EQ(run.out.find("\033["), std::string::npos) << "colour codes written to a pipe";
  CommandResult check = run_command(
      {CONDUIT_SOURCE_DIR "/tests/compare/check_report.py", json, csv, svg, kEveryMechanism});
  EXPECT_TRUE(check.status.success()) << check.out << check.err << "\n" << read_file(json);
}

TEST(CompareCommand, QueuesReportTheirKernelCapInsteadOfAFigure) {
  CommandResult run = conduit({"compare", "--quick", "--only", "mq", "--sizes", "64,64K"}, 60s);
  ASSERT_TRUE(run.status.success()) << run.out << run.err;
  EXPECT_CONTAINS(run.out, "max ");
}

TEST(CompareCommand, ProgressGoesToStandardErrorNotIntoTheTable) {
  CommandResult run = conduit({"compare", "--quick", "--only", "pipe", "--sizes", "64"}, 60s);
  ASSERT_TRUE(run.status.success()) << run.out << run.err;
  EXPECT_CONTAINS(run.err, "anonymous pipe");
  EXPECT_EQ(run.out.find("conduit compare: ["), std::string::npos);
}

TEST(CompareCommand, UnknownMechanismIsNamedWithTheValidOnes) {
  CommandResult run = conduit({"compare", "--only", "pipe,carrier-pigeon"});
  EXPECT_EQ(run.status.code, 2);
  EXPECT_CONTAINS(run.err, "carrier-pigeon");
  EXPECT_CONTAINS(run.err, "shm-loan");
}

TEST(CompareCommand, BadSizesAndPinsAreRefusedWithTheReason) {
  CommandResult size = conduit({"compare", "--sizes", "64,lots"});
  EXPECT_EQ(size.status.code, 2);
  EXPECT_CONTAINS(size.err, "lots");
  CommandResult tiny = conduit({"compare", "--sizes", "8"});
  EXPECT_EQ(tiny.status.code, 2);
  EXPECT_CONTAINS(tiny.err, "8 bytes");
  CommandResult pin = conduit({"compare", "--pin", "0,4096"});
  EXPECT_EQ(pin.status.code, 2);
  EXPECT_CONTAINS(pin.err, "--pin");
  CommandResult duration = conduit({"compare", "--duration", "-1"});
  EXPECT_EQ(duration.status.code, 2);
}

TEST(CompareCommand, UnwritableOutputFileIsAnErrorNamingIt) {
  CommandResult run = conduit(
      {"compare", "--quick", "--only", "pipe", "--sizes", "64", "--json", "/nonexistent/out.json"},
      60s);
  EXPECT_NE(run.status.code, 0);
  EXPECT_CONTAINS(run.err, "/nonexistent/out.json");
}

TEST(BenchCommand, OneMechanismInDepthWithHistograms) {
  TempDir dir;
  std::string json = dir.path() + "/bench.json";
  CommandResult run =
      conduit({"bench", "unix", "--quick", "--duration", "0.03", "--json", json}, 120s);
  ASSERT_TRUE(run.status.success()) << run.out << run.err;
  EXPECT_CONTAINS(run.out, "UNIX stream socket");
  EXPECT_CONTAINS(run.out, "4 MiB");
  std::string report = read_file(json);
  EXPECT_CONTAINS(report, "\"histogram_log2_ns\":[");
  EXPECT_EQ(report.find("\"key\":\"pipe\""), std::string::npos) << "bench measured more than asked";
}

TEST(BenchCommand, RequiresAKnownMechanism) {
  CommandResult run = conduit({"bench", "smoke-signals"});
  EXPECT_EQ(run.status.code, 2);
  EXPECT_CONTAINS(run.err, "smoke-signals");
}

}  // namespace
}  // namespace conduit::testing
