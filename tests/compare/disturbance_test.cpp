// A figure measured while something else ran is told apart: the watch sees
// other processes' CPU time (not this process's own children's), the runs
// of a side that disagree are disturbed, and the report and the verdicts
// say so.
#include "compare/disturbance.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "compare/report.hpp"
#include "compare/runner.hpp"

namespace conduit::compare {
namespace {

using namespace std::chrono_literals;

// A busy loop that is not a descendant of this process: its parent shell
// exits at once, so it is adopted elsewhere. Killed by its pid at the end.
class StrangerBusyLoop {
 public:
  StrangerBusyLoop() {
    FILE* out = ::popen("sh -c 'sh -c \"while :; do :; done\" >/dev/null 2>&1 & echo $!'", "r");
    if (out == nullptr) return;
    if (std::fscanf(out, "%d", &pid_) != 1) pid_ = -1;
    ::pclose(out);
  }
  ~StrangerBusyLoop() {
    if (pid_ > 0) ::kill(pid_, SIGKILL);
  }
  int pid() const { return pid_; }

 private:
  int pid_ = -1;
};

TEST(DisturbanceWatch, SeesAnotherProcessTakingACpu) {
  StrangerBusyLoop stranger;
  ASSERT_GT(stranger.pid(), 0);
  std::this_thread::sleep_for(50ms);  // running by now
  DisturbanceWatch watch;
  std::this_thread::sleep_for(400ms);
  const std::string why = watch.verdict();
  EXPECT_NE(why.find("other processes used"), std::string::npos) << "'" << why << "'";
}

// CPU time this process has used, in ms.
double cpu_ms() {
  timespec now{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) * 1e3 + static_cast<double>(now.tv_nsec) / 1e6;
}

TEST(DisturbanceWatch, CountsItsOwnChildrensTimeAsItsOwn) {
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  const long long before = DisturbanceWatch::own_ticks();
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {  // 300 ms of CPU, telling the parent after 200
    const double start = cpu_ms();
    bool told = false;
    while (cpu_ms() - start < 300) {
      if (!told && cpu_ms() - start >= 200) {
        told = ::write(pipe_fds[1], "x", 1) == 1;
      }
    }
    ::_exit(0);
  }
  ::close(pipe_fds[1]);
  char byte;
  ASSERT_EQ(::read(pipe_fds[0], &byte, 1), 1);
  ::close(pipe_fds[0]);
  const long long during = DisturbanceWatch::own_ticks();  // the child still runs
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  const long long after = DisturbanceWatch::own_ticks();  // now in this one's waited-for time
  const long long tick_ms = 1000 / ::sysconf(_SC_CLK_TCK);
  // Ticks are sampled: a little under what was used.
  EXPECT_GE((during - before) * tick_ms, 150) << "a live child's time is not counted as own";
  EXPECT_GE((after - before) * tick_ms, 250) << "a waited-for child's time is not counted as own";
}

Outcome<Latency> run_of(double p50, std::string disturbed = {}) {
  Outcome<Latency> outcome;
  outcome.figure = Latency{64, 1000, p50, p50, p50, p50, {}};
  outcome.disturbed = std::move(disturbed);
  return outcome;
}

TEST(Settle, RunsThatAgreeGiveTheBestUndisturbed) {
  const auto settled = settle({run_of(10.5), run_of(10.0)}, 0.3);
  ASSERT_TRUE(settled.ok());
  EXPECT_EQ(settled.figure->p50_us, 10.0);
  EXPECT_EQ(settled.disturbed, "");
}

TEST(Settle, RunsThatDisagreeAreDisturbedSayingByHowMuch) {
  const auto settled = settle({run_of(10), run_of(25)}, 0.3);
  EXPECT_EQ(settled.figure->p50_us, 10);
  EXPECT_NE(settled.disturbed.find("150% apart"), std::string::npos) << settled.disturbed;
}

TEST(Settle, ADisturbedRunIsPassedOverEvenWhenItLooksBetter) {
  const auto settled = settle(
      {run_of(5, "other processes used 90% of a CPU meanwhile"), run_of(10), run_of(10.2)}, 0.3);
  EXPECT_EQ(settled.figure->p50_us, 10);
  EXPECT_EQ(settled.disturbed, "");
}

TEST(Settle, WhenEveryRunWasDisturbedTheBestIsKeptWithItsReason) {
  const auto settled = settle({run_of(12, "a"), run_of(11, "b")}, 0.3);
  EXPECT_EQ(settled.figure->p50_us, 11);
  EXPECT_EQ(settled.disturbed, "b");
}

TEST(Settle, AFailureStandsWhateverTheOtherRunsGave) {
  Outcome<Latency> failed;
  failed.error = "the peer died";
  const auto settled = settle({run_of(10), failed, run_of(10)}, 0.3);
  EXPECT_FALSE(settled.ok());
  EXPECT_EQ(settled.error, "the peer died");
}

Row ipc_row(const std::string& key, double p50, std::string disturbed = {}) {
  Row row;
  row.family = "IPC";
  row.key = key;
  row.name = key;
  Measured<Latency> latency;
  latency.conduit = run_of(p50, std::move(disturbed));
  row.latency.push_back(latency);
  return row;
}

TEST(DisturbedReport, FiguresAreMarkedFootnotedAndTheVerdictsOnThemSaySo) {
  Report report;
  report.options.latency_sizes = {64};
  report.options.throughput_sizes = {};
  report.rows.push_back(ipc_row("shm", 0.4, "other processes used 80% of a CPU meanwhile"));
  report.rows.push_back(ipc_row("pipe", 7.5));
  report.rows.push_back(ipc_row("unix", 6.0));
  report.reruns = 3;
  report.verdicts = judge_claims(report);
  const std::string text = text_report(report, false);
  EXPECT_NE(text.find("~0.40"), std::string::npos) << text;
  EXPECT_NE(text.find("shm, round trips of 64 B: other processes used 80% of a CPU meanwhile"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("after 3 reruns"), std::string::npos) << text;
  bool shm_verdict = false, pipe_verdict = false;
  for (const Verdict& verdict : report.verdicts) {
    if (verdict.claim == "Shared memory: fastest IPC method") {
      shm_verdict = true;
      EXPECT_NE(verdict.reason.find("rests on disturbed figures: shm round trips"),
                std::string::npos)
          << verdict.reason;
    }
    if (verdict.claim == "Pipes: simple, efficient for parent-child processes") {
      pipe_verdict = true;  // pipe and unix only: undisturbed
      EXPECT_EQ(verdict.reason.find("disturbed"), std::string::npos) << verdict.reason;
    }
  }
  EXPECT_TRUE(shm_verdict && pipe_verdict);
  const std::string json = json_report(report);
  EXPECT_NE(json.find(R"("disturbed":"other processes used 80% of a CPU meanwhile")"),
            std::string::npos)
      << json;
}

TEST(DisturbedReport, CpusThatChangedDuringTheRunAreNamed) {
  Report report;
  report.limits.cache_line_round_trip_us = 0.15;
  report.limits.cache_line_round_trip_end_us = 0.09;
  EXPECT_NE(cpus_moved(report).find("0.15 us at the start, 0.09 us at the end"), std::string::npos);
  report.limits.cache_line_round_trip_end_us = 0.16;
  EXPECT_EQ(cpus_moved(report), "");
}

}  // namespace
}  // namespace conduit::compare
