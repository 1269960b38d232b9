// gRPC's pieces on top of HTTP/2: grpc-timeout values, the percent-encoding
// of grpc-message and the length-prefixed message framing.
#include <gtest/gtest.h>

#include "rpc/protocols/grpc/wire.hpp"

namespace conduit::rpc::grpc {
namespace {

using namespace std::chrono_literals;

TEST(GrpcTimeout, EveryUnitParses) {
  EXPECT_EQ(parse_timeout("1H"), std::chrono::nanoseconds(1h));
  EXPECT_EQ(parse_timeout("2M"), std::chrono::nanoseconds(2min));
  EXPECT_EQ(parse_timeout("30S"), std::chrono::nanoseconds(30s));
  EXPECT_EQ(parse_timeout("100m"), std::chrono::nanoseconds(100ms));
  EXPECT_EQ(parse_timeout("250u"), std::chrono::nanoseconds(250us));
  EXPECT_EQ(parse_timeout("99999999n"), std::chrono::nanoseconds(99999999));
}

TEST(GrpcTimeout, MalformedValuesAreRefused) {
  for (const char* bad : {"", "S", "10", "10s", "10 S", "-1S", "123456789S", "1.5S", "S10"})
    EXPECT_FALSE(parse_timeout(bad)) << bad;
}

TEST(GrpcTimeout, ValuesBeyondWhatNanosecondsHoldSaturate) {
  // Eight digits of hours are far more than an int64 of nanoseconds holds
  // (about 2,562,047 hours): such a timeout is no deadline at all.
  constexpr auto kForever = std::chrono::nanoseconds::max();
  EXPECT_EQ(parse_timeout("99999999H"), kForever);
  EXPECT_EQ(parse_timeout("2562048H"), kForever);
  EXPECT_EQ(parse_timeout("2562047H"), std::chrono::nanoseconds(std::chrono::hours(2562047)));
  EXPECT_EQ(parse_timeout("99999999M"), std::chrono::nanoseconds(std::chrono::minutes(99999999)));
  EXPECT_EQ(parse_timeout("99999999S"), std::chrono::nanoseconds(std::chrono::seconds(99999999)));
}

TEST(GrpcTimeout, FormatKeepsEightDigitsAndNeverShortens) {
  EXPECT_EQ(format_timeout(100ms), "100000u");  // 100000000n has nine digits: next unit
  EXPECT_EQ(format_timeout(1ns), "1n");
  EXPECT_EQ(format_timeout(0ns), "1n");
  EXPECT_EQ(format_timeout(std::chrono::nanoseconds(123'456'789)), "123457u");
  for (std::chrono::nanoseconds timeout : std::initializer_list<std::chrono::nanoseconds>{
           1ns, 999ns, 1500us, 2s, 3min, 5h, std::chrono::nanoseconds(123'456'789'123)}) {
    const std::string text = format_timeout(timeout);
    ASSERT_LE(text.size(), 9u) << text;
    auto parsed = parse_timeout(text);
    ASSERT_TRUE(parsed) << text;
    EXPECT_GE(*parsed, timeout) << text;
  }
}

TEST(GrpcMessage, PercentEncodingRoundTrips) {
  EXPECT_EQ(percent_encode("plain text"), "plain text");
  EXPECT_EQ(percent_encode("100%\n\xC3\xA9"), "100%25%0A%C3%A9");
  const std::string every_byte = [] {
    std::string bytes;
    for (int c = 0; c < 256; ++c) bytes += static_cast<char>(c);
    return bytes;
  }();
  EXPECT_EQ(percent_decode(percent_encode(every_byte)), every_byte);
  // What cannot be decoded is kept.
  EXPECT_EQ(percent_decode("50% off %zz %4"), "50% off %zz %4");
}

TEST(GrpcMessage, FramesSplitWhereverTheBytesArrive) {
  const std::string stream =
      frame_message("first") + frame_message("", true) + frame_message(std::string(70000, 'x'));
  for (std::size_t piece : {1u, 3u, 5u, 4096u, 100000u}) {
    MessageDeframer deframer(1 << 20);
    std::vector<std::pair<bool, std::string>> messages;
    for (std::size_t at = 0; at < stream.size(); at += piece) {
      deframer.append(std::string_view(stream).substr(at, piece));
      bool compressed = false;
      std::string payload;
      while (deframer.next(compressed, payload) == MessageDeframer::Result::message)
        messages.emplace_back(compressed, payload);
    }
    ASSERT_EQ(messages.size(), 3u) << "pieces of " << piece;
    EXPECT_EQ(messages[0], std::make_pair(false, std::string("first")));
    EXPECT_EQ(messages[1], std::make_pair(true, std::string()));
    EXPECT_EQ(messages[2].second.size(), 70000u);
    EXPECT_FALSE(deframer.partial());
  }
}

TEST(GrpcMessage, AnnouncedLengthOverTheLimitIsRefusedBeforeTheBytes) {
  MessageDeframer deframer(1000);
  deframer.append(std::string("\x00\x00\x00\x03\xE9", 5));  // 1001 bytes announced
  bool compressed = false;
  std::string payload;
  EXPECT_EQ(deframer.next(compressed, payload), MessageDeframer::Result::too_large);
  EXPECT_EQ(deframer.announced(), 1001u);
  MessageDeframer exact(1000);
  exact.append(std::string("\x00\x00\x00\x03\xE8", 5) + std::string(1000, 'a'));
  EXPECT_EQ(exact.next(compressed, payload), MessageDeframer::Result::message);
}

TEST(GrpcGzip, RoundTripsAndRefusesWhatIsBrokenOrTooLarge) {
  bool too_large = false;
  for (const std::string& text : {std::string(), std::string("hello"), std::string(100000, 'z')}) {
    const std::string packed = gzip_compress(text);
    EXPECT_EQ(gzip_decompress(packed, 1 << 20, too_large), text);
    EXPECT_FALSE(too_large);
  }
  const std::string zeros = gzip_compress(std::string(1 << 20, '\0'));
  EXPECT_LT(zeros.size(), 5000u);
  EXPECT_FALSE(gzip_decompress(zeros, 1000, too_large));
  EXPECT_TRUE(too_large) << "a bomb must be stopped at the limit";
  const std::string packed = gzip_compress("some text to cut");
  EXPECT_FALSE(gzip_decompress(packed.substr(0, packed.size() / 2), 1 << 20, too_large));
  EXPECT_FALSE(too_large);
  EXPECT_FALSE(gzip_decompress("not gzip at all", 1 << 20, too_large));
}

}  // namespace
}  // namespace conduit::rpc::grpc
