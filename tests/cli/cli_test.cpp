// The conduit command line, run as a real binary: `conduit ipc serve` and
// `conduit ipc ping` over every URI scheme, exit codes, help texts, clean
// shutdown, and interop with tools nobody here wrote (socat, the shell).
#include <sys/stat.h>

#include <filesystem>
#include <regex>
#include <thread>

#include "cli_support.hpp"
#include "conduit/ipc/channel.hpp"
#include "conduit/ipc/tcp_socket.hpp"
#include "conduit/ipc/unix_socket.hpp"
#include "conduit/ipc/uri.hpp"
#include "test_support.hpp"

namespace conduit::testing {
namespace {

namespace fs = std::filesystem;
using ipc::ExitStatus;

// ---- help ---------------------------------------------------------------------

TEST(CliHelp, TopLevelHelpShowsExamples) {
  CommandResult result = conduit({"--help"});
  EXPECT_TRUE(result.status.success()) << result.status.describe();
  EXPECT_NE(result.out.find("conduit ipc ping pipe:"), std::string::npos) << result.out;
}

TEST(CliHelp, EverySubcommandExplainsEveryUriScheme) {
  for (auto command : {std::vector<std::string>{"ipc", "--help"},
                       std::vector<std::string>{"ipc", "serve", "--help"},
                       std::vector<std::string>{"ipc", "ping", "--help"}}) {
    CommandResult result = conduit(command);
    EXPECT_TRUE(result.status.success()) << command[1];
    for (auto scheme : {"pipe:", "fifo:/", "unix:/", "unix:@",
                        "unix+seqpacket:", "unix+dgram:", "tcp://", "?raw"})
      EXPECT_NE(result.out.find(scheme), std::string::npos) << command[1] << " lacks " << scheme;
  }
}

TEST(CliVersion, NamesTheVersionTheRevisionAndTheLibraries) {
  for (std::string flag : {"--version", "-V"}) {
    CommandResult result = conduit({flag});
    EXPECT_EQ(result.status.code, 0) << flag << ": " << result.status.describe();
    EXPECT_TRUE(std::regex_search(
        result.out,
        std::regex(R"(^conduit \d+\.\d+\.\d+ \(git ([0-9a-f]{12}(\+changes)?|unknown)\)\n)")))
        << flag << ": " << result.out;
    for (const char* library : {"protobuf", "nghttp2", "Boost", "RapidJSON", "zlib"})
      EXPECT_TRUE(std::regex_search(result.out,
                                    std::regex(std::string("\n  ") + library + R"( +\d+\.\d+)")))
          << flag << " lacks " << library << ": " << result.out;
  }
  EXPECT_NE(conduit({"--help"}).out.find("--version"), std::string::npos);
}

TEST(CliHelp, UnknownSubcommandIsAUsageError) {
  CommandResult result = conduit({"ipc", "frobnicate"});
  EXPECT_EQ(result.status.code, 2);
}

// ---- ping against serve, every scheme -------------------------------------------

struct SchemeCase {
  std::string name;
  std::string uri;  // {dir} is replaced by a temporary directory, {pid} by our pid

