// Calls side by side on one connection: over lines and Content-Length
// framing a connection's calls run at once, up to the server's limit, and
// each reply goes out as soon as it is ready; replies still come when the
// client has shut down its sending side, and a shutdown lets them finish.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <google/protobuf/struct.pb.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>

#include "conduit/ipc/tcp_socket.hpp"
#include "conduit/rpc/server.hpp"
#include "conduit/rpc/service.hpp"
#include "test_support.hpp"

namespace conduit::rpc {
namespace {

using namespace std::chrono_literals;

// Serves `echo` with a nap: sleeps the milliseconds of its one param, then
// returns its params; counts how many naps run at once.
class NappingServer {
 public:
  explicit NappingServer(std::size_t calls_per_connection, std::size_t threads = 4) {
    services_.add<google::protobuf::Value, google::protobuf::Value>(
        "conduit.interop.JsonRpcExamples/echo",
        [this](CallContext&, const google::protobuf::Value& request,
               google::protobuf::Value& response) {
          const int now = ++running_;
          int seen = most_;
          while (now > seen && !most_.compare_exchange_weak(seen, now)) {
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(
              static_cast<int>(request.list_value().values(0).number_value())));
          --running_;
          response.CopyFrom(request);
          return Status();
        });
    ServerOptions options;
    options.threads = threads;
    options.max_calls_per_connection = calls_per_connection;
    server_ = std::make_unique<Server>(services_, options);
    std::string address = server_->listen("tcp://127.0.0.1:0");
    port_ = static_cast<std::uint16_t>(std::stoi(address.substr(address.rfind(':') + 1)));
    server_->start();
  }

  Server& server() { return *server_; }
  ipc::TcpSocket connect() const { return ipc::TcpSocket::connect("127.0.0.1", port_); }
  int most_at_once() const { return most_.load(); }

 private:
  ServiceTable services_;
  std::unique_ptr<Server> server_;
  std::uint16_t port_ = 0;
  std::atomic<int> running_{0};
  std::atomic<int> most_{0};
};

std::string nap_line(int id, int milliseconds) {
  return R"({"jsonrpc":"2.0","method":"echo","params":[)" + std::to_string(milliseconds) +
         R"(],"id":)" + std::to_string(id) + "}\n";
}

void send_all(int fd, const std::string& bytes) {
  ASSERT_EQ(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(bytes.size()));
}

// Reads `count` lines within `timeout`; fewer when the time ran out or the
// peer closed.
std::vector<std::string> read_lines(int fd, std::size_t count,
                                    std::chrono::milliseconds timeout = 5s) {
  std::vector<std::string> lines;
  std::string pending;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (lines.size() < count) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd ready{fd, POLLIN, 0};
    if (left.count() <= 0 || ::poll(&ready, 1, static_cast<int>(left.count())) != 1) break;
    char chunk[4096];
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) break;
    pending.append(chunk, static_cast<std::size_t>(n));
    for (std::size_t end; (end = pending.find('\n')) != std::string::npos;) {
      lines.push_back(pending.substr(0, end));
      pending.erase(0, end + 1);
    }
  }
  return lines;
}

TEST(ConcurrentCalls, QuickCallOvertakesASlowOneOnTheSameConnection) {
  NappingServer server(/*calls_per_connection=*/8);
  auto socket = server.connect();
  send_all(socket.fd(), nap_line(1, 400) + nap_line(2, 0));
  auto lines = read_lines(socket.fd(), 2);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], R"({"jsonrpc":"2.0","result":[0],"id":2})");
  EXPECT_EQ(lines[1], R"({"jsonrpc":"2.0","result":[400],"id":1})");
}

TEST(ConcurrentCalls, NoMoreRunAtOnceThanTheLimit) {
  NappingServer server(/*calls_per_connection=*/2);
  auto socket = server.connect();
  std::string burst;
  for (int id = 1; id <= 6; ++id) burst += nap_line(id, 100);
  const auto started = std::chrono::steady_clock::now();
  send_all(socket.fd(), burst);
  auto lines = read_lines(socket.fd(), 6);
  ASSERT_EQ(lines.size(), 6u);
  std::vector<std::string> ids;
  for (const auto& line : lines) ids.push_back(line.substr(line.rfind(':') + 1));
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, (std::vector<std::string>{"1}", "2}", "3}", "4}", "5}", "6}"}));
  EXPECT_EQ(server.most_at_once(), 2);
  // Six naps of 100 ms, two at a time, cannot take less than 300 ms.
  EXPECT_GE(std::chrono::steady_clock::now() - started, 290ms);
}

TEST(ConcurrentCalls, ContentLengthFramingRunsCallsSideBySide) {
  NappingServer server(/*calls_per_connection=*/8);
  auto socket = server.connect();
  auto framed = [](const std::string& text) {
    return "Content-Length: " + std::to_string(text.size()) + "\r\n\r\n" + text;
  };
  std::string slow = nap_line(1, 300);
  std::string quick = nap_line(2, 0);
  slow.pop_back();
  quick.pop_back();
  send_all(socket.fd(), framed(slow) + framed(quick));
  std::string replies;
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (replies.find(R"("id":1})") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    pollfd ready{socket.fd(), POLLIN, 0};
    if (::poll(&ready, 1, 1000) != 1) continue;
    char chunk[4096];
    const ssize_t n = ::recv(socket.fd(), chunk, sizeof chunk, 0);
    if (n <= 0) break;
    replies.append(chunk, static_cast<std::size_t>(n));
  }
  const std::string first = R"({"jsonrpc":"2.0","result":[0],"id":2})";
  const std::string second = R"({"jsonrpc":"2.0","result":[300],"id":1})";
  EXPECT_EQ(replies, framed(first) + framed(second));
}

TEST(ConcurrentCalls, RepliesStillComeAfterTheClientStoppedSending) {
  NappingServer server(/*calls_per_connection=*/8);
  auto socket = server.connect();
  send_all(socket.fd(), nap_line(1, 200) + nap_line(2, 100) + nap_line(3, 0));
  ASSERT_EQ(::shutdown(socket.fd(), SHUT_WR), 0);
  auto lines = read_lines(socket.fd(), 4, 3s);
  ASSERT_EQ(lines.size(), 3u) << "a reply was lost, or an extra one came";
  EXPECT_EQ(lines[0], R"({"jsonrpc":"2.0","result":[0],"id":3})");
  EXPECT_EQ(lines[1], R"({"jsonrpc":"2.0","result":[100],"id":2})");
  EXPECT_EQ(lines[2], R"({"jsonrpc":"2.0","result":[200],"id":1})");
}

TEST(ConcurrentCalls, ShutdownLetsCallsInFlightAnswerAndEndsWithoutWaitingTheGrace) {
  NappingServer server(/*calls_per_connection=*/8);
  auto socket = server.connect();
  send_all(socket.fd(), nap_line(1, 300) + nap_line(2, 200));
  std::this_thread::sleep_for(100ms);  // both are running now
  const auto started = std::chrono::steady_clock::now();
  std::thread stopper([&] { server.server().shutdown(5s); });
  auto lines = read_lines(socket.fd(), 3, 3s);
  stopper.join();
  EXPECT_EQ(lines.size(), 2u);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 2s)
      << "shutdown waited for the whole grace after the calls had answered";
}

}  // namespace
}  // namespace conduit::rpc
