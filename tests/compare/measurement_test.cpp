// The measuring loops and the two-process harness: a figure only when every
// message arrived whole and in order, the reason otherwise, and nothing left
// running.
#include "compare/measurement.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstring>

#include "compare/ipc_links.hpp"
#include "conduit/error.hpp"
#include "test_support.hpp"

namespace conduit::compare {
namespace {

using namespace std::chrono_literals;

LoopSettings short_loops() {
  LoopSettings settings;
  settings.duration = 30ms;
  settings.warmup = 5ms;
  return settings;
}

Outcome<Latency> round_trips(const std::function<void(Endpoint&)>& peer, std::size_t size = 64,
                             std::chrono::seconds watchdog = 20s) {
  Pattern pattern(size);
  return in_two_processes<Latency>(
      [&] { return raw_pipe_link(size); }, peer,
      [&](Endpoint& driver) {
        Latency latency = measure_round_trips(driver, pattern, size, short_loops());
        send_quit(driver, pattern, size);
        return latency;
      },
      Placement{}, watchdog);
}

Outcome<Throughput> one_way(const std::function<void(Endpoint&)>& peer, std::size_t size = 64) {
  Pattern pattern(size);
  return in_two_processes<Throughput>(
      [&] { return raw_pipe_link(size); }, peer,
      [&](Endpoint& driver) {
        Throughput throughput = measure_one_way(driver, pattern, size, short_loops());
        send_quit(driver, pattern, size);
        return throughput;
      },
      Placement{}, 20s);
}

// No child of this process is left, running or unreaped.
void expect_no_children() {
  EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
}

TEST(Pattern, MatchesOnlyTheExactMessage) {
  Pattern pattern(256);
  std::vector<std::byte> message(100);
  pattern.build(message, 7);
  EXPECT_TRUE(pattern.matches(message, 7, 100));
  EXPECT_EQ(Pattern::index_of(message), 7u);
  EXPECT_FALSE(pattern.matches(message, 8, 100)) << "another index";
  EXPECT_FALSE(pattern.matches(std::span(message).first(99), 7, 100)) << "truncated";
  for (std::size_t at : {0ul, 8ul, 50ul, 91ul, 99ul}) {
    auto corrupted = message;
    corrupted[at] ^= std::byte{1};
    EXPECT_FALSE(pattern.matches(corrupted, 7, 100)) << "byte " << at << " flipped";
  }
}

TEST(Pattern, TwoMessagesOfTheSameSizeDiffer) {
  Pattern pattern(64);
  std::vector<std::byte> a(64), b(64);
  pattern.build(a, 1);
  pattern.build(b, 2);
  EXPECT_NE(a, b);
  EXPECT_FALSE(pattern.matches(b, 1, 64));
}

TEST(Measurement, RoundTripsGiveOrderedPositivePercentiles) {
  Outcome<Latency> outcome = round_trips([](Endpoint& peer) { echo_until_quit(peer); });
  ASSERT_TRUE(outcome.ok()) << outcome.error;
  const Latency& latency = *outcome.figure;
  EXPECT_GT(latency.samples, 10u);
  EXPECT_GT(latency.p50_us, 0);
  EXPECT_LE(latency.p50_us, latency.p99_us);
  EXPECT_LE(latency.p99_us, latency.p999_us);
  EXPECT_LE(latency.p999_us, latency.max_us);
  expect_no_children();
}

TEST(Measurement, CorruptedEchoGivesTheReasonAndNoFigure) {
  Outcome<Latency> outcome = round_trips([](Endpoint& peer) {
    for (int i = 0;; ++i) {
      std::span<const std::byte> message = peer.receive();
      std::span<std::byte> reply = peer.prepare(message.size());
      std::memcpy(reply.data(), message.data(), message.size());
      if (i == 50) reply[30] ^= std::byte{0x40};
      peer.release();
      peer.send(message.size());
    }
  });
  EXPECT_FALSE(outcome.ok());
  EXPECT_CONTAINS(outcome.error, "round trip 50");
  EXPECT_CONTAINS(outcome.error, "differs");
  expect_no_children();
}

TEST(Measurement, PeerThatDiesGivesAnErrorNotAFigure) {
  Outcome<Latency> outcome = round_trips([](Endpoint& peer) {
    peer.receive();
    ::_exit(3);
  });
  EXPECT_FALSE(outcome.ok());
  EXPECT_FALSE(outcome.error.empty());
  expect_no_children();
}

TEST(Measurement, PeerErrorIsReportedAsThePeers) {
  Outcome<Latency> outcome =
      round_trips([](Endpoint&) { throw Error("the peer could not open its end"); });
  EXPECT_FALSE(outcome.ok());
  EXPECT_CONTAINS(outcome.error, "peer: the peer could not open its end");
}

TEST(Measurement, HungPeerIsKilledByTheWatchdog) {
  auto started = std::chrono::steady_clock::now();
  Outcome<Latency> outcome = round_trips([](Endpoint&) { ::pause(); }, 64, 1s);
  EXPECT_FALSE(outcome.ok());
  EXPECT_LT(std::chrono::steady_clock::now() - started, 15s);
  expect_no_children();
}

TEST(Measurement, OneWayThroughputCountsEveryMessage) {
  Pattern pattern(4096);
  Outcome<Throughput> outcome =
      one_way([&](Endpoint& peer) { receive_until_quit(peer, pattern, 4096); }, 4096);
  ASSERT_TRUE(outcome.ok()) << outcome.error;
  const Throughput& throughput = *outcome.figure;
  EXPECT_GT(throughput.messages, 0u);
  EXPECT_NEAR(throughput.messages_per_second * throughput.seconds,
              static_cast<double>(throughput.messages), 1.0);
  EXPECT_NEAR(throughput.megabytes_per_second,
              throughput.messages_per_second * 4096 / 1e6, 1e-6 * throughput.megabytes_per_second);
  expect_no_children();
}

TEST(Measurement, LostMessageIsNamedByTheReceiver) {
  Pattern pattern(64);
  Outcome<Throughput> outcome = one_way([&](Endpoint& peer) {
    // Drops message 10, then checks the rest as usual.
    for (int i = 0; i < 10; ++i) {
      peer.receive();
      peer.release();
    }
    peer.receive();
    peer.release();
    std::uint64_t expected = 10;
    for (;;) {
      std::span<const std::byte> message = peer.receive();
      if (!pattern.matches(message, expected, 64))
        throw Error("message " + std::to_string(expected) + " arrived as message " +
                    std::to_string(Pattern::index_of(message)));
      peer.release();
      ++expected;
    }
  });
  EXPECT_FALSE(outcome.ok());
  EXPECT_CONTAINS(outcome.error, "message 10 arrived as message 11");
}

TEST(Measurement, ReceiverRejectsAReorderedMessage) {
  // The real receiver, fed by a driver that swaps two messages.
  Pattern pattern(64);
  auto outcome = in_two_processes<Throughput>(
      [] { return raw_pipe_link(64); },
      [&](Endpoint& peer) { receive_until_quit(peer, pattern, 64); },
      [&](Endpoint& driver) -> Throughput {
        for (std::uint64_t index : {0, 2, 1}) {
          pattern.build(driver.prepare(64), index);
          driver.send(64);
        }
        driver.receive();  // the peer fails and closes instead of answering
        return {};
      },
      Placement{}, 20s);
  EXPECT_FALSE(outcome.ok());
  EXPECT_CONTAINS(outcome.error, "message 1 arrived as message 2");
}

TEST(Measurement, SizeTheMechanismCannotCarryIsACapNotAnError) {
  Outcome<Latency> outcome = in_two_processes<Latency>(
      [] { return raw_sysv_queue_link(1 << 20); }, [](Endpoint& peer) { echo_until_quit(peer); },
      [](Endpoint&) { return Latency{}; }, Placement{}, 20s);
  EXPECT_FALSE(outcome.ok());
  ASSERT_TRUE(outcome.capped_at.has_value());
  EXPECT_LT(*outcome.capped_at, std::size_t{1} << 20);
  EXPECT_TRUE(outcome.error.empty()) << outcome.error;
}

TEST(Measurement, HistogramCountsEverySample) {
  std::vector<double> samples = {0.5, 1, 3, 900, 1000, 1500, 20000};
  Latency latency = latency_from_samples(samples, 64, true);
  std::size_t total = 0;
  for (std::size_t count : latency.histogram) total += count;
  EXPECT_EQ(total, 7u);
  EXPECT_EQ(latency.histogram[0], 1u) << "under 1 ns";
  EXPECT_EQ(latency.histogram[1], 1u) << "1 ns is in [1, 2)";
  EXPECT_EQ(latency.histogram[10], 2u) << "900 and 1000 ns are in [512, 1024)";
  EXPECT_EQ(latency.histogram[11], 1u) << "1500 ns is in [1024, 2048)";
  EXPECT_DOUBLE_EQ(latency.max_us, 20.0);
}

}  // namespace
}  // namespace conduit::compare