  friend void PrintTo(const SchemeCase& c, std::ostream* out) { *out << c.uri; }
};

class CliPingEveryScheme : public ::testing::TestWithParam<SchemeCase> {
 protected:
  std::string uri() const {
    std::string text = GetParam().uri;
    for (auto [key, value] : {std::pair<std::string, std::string>{"{dir}", dir_.path()},
                              {"{pid}", std::to_string(::getpid())}}) {
      auto at = text.find(key);
      if (at != std::string::npos) text.replace(at, key.size(), value);
    }
    return text;
  }
  TempDir dir_;
};

TEST_P(CliPingEveryScheme, EchoesManyMessagesAndReportsLatency) {
  EchoServer server(uri());
  CommandResult result =
      conduit({"ipc", "ping", server.uri(), "--count", "500", "--size", "1000", "--json"});
  ASSERT_TRUE(result.status.success()) << result.err;
  EXPECT_NE(result.out.find("\"count\":500"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("\"p50_us\":"), std::string::npos) << result.out;
  EXPECT_TRUE(server.stop().success()) << server.errors();
}

TEST_P(CliPingEveryScheme, CarriesEmptyMessages) {
  EchoServer server(uri());
  CommandResult result = conduit({"ipc", "ping", server.uri(), "--count", "50", "--size", "0"});
  EXPECT_TRUE(result.status.success()) << result.err;
}

TEST_P(CliPingEveryScheme, CarriesMessagesOfTheMaximumSize) {
  // Streams take whatever ?max= says; seqpacket and datagram sockets are held
  // to the kernel's socket buffer limit, which the channel reports.
  std::string listen = uri();
  bool stream = listen.rfind("unix+", 0) != 0;
  if (stream) listen += "?max=1M";
  EchoServer server(listen);
  std::string target = server.uri();
  std::size_t max = stream ? 1024 * 1024 : ipc::Channel::connect(target).max_message_size();
  CommandResult result =
      conduit({"ipc", "ping", target, "--count", "20", "--size", std::to_string(max)});
  EXPECT_TRUE(result.status.success()) << result.err;
  CommandResult over =
      conduit({"ipc", "ping", target, "--count", "1", "--size", std::to_string(max + 1)});
  EXPECT_EQ(over.status.code, 2) << over.out;
  EXPECT_NE(over.err.find("exceeds the maximum"), std::string::npos) << over.err;
}

INSTANTIATE_TEST_SUITE_P(
    Schemes, CliPingEveryScheme,
    ::testing::Values(SchemeCase{"fifo", "fifo:{dir}/echo"},
                      SchemeCase{"unix_path", "unix:{dir}/echo.sock"},
                      SchemeCase{"unix_abstract", "unix:@conduit-cli-test-{pid}"},
                      SchemeCase{"unix_seqpacket", "unix+seqpacket:{dir}/echo.sock"},
                      SchemeCase{"unix_dgram", "unix+dgram:{dir}/echo.sock"},
                      SchemeCase{"tcp_ipv4", "tcp://127.0.0.1:0"},
                      SchemeCase{"shm", "shm:/conduit-cli-test-{pid}"}),
    [](const auto& info) { return info.param.name; });

TEST(CliPing, OverTcpIpv6) {
  std::optional<EchoServer> server;
  try {
    server.emplace("tcp://[::1]:0");
  } catch (const std::exception& error) {
    GTEST_SKIP() << "IPv6 loopback unavailable here: " << error.what();
  }
  CommandResult result = conduit({"ipc", "ping", server->uri(), "--count", "100"});
  EXPECT_TRUE(result.status.success()) << result.err;
}

TEST(CliPing, PipeSpawnsItsOwnEchoChild) {
  CommandResult result = conduit({"ipc", "ping", "pipe:", "--count", "300", "--size", "4096"});
  ASSERT_TRUE(result.status.success()) << result.err;
  EXPECT_NE(result.out.find("300 messages of 4096 bytes echoed and checked"), std::string::npos)
      << result.out;
}

TEST(CliPing, PipeCarriesTheMaximumSize) {
  CommandResult result =
      conduit({"ipc", "ping", "pipe:?max=4M", "--count", "5", "--size", "4194304"});
  EXPECT_TRUE(result.status.success()) << result.err;
}

// ---- failures and exit codes -------------------------------------------------------

TEST(CliErrors, BadUriExitsTwoWithOneLineNamingTheProblem) {
  CommandResult result = conduit({"ipc", "ping", "carrier-pigeon:/coop"});
  EXPECT_EQ(result.status.code, 2);
  EXPECT_NE(result.err.find("unknown scheme 'carrier-pigeon'"), std::string::npos) << result.err;
}

TEST(CliErrors, MissingSocketPathExitsTwo) {
  TempDir dir;
  CommandResult result = conduit({"ipc", "ping", "unix:" + (dir / "nobody.sock")});
  EXPECT_EQ(result.status.code, 2);
  EXPECT_NE(result.err.find("No such file or directory"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("is the server running?"), std::string::npos) << result.err;
  EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << result.err;
}

TEST(CliErrors, PathThatIsNotASocketExitsTwo) {
  TempDir dir;
  std::string file = dir / "plain-file";
  std::FILE* f = std::fopen(file.c_str(), "w");
  std::fclose(f);
  CommandResult ping = conduit({"ipc", "ping", "unix:" + file});
  EXPECT_EQ(ping.status.code, 2);
  EXPECT_NE(ping.err.find("not a socket"), std::string::npos) << ping.err;
  CommandResult serve = conduit({"ipc", "serve", "unix:" + file});
  EXPECT_EQ(serve.status.code, 2);
  EXPECT_NE(serve.err.find("not a socket"), std::string::npos) << serve.err;
  EXPECT_TRUE(fs::exists(file)) << "serve must not delete a file that is not its socket";
}

TEST(CliErrors, ConnectionRefusedExitsTwo) {
  // A port that was free a moment ago: bind, note it, close.
  std::uint16_t port = ipc::TcpListener::bind("127.0.0.1", 0).port();
  CommandResult result = conduit({"ipc", "ping", "tcp://127.0.0.1:" + std::to_string(port)});
  EXPECT_EQ(result.status.code, 2);
  EXPECT_NE(result.err.find("Connection refused"), std::string::npos) << result.err;
}

TEST(CliErrors, PermissionDeniedExitsTwo) {
  TempDir dir;
  std::string locked = dir / "locked";
  ASSERT_EQ(::mkdir(locked.c_str(), 0700), 0);
  std::vector<std::string> argv = {conduit_binary(), "ipc", "serve", "unix:" + locked + "/s.sock"};
  if (::geteuid() == 0) {
    // root passes every permission check: run as nobody instead.
    if (!has_program("setpriv")) GTEST_SKIP() << "setpriv (util-linux) is needed to drop root";
    argv.insert(argv.begin(), {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"});
  }
  CommandResult result = run_command(argv);
  EXPECT_EQ(result.status.code, 2) << result.err;
  EXPECT_NE(result.err.find("Permission denied"), std::string::npos) << result.err;
}

TEST(CliErrors, ServeRefusesToClobberALiveSocket) {
  TempDir dir;
  EchoServer first("unix:" + (dir / "busy.sock"));
  CommandResult second = conduit({"ipc", "serve", first.uri()});
  EXPECT_EQ(second.status.code, 2);
  EXPECT_NE(second.err.find("another process is serving"), std::string::npos) << second.err;
  CommandResult still = conduit({"ipc", "ping", first.uri(), "--count", "10"});
  EXPECT_TRUE(still.status.success()) << still.err;
}

TEST(CliErrors, PingExitsOneWhenTheEchoDiffers) {
  // A server that flips one bit of every echo: ping must notice.
  TempDir dir;
  auto listener = ipc::ChannelListener::listen("unix:" + (dir / "liar.sock"));
  std::thread liar([&] {
    auto channel = listener.accept(std::chrono::seconds(10));
    if (!channel) return;
    while (auto received = channel->receive(std::chrono::seconds(10))) {
      std::vector<std::byte> copy(received.message.begin(), received.message.end());
      if (!copy.empty()) copy.back() ^= std::byte{1};
      channel->send(copy);
    }
  });
  CommandResult result = conduit({"ipc", "ping", listener.uri(), "--count", "5"});
  liar.join();
  EXPECT_EQ(result.status.code, 1);
  EXPECT_NE(result.err.find("differs from what was sent"), std::string::npos) << result.err;
}

TEST(CliErrors, PingTimesOutWhenNobodyAnswers) {
  TempDir dir;
  auto listener = ipc::ChannelListener::listen("unix:" + (dir / "mute.sock"));
  CommandResult result =
      conduit({"ipc", "ping", listener.uri(), "--count", "1", "--timeout", "200"});
  EXPECT_EQ(result.status.code, 1);
  EXPECT_NE(result.err.find("no echo for message 0 within 200 ms"), std::string::npos)
      << result.err;
}

// ---- the server survives bad clients ------------------------------------------------

TEST(CliServe, KeepsServingAfterAClientAnnouncesAnOversizedFrame) {
  TempDir dir;
  EchoServer server("unix:" + (dir / "echo.sock") + "?max=64K");
  {
    ipc::UnixSocket bad = ipc::UnixSocket::connect(ipc::UnixAddress::parse(dir / "echo.sock"),
                                                   ipc::UnixSocketType::stream);
    const unsigned char header[4] = {0xff, 0xff, 0xff, 0xff};
    ASSERT_EQ(::write(bad.fd(), header, 4), 4);
    char byte;
    // The server drops this client: end of stream, within the timeout.
    pollfd ready{bad.fd(), POLLIN, 0};
    ASSERT_EQ(::poll(&ready, 1, 5000), 1);
    EXPECT_EQ(::read(bad.fd(), &byte, 1), 0);
  }
  CommandResult good = conduit({"ipc", "ping", server.uri(), "--count", "100"});
  EXPECT_TRUE(good.status.success()) << good.err;
  EXPECT_NE(server.errors().find("the peer announced a message of 4294967295 bytes"),
            std::string::npos)
      << server.errors();
}

TEST(CliServe, KeepsServingWhileAClientDiesMidMessage) {
  TempDir dir;
  EchoServer server("tcp://127.0.0.1:0");
  pid_t victim = fork_child([&] {
    auto uri = ipc::Uri::parse(server.uri());
    ipc::TcpSocket socket = ipc::TcpSocket::connect(uri.host, uri.port);
    const unsigned char partial[6] = {0, 0, 1, 0, 'x', 'y'};  // 256 bytes announced, 2 sent
    (void)!::write(socket.fd(), partial, sizeof partial);
    ::raise(SIGKILL);
  });
  int status = wait_child(victim);
  ASSERT_TRUE(WIFSIGNALED(status));
  CommandResult good = conduit({"ipc", "ping", server.uri(), "--count", "100"});
  EXPECT_TRUE(good.status.success()) << good.err;
  EXPECT_TRUE(eventually([&] {
    return server.errors().find("in the middle of a message") != std::string::npos;
  })) << server.errors();
}

TEST(CliServe, ServesClientsConcurrently) {
  TempDir dir;
  EchoServer server("unix:" + (dir / "echo.sock"));
  // A client that stays connected without sending must not block others.
  ipc::Channel idle = ipc::Channel::connect(server.uri());
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int i = 0; i < 4; ++i)
    clients.emplace_back([&] {
      if (conduit({"ipc", "ping", server.uri(), "--count", "200"}).status.success()) ++ok;
    });
  for (auto& client : clients) client.join();
  EXPECT_EQ(ok.load(), 4);
}

// ---- clean shutdown ----------------------------------------------------------------

TEST(CliServe, SigtermRemovesTheSocketFile) {
  TempDir dir;
  std::string path = dir / "echo.sock";
  EchoServer server("unix:" + path);
  ipc::Channel connected = ipc::Channel::connect(server.uri());  // a client still attached
  ASSERT_TRUE(fs::exists(path));
  ExitStatus status = server.stop();
  EXPECT_TRUE(status.success()) << status.describe();
  EXPECT_FALSE(fs::exists(path));
}

TEST(CliServe, SigintRemovesTheFifo) {
  TempDir dir;
  EchoServer server("fifo:" + (dir / "echo"));
  ASSERT_TRUE(fs::exists(dir / "echo"));
  server.process().kill(SIGINT);
  auto status = server.process().wait_for(std::chrono::seconds(10));
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(status->success()) << status->describe();
  EXPECT_FALSE(fs::exists(dir / "echo"));
}

TEST(CliServe, PipeServerExitsWhenItsPeerCloses) {
  CommandResult result = conduit({"ipc", "serve", "pipe:"}, std::chrono::seconds(10));
  EXPECT_TRUE(result.status.success()) << result.err;  // stdin is empty: EOF at once
}

// ---- interop with tools nobody here wrote --------------------------------------------

TEST(CliInterop, SocatTalksToARawUnixChannel) {
  if (!has_program("socat")) GTEST_SKIP() << "socat is not installed";
  TempDir dir;
  EchoServer server("unix:" + (dir / "raw.sock") + "?raw");
  CommandResult result =
      run_command({"socat", "-t", "5", "-", "UNIX-CONNECT:" + (dir / "raw.sock")},
                  std::chrono::seconds(20), "hello from socat\n");
  EXPECT_TRUE(result.status.success()) << result.err;
  EXPECT_EQ(result.out, "hello from socat\n");
}

TEST(CliInterop, SocatTalksToARawTcpChannel) {
  if (!has_program("socat")) GTEST_SKIP() << "socat is not installed";
  EchoServer server("tcp://127.0.0.1:0?raw");
  auto uri = ipc::Uri::parse(server.uri());
  CommandResult result =
      run_command({"socat", "-t", "5", "-", "TCP:127.0.0.1:" + std::to_string(uri.port)},
                  std::chrono::seconds(20), "over tcp\n");
  EXPECT_TRUE(result.status.success()) << result.err;
  EXPECT_EQ(result.out, "over tcp\n");
}

TEST(CliInterop, PingChecksEchoesFromASocatServer) {
  if (!has_program("socat")) GTEST_SKIP() << "socat is not installed";
  TempDir dir;
  std::string path = dir / "socat.sock";
  ipc::SpawnOptions options;
  options.argv = {"socat", "UNIX-LISTEN:" + path + ",fork", "EXEC:cat"};
  ipc::Process socat = ipc::Process::spawn(options);
  ASSERT_TRUE(eventually([&] { return fs::exists(path); }));
  CommandResult result =
      conduit({"ipc", "ping", "unix:" + path + "?raw", "--count", "200", "--size", "512"});
  EXPECT_TRUE(result.status.success()) << result.err;
  socat.kill(SIGTERM);
  socat.wait_for(std::chrono::seconds(5));
}

TEST(CliInterop, ShellTalksToARawFifoServer) {
  TempDir dir;
  EchoServer server("fifo:" + (dir / "f") + "?raw");
  // The shell announces a FIFO pair of its own, as conduit's clients do.
  std::string pair = dir / "f.sh";
  std::string script = "mkfifo " + pair + ".c2s " + pair + ".s2c && echo " + pair + " > " +
                       (dir / "f") + " && exec 3<" + pair + ".s2c && printf 'hello fifo' > " +
                       pair + ".c2s && head -c 10 <&3";
  CommandResult result = run_command({"sh", "-c", script}, std::chrono::seconds(20));
  EXPECT_TRUE(result.status.success()) << result.err;
  EXPECT_EQ(result.out, "hello fifo");
}

}  // namespace
}  // namespace conduit::testing
