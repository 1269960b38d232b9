// Specification of channel URIs (conduit/ipc/uri.hpp) and UNIX socket
// addresses (UnixAddress::parse).

#include "conduit/ipc/uri.hpp"

#include <gtest/gtest.h>

#include <string>

#include "conduit/error.hpp"
#include "conduit/ipc/unix_socket.hpp"
#include "test_support.hpp"

namespace conduit::ipc {
namespace {

using conduit::testing::uri_parse_error;

std::string address_error(const std::string& text) {
  try {
    UnixAddress::parse(text);
  } catch (const InvalidUri& error) {
    return error.what();
  }
  ADD_FAILURE() << "'" << text << "' parsed without error";
  return "";
}

// --- Every scheme parses --------------------------------------------------

TEST(UriParse, BarePipeMeansStdinAndStdout) {
  Uri uri = Uri::parse("pipe:");
  EXPECT_EQ(uri.scheme, "pipe");
  EXPECT_EQ(uri.path, "");
  EXPECT_TRUE(uri.options.empty());
}

TEST(UriParse, PipeWithInheritedDescriptorsKeepsThemAsThePath) {
  Uri uri = Uri::parse("pipe:3,4");
  EXPECT_EQ(uri.scheme, "pipe");
  EXPECT_EQ(uri.path, "3,4");
}

TEST(UriParse, FifoTakesAPath) {
  Uri uri = Uri::parse("fifo:/tmp/p");
  EXPECT_EQ(uri.scheme, "fifo");
  EXPECT_EQ(uri.path, "/tmp/p");
}

TEST(UriParse, UnixTakesAPath) {
  Uri uri = Uri::parse("unix:/run/app.sock");
  EXPECT_EQ(uri.scheme, "unix");
  EXPECT_EQ(uri.path, "/run/app.sock");
}

TEST(UriParse, UnixTakesAnAbstractNameWithTheAtSign) {
  Uri uri = Uri::parse("unix:@name");
  EXPECT_EQ(uri.scheme, "unix");
  EXPECT_EQ(uri.path, "@name");
}

TEST(UriParse, UnixSeqpacketTakesAPath) {
  Uri uri = Uri::parse("unix+seqpacket:/p");
  EXPECT_EQ(uri.scheme, "unix+seqpacket");
  EXPECT_EQ(uri.path, "/p");
}

TEST(UriParse, UnixDgramTakesAPath) {
  Uri uri = Uri::parse("unix+dgram:/p");
  EXPECT_EQ(uri.scheme, "unix+dgram");
  EXPECT_EQ(uri.path, "/p");
}

TEST(UriParse, TcpIPv4SplitsHostAndPort) {
  Uri uri = Uri::parse("tcp://127.0.0.1:80");
  EXPECT_EQ(uri.scheme, "tcp");
  EXPECT_EQ(uri.host, "127.0.0.1");
  EXPECT_EQ(uri.port, 80);
  EXPECT_EQ(uri.path, "");
}

TEST(UriParse, TcpIPv6HostLosesItsBrackets) {
  Uri uri = Uri::parse("tcp://[::1]:80");
  EXPECT_EQ(uri.host, "::1");
  EXPECT_EQ(uri.port, 80);
}

TEST(UriParse, TcpAcceptsTheWholePortRange) {
  EXPECT_EQ(Uri::parse("tcp://127.0.0.1:0").port, 0);
  EXPECT_EQ(Uri::parse("tcp://127.0.0.1:65535").port, 65535);
}

TEST(UriParse, OptionsFollowTheQuestionMarkSeparatedByAmpersands) {
  Uri uri = Uri::parse("unix:/p?raw&max=64K&mode=660");
  EXPECT_EQ(uri.path, "/p");
  EXPECT_TRUE(uri.has_option("raw"));
  EXPECT_EQ(uri.options.at("raw"), "");
  EXPECT_EQ(uri.options.at("max"), "64K");
  EXPECT_EQ(uri.options.at("mode"), "660");
  EXPECT_EQ(uri.options.size(), 3u);
}

TEST(UriParse, TcpTakesOptionsToo) {
  Uri uri = Uri::parse("tcp://[::1]:7000?raw&max=1M");
  EXPECT_EQ(uri.host, "::1");
  EXPECT_EQ(uri.port, 7000);
  EXPECT_TRUE(uri.has_option("raw"));
  EXPECT_EQ(uri.size_option("max"), 1024u * 1024u);
}

TEST(UriSizeOption, PlainDigitsAreBytes) {
  EXPECT_EQ(Uri::parse("unix:/p?max=65536").size_option("max"), 65536u);
}

TEST(UriSizeOption, KSuffixMeansKibibytes) {
  EXPECT_EQ(Uri::parse("unix:/p?max=64K").size_option("max"), 64u * 1024u);
}

TEST(UriSizeOption, MSuffixMeansMebibytes) {
  EXPECT_EQ(Uri::parse("unix:/p?max=16M").size_option("max"), 16u * 1024u * 1024u);
}

TEST(UriSizeOption, AbsentOptionIsNullopt) {
  EXPECT_EQ(Uri::parse("unix:/p").size_option("max"), std::nullopt);
}

// --- str() ------------------------------------------------------------------

TEST(UriStr, RoundTripsEveryScheme) {
  for (const char* text :
       {"pipe:", "pipe:3,4", "fifo:/tmp/p", "unix:/p", "unix:@name", "unix+seqpacket:/p",
        "unix+dgram:/p", "tcp://127.0.0.1:80", "tcp://[::1]:80"}) {
    EXPECT_EQ(Uri::parse(text).str(), text);
  }
}

TEST(UriStr, WritesOptionsInCanonicalOrder) {
  EXPECT_EQ(Uri::parse("unix:/p?raw&mode=660&max=64K").str(), "unix:/p?max=64K&mode=660&raw");
  Uri canonical = Uri::parse("unix:/p?max=64K&mode=660&raw");
  EXPECT_EQ(canonical.str(), "unix:/p?max=64K&mode=660&raw");
}

TEST(UriStr, BracketsAnIPv6Host) {
  Uri uri;
  uri.scheme = "tcp";
  uri.host = "::1";
  uri.port = 9000;
  EXPECT_EQ(uri.str(), "tcp://[::1]:9000");
}

// --- Malformed input ----------------------------------------------------------

TEST(UriInvalid, ErrorsAreInvalidUriAndQuoteTheInput) {
  EXPECT_THROW(Uri::parse("nonsense"), InvalidUri);
  EXPECT_CONTAINS(uri_parse_error("nonsense"), "'nonsense'");
}

TEST(UriInvalid, NoSchemeSaysSoAndListsTheForms) {
  std::string message = uri_parse_error("/tmp/socket");
  EXPECT_CONTAINS(message, "no scheme");
  EXPECT_CONTAINS(message, "unix:/path");
  EXPECT_CONTAINS(message, "tcp://host:port");
}

TEST(UriInvalid, EmptySchemeIsNoScheme) {
  EXPECT_CONTAINS(uri_parse_error(":/tmp/socket"), "no scheme");
}

TEST(UriInvalid, UnknownSchemeIsNamed) {
  std::string message = uri_parse_error("http://example.com:80");
  EXPECT_CONTAINS(message, "unknown scheme 'http'");
  EXPECT_CONTAINS(message, "fifo:/path");
}

TEST(UriInvalid, ABadNameIsExplainedForTheObjectTheUriIsAbout) {
  const std::string shm = uri_parse_error("shm:no-slash");
  EXPECT_CONTAINS(shm, "a POSIX shared-memory object name is one leading '/'");
  EXPECT_EQ(shm.find("queue"), std::string::npos) << shm;
  EXPECT_CONTAINS(uri_parse_error("mq:no-slash"), "a POSIX queue name is one leading '/'");
}

TEST(UriInvalid, FifoWithoutPathSaysThePathIsMissing) {
  EXPECT_CONTAINS(uri_parse_error("fifo:"), "missing path");
}

TEST(UriInvalid, UnixWithoutPathSaysThePathIsMissing) {
  EXPECT_CONTAINS(uri_parse_error("unix:"), "missing path");
  EXPECT_CONTAINS(uri_parse_error("unix+dgram:?raw"), "missing path");
}

TEST(UriInvalid, TcpWithoutPortSaysThePortIsMissing) {
  EXPECT_CONTAINS(uri_parse_error("tcp://127.0.0.1"), "missing ':port'");
}

TEST(UriInvalid, TcpPortAbove65535IsOutOfRange) {
  EXPECT_CONTAINS(uri_parse_error("tcp://127.0.0.1:70000"),
                  "port must be a number from 0 to 65535");
}

TEST(UriInvalid, TcpPortMustBeDigits) {
  EXPECT_CONTAINS(uri_parse_error("tcp://127.0.0.1:http"), "port must be a number");
  EXPECT_CONTAINS(uri_parse_error("tcp://127.0.0.1:"), "port must be a number");
}

TEST(UriInvalid, TcpWithoutSlashesShowsTheExpectedForm) {
  EXPECT_CONTAINS(uri_parse_error("tcp:127.0.0.1:80"), "tcp://host:port");
}

TEST(UriInvalid, TcpWithoutHostSuggestsLoopback) {
  EXPECT_CONTAINS(uri_parse_error("tcp://:80"), "missing host");
}

TEST(UriInvalid, IPv6WithoutBracketsAsksForBrackets) {
  EXPECT_CONTAINS(uri_parse_error("tcp://::1:80"), "put IPv6 addresses in brackets");
}

TEST(UriInvalid, IPv6WithoutClosingBracketSaysSo) {
  EXPECT_CONTAINS(uri_parse_error("tcp://[::1:80"), "missing ']'");
}

TEST(UriInvalid, UnknownOptionIsNamedAndKnownOnesListed) {
  std::string message = uri_parse_error("unix:/p?fast");
  EXPECT_CONTAINS(message, "unknown option 'fast'");
  EXPECT_CONTAINS(message, "raw, max=BYTES, mode=OCTAL");
}

TEST(UriInvalid, MaxMustBeAByteCount) {
  EXPECT_CONTAINS(uri_parse_error("unix:/p?max=lots"), "max= wants a byte count");
  EXPECT_CONTAINS(uri_parse_error("unix:/p?max="), "max= wants a byte count");
  EXPECT_CONTAINS(uri_parse_error("unix:/p?max=64G"), "max= wants a byte count");
}

TEST(UriInvalid, ModeMustBeOctal) {
  EXPECT_CONTAINS(uri_parse_error("fifo:/p?mode=rw"), "mode= wants octal permissions");
  EXPECT_CONTAINS(uri_parse_error("fifo:/p?mode=680"), "mode= wants octal permissions");
  EXPECT_CONTAINS(uri_parse_error("fifo:/p?mode="), "mode= wants octal permissions");
}

TEST(UriInvalid, ModeDoesNotApplyToTcp) {
  EXPECT_CONTAINS(uri_parse_error("tcp://127.0.0.1:80?mode=600"), "mode= applies to FIFOs");
}

TEST(UriInvalid, RawIsRefusedOnSeqpacket) {
  EXPECT_CONTAINS(uri_parse_error("unix+seqpacket:/p?raw"),
                  "raw applies to stream mechanisms; unix+seqpacket keeps message");
}

TEST(UriInvalid, RawIsRefusedOnDgram) {
  EXPECT_CONTAINS(uri_parse_error("unix+dgram:/p?raw"),
                  "raw applies to stream mechanisms; unix+dgram keeps message");
}

TEST(UriInvalid, FifoHasNoAbstractNamespace) {
  EXPECT_CONTAINS(uri_parse_error("fifo:@x"), "no abstract namespace");
}

TEST(UriInvalid, PipeWithOneDescriptorShowsTheReadWriteForm) {
  EXPECT_CONTAINS(uri_parse_error("pipe:3"), "pipe:READ_FD,WRITE_FD");
}

TEST(UriInvalid, PipeDescriptorsMustBeNumbers) {
  EXPECT_CONTAINS(uri_parse_error("pipe:a,b"), "pipe:READ_FD,WRITE_FD");
  EXPECT_CONTAINS(uri_parse_error("pipe:3,"), "pipe:READ_FD,WRITE_FD");
}

// --- UnixAddress ----------------------------------------------------------------

TEST(UriUnixAddress, PathIsNotAbstract) {
  UnixAddress address = UnixAddress::parse("/run/app.sock");
  EXPECT_FALSE(address.abstract());
  EXPECT_EQ(address.name(), "/run/app.sock");
  EXPECT_EQ(address.str(), "/run/app.sock");
}

TEST(UriUnixAddress, AtSignMakesItAbstract) {
  UnixAddress address = UnixAddress::parse("@app");
  EXPECT_TRUE(address.abstract());
  EXPECT_EQ(address.name(), "app");
  EXPECT_EQ(address.str(), "@app");
}

TEST(UriUnixAddress, LongestPathThatFitsIsAccepted) {
  std::string path = "/" + std::string(106, 'a');  // 107 bytes + NUL = sun_path
  EXPECT_EQ(UnixAddress::parse(path).name(), path);
}

TEST(UriUnixAddress, PathLongerThan107BytesIsRefusedWithTheLimit) {
  std::string path = "/" + std::string(107, 'a');  // 108 bytes
  std::string message = address_error(path);
  EXPECT_CONTAINS(message, "108 bytes");
  EXPECT_CONTAINS(message, "at most 107");
}

TEST(UriUnixAddress, EmptyAddressIsRefused) {
  EXPECT_CONTAINS(address_error(""), "empty UNIX socket address");
}

TEST(UriUnixAddress, EmptyAbstractNameIsRefused) {
  EXPECT_CONTAINS(address_error("@"), "empty UNIX socket address");
}

}  // namespace
}  // namespace conduit::ipc
