// Channels over message queues (mq:/name and sysvmq:KEY, see channel.hpp and
// src/ipc/queue_transport.hpp): whole messages with the peer in another
// process, the shared server channel that answers whoever sent last, limits,
// receive modes, cancellation, peers that die, and what is left behind
// (nothing).
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/msg.h>
#include <sys/stat.h>

#include <chrono>
#include <cstring>
#include <future>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "conduit/error.hpp"
#include "conduit/ipc/channel.hpp"
#include "conduit/ipc/posix_message_queue.hpp"
#include "conduit/ipc/sysv_message_queue.hpp"
#include "conduit/ipc/uri.hpp"
#include "messages.hpp"
#include "queue_test_support.hpp"
#include "test_support.hpp"

namespace conduit::ipc {
namespace {

using conduit::testing::uri_parse_error;

using namespace std::chrono_literals;
using conduit::testing::Bytes;
using conduit::testing::bytes_of;
using conduit::testing::describe;
using conduit::testing::eventually;
using conduit::testing::exited_cleanly;
using conduit::testing::fork_child;
using conduit::testing::fresh_queue_uri;
using conduit::testing::hex_key;
using conduit::testing::make_message;
using conduit::testing::posix_queue_exists;
using conduit::testing::queue_exists;
using conduit::testing::receive_message;
using conduit::testing::run_in_own_ipc_namespace;
using conduit::testing::skipped_for_lack_of_namespace;
using conduit::testing::sysv_queue_exists;
using conduit::testing::text_of;
using conduit::testing::unique_queue_name;
using conduit::testing::unused_sysv_key;
using conduit::testing::wait_child;
using Clock = std::chrono::steady_clock;

constexpr std::chrono::milliseconds kWait{10000};
constexpr std::size_t kManyMessages = 3000;
constexpr std::size_t kHeader = 16;  // conduit's per-request header

// Echoes `count` messages back to whoever sent each.
void echo(Channel& server, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) {
    Bytes message = receive_message(server);
    server.send(message);
  }
}

// The largest message a queue channel carries under the machine's limits.
std::size_t default_max(const std::string& scheme) {
  if (scheme == "mq")
    return static_cast<std::size_t>(std::min(8192L, PosixQueueLimits::current().msgsize_max)) -
           kHeader;
  SysVQueueLimits limits = SysVQueueLimits::current();
  return static_cast<std::size_t>(std::min(limits.msgmax, limits.msgmnb)) - kHeader;
}

// Runs once per scheme; checks that nothing the test made is left behind.
class QueueChannelTest : public ::testing::TestWithParam<std::string> {
 protected:
  const std::string& uri() const { return uri_; }
  std::string path() const { return Uri::parse(uri_).path; }
  bool mq() const { return GetParam() == "mq"; }
  // The reply queue an mq: client of this process (or `pid`) makes.
  std::string reply_queue(pid_t pid = ::getpid(), int instance = 0) const {
    std::string name = path() + "." + std::to_string(pid);
    return instance == 0 ? name : name + "." + std::to_string(instance);
  }

  void TearDown() override {
    EXPECT_FALSE(queue_exists(uri_)) << uri_ << " was left behind";
    if (mq()) {
      for (int instance : {0, 1}) {
        std::string reply = reply_queue(::getpid(), instance);
        EXPECT_FALSE(posix_queue_exists(reply)) << reply << " was left behind";
        ::mq_unlink(reply.c_str());
      }
      ::mq_unlink(path().c_str());
    } else {
      int id = ::msgget(*parse_sysv_key(path()), 0);
      if (id >= 0) ::msgctl(id, IPC_RMID, nullptr);
    }
  }

 private:
  std::string uri_ = fresh_queue_uri(GetParam(), "channel");
};

INSTANTIATE_TEST_SUITE_P(, QueueChannelTest, ::testing::Values("mq", "sysvmq"),
                         [](const auto& info) { return info.param; });

// ---- URIs -------------------------------------------------------------------------------

TEST(QueueChannelUri, QueueUrisParseAndPrintBack) {
  Uri mq = Uri::parse("mq:/echo?max=4K&mode=640");
  EXPECT_EQ(mq.scheme, "mq");
  EXPECT_EQ(mq.path, "/echo");
  EXPECT_EQ(mq.size_option("max"), 4096u);
  EXPECT_EQ(Uri::parse("sysvmq:0x1234").path, "0x1234");
  EXPECT_EQ(Uri::parse("sysvmq:4660").scheme, "sysvmq");
  EXPECT_EQ(Uri::parse("sysvmq:/tmp").path, "/tmp");
  for (const char* text : {"mq:/echo", "mq:/echo?max=4K&mode=640", "sysvmq:0x1234", "sysvmq:4660",
                           "sysvmq:/var/lib/app"})
    EXPECT_EQ(Uri::parse(text).str(), text);
}

TEST(QueueChannelUri, MalformedQueueUrisSayWhatIsWrong) {
  EXPECT_CONTAINS(uri_parse_error("mq:"), "missing path");
  EXPECT_CONTAINS(uri_parse_error("mq:echo"), "does not start with '/'");
  EXPECT_CONTAINS(uri_parse_error("mq:/a/b"), "'/' after the first character");
  EXPECT_CONTAINS(uri_parse_error("mq:/.."), "\".\" or \"..\"");
  EXPECT_CONTAINS(uri_parse_error("mq:/" + std::string(232, 'x')), "at most 231 characters");
  EXPECT_NO_THROW(Uri::parse("mq:/" + std::string(231, 'x')));
  EXPECT_CONTAINS(uri_parse_error("mq:/echo?raw"), "keeps message boundaries");
  EXPECT_CONTAINS(uri_parse_error("sysvmq:"), "missing path");
  EXPECT_CONTAINS(uri_parse_error("sysvmq:0"), "a number from 1 to 0xffffffff");
  EXPECT_CONTAINS(uri_parse_error("sysvmq:0x100000000"), "a number from 1 to 0xffffffff");
  EXPECT_CONTAINS(uri_parse_error("sysvmq:relative/path"), "absolute path");
  EXPECT_CONTAINS(uri_parse_error("sysvmq:0x1234?raw"), "keeps message boundaries");
}

TEST(QueueChannelUri, FormsListBothQueueSchemes) {
  EXPECT_CONTAINS(std::string(uri_forms()), "mq:/name");
  EXPECT_CONTAINS(std::string(uri_forms()), "sysvmq:KEY");
}

// ---- whole messages between processes ---------------------------------------------------

TEST_P(QueueChannelTest, MessagesOfEverySizeRoundTripWithAClientProcess) {
  ChannelListener listener = ChannelListener::listen(uri());
  Channel server = *listener.accept();
  std::size_t max = server.max_message_size();
  EXPECT_EQ(max, default_max(GetParam()));
  std::vector<std::size_t> sizes = {0, 1, 2, 15, 16, 17, 100, 1000, 4096, max - 1, max};
  pid_t child = fork_child([&] {
    Channel client = Channel::connect(uri());
    ASSERT_EQ(client.max_message_size(), max);
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      client.send(make_message(i, sizes[i]));
      ASSERT_EQ(receive_message(client), make_message(i, sizes[i])) << sizes[i];
    }
  });
  echo(server, sizes.size());
  EXPECT_TRUE(exited_cleanly(wait_child(child)));
}

TEST_P(QueueChannelTest, ThousandsOfClientMessagesArriveInOrder) {
  ChannelListener listener = ChannelListener::listen(uri() + "?max=1K");
  Channel server = *listener.accept();
  pid_t child = fork_child([&] {
    Channel client = Channel::connect(uri());
    for (std::size_t i = 0; i < kManyMessages; ++i) client.send(make_message(i, (i * 97) % 1000));
    ASSERT_EQ(text_of(receive_message(client)), "all there");
  });
  for (std::size_t i = 0; i < kManyMessages; ++i)
    ASSERT_EQ(receive_message(server), make_message(i, (i * 97) % 1000)) << "message " << i;
  server.send(bytes_of("all there"));
  EXPECT_TRUE(exited_cleanly(wait_child(child)));
}

TEST_P(QueueChannelTest, ThousandsOfServerRepliesArriveInOrder) {
  ChannelListener listener = ChannelListener::listen(uri() + "?max=1K");
  Channel server = *listener.accept();
  pid_t child = fork_child([&] {
    Channel client = Channel::connect(uri());
    client.send(bytes_of("go"));
    for (std::size_t i = 0; i < kManyMessages; ++i)
      ASSERT_EQ(receive_message(client), make_message(i, (i * 97) % 1000)) << "message " << i;
    client.send(bytes_of("done"));
  });
  ASSERT_EQ(text_of(receive_message(server)), "go");
  for (std::size_t i = 0; i < kManyMessages; ++i) server.send(make_message(i, (i * 97) % 1000));
  EXPECT_EQ(text_of(receive_message(server)), "done");
  EXPECT_TRUE(exited_cleanly(wait_child(child)));
}

TEST_P(QueueChannelTest, SendAboveTheMaximumThrowsMessageTooLargeAndSendsNothing) {
  ChannelListener listener = ChannelListener::listen(uri() + "?max=1K");
  Channel server = *listener.accept();
  // (A System V queue does not tell its server's maximum: say it here too.)
  Channel client = Channel::connect(uri() + "?max=1K");
  EXPECT_EQ(client.max_message_size(), 1024u);
  EXPECT_THROW(client.send(Bytes(1025)), MessageTooLarge);
  EXPECT_EQ(server.try_receive().status, ReceiveStatus::timed_out);
  client.send(Bytes(1024));
  EXPECT_EQ(receive_message(server).size(), 1024u);
}

TEST_P(QueueChannelTest, ClientAskingForMoreThanTheServerTakesIsToldOrHasItDiscarded) {
  ChannelListener listener = ChannelListener::listen(uri() + "?max=1K");
  Channel server = *listener.accept();
  if (mq()) {
    // A POSIX queue tells its message size, so the client knows at once.
    try {
      Channel::connect(uri() + "?max=2K");
      FAIL() << "a client asked for more than the server's queue carries";
    } catch (const Error& error) {
      EXPECT_CONTAINS(std::string(error.what()), "at most 1024 bytes");
    }
    EXPECT_EQ(Channel::connect(uri() + "?max=512").max_message_size(), 512u);
    return;
  }
  // A System V queue does not: the server discards what it cannot take.
  Channel client = Channel::connect(uri() + "?max=2K");
  client.send(Bytes(2048));
  try {
    server.receive(kWait);
    FAIL() << "the server took a request above its maximum";
  } catch (const MessageTooLarge& error) {
    EXPECT_CONTAINS(std::string(error.what()),
                    "discarded a request larger than the maximum of 1024");
  }
  client.send(bytes_of("small"));
  echo(server, 1);
  EXPECT_EQ(text_of(receive_message(client)), "small");
}

// ---- the shared server channel ------------------------------------------------------------

TEST_P(QueueChannelTest, TwoClientProcessesEachGetTheirOwnReplies) {
  ChannelListener listener = ChannelListener::listen(uri() + "?max=2K");
  Channel server = *listener.accept();
  constexpr std::size_t kEach = 300;
  auto client = [&](std::uint64_t base) {
    return fork_child([&, base] {
      Channel channel = Channel::connect(uri());
      for (std::size_t i = 0; i < kEach; ++i) {
        channel.send(make_message(base + i, 100 + i));
        ASSERT_EQ(receive_message(channel), make_message(base + i, 100 + i));
      }
    });
  };
  pid_t first = client(1000);
  pid_t second = client(5000);
  echo(server, 2 * kEach);
  EXPECT_TRUE(exited_cleanly(wait_child(first)));
  EXPECT_TRUE(exited_cleanly(wait_child(second)));
}

TEST_P(QueueChannelTest, TwoChannelsOfOneProcessEachGetTheirOwnReplies) {
  ChannelListener listener = ChannelListener::listen(uri());
  Channel server = *listener.accept();
  Channel a = Channel::connect(uri());
  Channel b = Channel::connect(uri());
  if (mq()) {
    EXPECT_TRUE(posix_queue_exists(reply_queue(::getpid(), 0)));
    EXPECT_TRUE(posix_queue_exists(reply_queue(::getpid(), 1)));
  }
  a.send(bytes_of("for a"));
  b.send(bytes_of("for b"));
  echo(server, 2);
  EXPECT_EQ(text_of(receive_message(b)), "for b");
  EXPECT_EQ(text_of(receive_message(a)), "for a");
  EXPECT_EQ(a.try_receive().status, ReceiveStatus::timed_out);
}

TEST_P(QueueChannelTest, ServerSendBeforeAnyClientMessageThrows) {
  ChannelListener listener = ChannelListener::listen(uri());
  Channel server = *listener.accept();
  try {
    server.send(bytes_of("to whom?"));
    FAIL() << "the server sent with nobody to reply to";
  } catch (const Error& error) {
    EXPECT_CONTAINS(std::string(error.what()), "nobody to reply to");
  }
}

TEST_P(QueueChannelTest, ListenerHasASingleSharedChannel) {
  ChannelListener listener = ChannelListener::listen(uri());
  EXPECT_EQ(listener.peer_model(), PeerModel::single);
  EXPECT_EQ(listener.uri(), uri());
  auto channel = listener.accept();
  ASSERT_TRUE(channel);
  EXPECT_THROW(listener.accept(0s), Error);
}

TEST_P(QueueChannelTest, ServerWhoseQueueIsFullOfRequestsStillRepliesToEveryClient) {
  // Every request of the largest size: a System V queue (16384 bytes) holds
  // two, so three clients fill it with requests and the replies must still
  // find room.
  ChannelListener listener = ChannelListener::listen(uri());
  Channel server = *listener.accept();
  std::size_t max = server.max_message_size();
  std::vector<pid_t> clients;
  for (int c = 0; c < 4; ++c)
    clients.push_back(fork_child([&, c] {
      Channel client = Channel::connect(uri());
      for (int i = 0; i < 5; ++i) {
        client.send(make_message(c * 100 + i, max));
        ASSERT_EQ(receive_message(client), make_message(c * 100 + i, max));
      }
    }));
  // Let the clients fill the queue before serving.
  std::this_thread::sleep_for(200ms);
  echo(server, 4 * 5);
  for (pid_t client : clients) EXPECT_TRUE(exited_cleanly(wait_child(client)));
}

TEST_P(QueueChannelTest, ClientWithPid1InAPidNamespaceGetsItsReplies) {
  ChannelListener listener = ChannelListener::listen(uri());
  Channel server = *listener.accept();
  std::string target = uri();
  pid_t child = fork_child([target] {
    if (::unshare(CLONE_NEWPID) != 0) ::_exit(conduit::testing::kNoIpcNamespace);
    pid_t init = fork_child([target] {
      ASSERT_EQ(::getpid(), 1);
      Channel client = Channel::connect(target);
      for (int i = 0; i < 20; ++i) {
        client.send(make_message(i, 64));
        ASSERT_EQ(receive_message(client), make_message(i, 64));
      }
    });
    int status = wait_child(init);
    ASSERT_TRUE(exited_cleanly(status)) << describe(status);
  });
  std::future<void> served = std::async(std::launch::async, [&] { echo(server, 20); });
  int status = wait_child(child);
  if (skipped_for_lack_of_namespace(status)) GTEST_SKIP() << "no PID namespace of our own here";
  ASSERT_EQ(served.wait_for(kWait), std::future_status::ready);
  served.get();
  EXPECT_TRUE(exited_cleanly(status)) << describe(status);
  if (mq()) {
    EXPECT_FALSE(posix_queue_exists(path() + ".1"));
  }
}

// ---- receive modes and cancellation ---------------------------------------------------------

TEST_P(QueueChannelTest, TryReceiveWithNothingPendingTimesOutAtOnceOnBothSides) {
  ChannelListener listener = ChannelListener::listen(uri());
  Channel server = *listener.accept();
  Channel client = Channel::connect(uri());
  auto started = Clock::now();
  EXPECT_EQ(server.try_receive().status, ReceiveStatus::timed_out);
  EXPECT_EQ(client.try_receive().status, ReceiveStatus::timed_out);
  EXPECT_LT(Clock::now() - started, 1s);
}

TEST_P(QueueChannelTest, ReceiveWithATimeoutWaitsAboutThatLong) {
  ChannelListener listener = ChannelListener::listen(uri());
  Channel server = *listener.accept();
  Channel client = Channel::connect(uri());
  for (Channel* channel : {&server, &client}) {
    auto started = Clock::now();
    EXPECT_EQ(channel->receive(150ms).status, ReceiveStatus::timed_out);
    auto waited = Clock::now() - started;
    EXPECT_GE(waited, 145ms);
    EXPECT_LT(waited, 5s);
  }
}

TEST_P(QueueChannelTest, MessageSentDuringAWaitIsReceived) {
  ChannelListener listener = ChannelListener::listen(uri());
  Channel server = *listener.accept();
  pid_t child = fork_child([&] {
    std::this_thread::sleep_for(100ms);
    Channel client = Channel::connect(uri());
    client.send(bytes_of("late"));
    ASSERT_EQ(text_of(receive_message(client)), "late");
  });
  EXPECT_EQ(text_of(receive_message(server)), "late");
  server.send(bytes_of("late"));
  EXPECT_TRUE(exited_cleanly(wait_child(child)));
}

TEST_P(QueueChannelTest, BlockedReceivesThrowCancelledPromptly) {
  Cancellation cancellation;
  ChannelOptions options;
  options.cancellation = &cancellation;
  ChannelListener listener = ChannelListener::listen(uri(), options);
  Channel server = *listener.accept();
  Channel client = Channel::connect(uri(), options);
  auto blocked = [](Channel& channel) {
    return std::async(std::launch::async, [&channel] {
      try {
        channel.receive();
      } catch (const Cancelled&) {
        return true;
      }
      return false;
    });
  };
  auto server_wait = blocked(server);
  auto client_wait = blocked(client);
  std::this_thread::sleep_for(100ms);
  auto cancelled_at = Clock::now();
  cancellation.cancel();
  ASSERT_EQ(server_wait.wait_for(kWait), std::future_status::ready);
  ASSERT_EQ(client_wait.wait_for(kWait), std::future_status::ready);
  EXPECT_LT(Clock::now() - cancelled_at, 500ms);
  EXPECT_TRUE(server_wait.get());
  EXPECT_TRUE(client_wait.get());
}

// ---- limits -------------------------------------------------------------------------------

TEST_P(QueueChannelTest, MaxAboveTheKernelLimitIsRefusedNamingTheLimitItsValueAndTheSysctl) {
  std::string message;
  try {
    ChannelListener::listen(uri() + "?max=16K");
    GTEST_SKIP() << "this machine allows 16 KiB queue messages";
  } catch (const Error& error) {
    message = error.what();
  }
  if (mq()) {
    EXPECT_CONTAINS(message, "fs.mqueue.msgsize_max = " +
                                 std::to_string(PosixQueueLimits::current().msgsize_max));
    EXPECT_CONTAINS(message, "sysctl -w fs.mqueue.msgsize_max=16400");
  } else {
    EXPECT_CONTAINS(message,
                    "kernel.msgmax = " + std::to_string(SysVQueueLimits::current().msgmax));
    EXPECT_CONTAINS(message, "sysctl -w kernel.msgmax=16400");
  }
  EXPECT_CONTAINS(message, "16-byte header");
}

TEST_P(QueueChannelTest, BigMessagesPassOnceTheLimitsAreRaisedInAnIpcNamespace) {
  std::vector<std::pair<std::string, std::string>> limits =
      mq() ? std::vector<std::pair<std::string, std::string>>{{"fs/mqueue/msgsize_max", "65536"}}
           : std::vector<std::pair<std::string, std::string>>{{"kernel/msgmax", "65536"},
                                                              {"kernel/msgmnb", "131072"}};
  // 16 KiB (mq: 10 messages each way count against RLIMIT_MSGQUEUE) and
  // 48 KiB (sysvmq), both well above the default 8192.
  std::size_t size = mq() ? 16 * 1024 : 48 * 1024;
  std::string target = uri() + "?max=" + std::to_string(size);
  int status = run_in_own_ipc_namespace(limits, [&] {
    ChannelListener listener = ChannelListener::listen(target);
    Channel server = *listener.accept();
    ASSERT_EQ(server.max_message_size(), size);
    pid_t child = fork_child([&] {
      Channel client = Channel::connect(uri());
      for (int i = 0; i < 10; ++i) {
        client.send(make_message(i, size - i));
        ASSERT_EQ(receive_message(client), make_message(i, size - i));
      }
    });
    echo(server, 10);
    EXPECT_TRUE(exited_cleanly(wait_child(child)));
  });
  if (skipped_for_lack_of_namespace(status)) GTEST_SKIP() << "no IPC namespace of our own here";
  EXPECT_TRUE(exited_cleanly(status)) << describe(status);
}

// ---- lifetime: servers and clients that come and go -------------------------------------------

TEST_P(QueueChannelTest, ListenerRemovesTheQueueOnDestruction) {
  {
    ChannelListener listener = ChannelListener::listen(uri());
    Channel server = *listener.accept();
    EXPECT_TRUE(queue_exists(uri()));
  }
  EXPECT_FALSE(queue_exists(uri()));
}

TEST_P(QueueChannelTest, ClientRemovesWhatItCreatedWhenItGoes) {
  ChannelListener listener = ChannelListener::listen(uri());
  Channel server = *listener.accept();
  {
    Channel client = Channel::connect(uri());
    if (mq()) {
      EXPECT_TRUE(posix_queue_exists(reply_queue()));
    }
    client.send(bytes_of("one"));
    client.send(bytes_of("two"));
    echo(server, 2);  // two replies the client never reads
  }
  if (mq()) {
    EXPECT_FALSE(posix_queue_exists(reply_queue()));
  } else {
    SysVMessageQueue queue = SysVMessageQueue::open(*parse_sysv_key(path()));
    EXPECT_EQ(queue.status().messages, 1u) << "the unread replies stayed in the queue";
  }
}

TEST_P(QueueChannelTest, ModeOptionSetsThePermissionsOfTheQueues) {
  ChannelListener listener = ChannelListener::listen(uri() + "?mode=640");
  if (mq()) {
    PosixMessageQueue queue = PosixMessageQueue::open(path(), QueueAccess::receive_only);
    struct stat st {};
    ASSERT_EQ(::fstat(queue.fd(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0640u);
  } else {
    EXPECT_EQ(SysVMessageQueue::open(*parse_sysv_key(path())).status().mode, 0640u);
  }
}

TEST_P(QueueChannelTest, ConnectWithoutAServerSaysSo) {
  try {
    Channel::connect(uri());
    FAIL() << "connected to nothing";
  } catch (const SystemError& error) {
    EXPECT_EQ(error.code(), ENOENT);
    EXPECT_CONTAINS(std::string(error.what()), "is the server running");
    EXPECT_CONTAINS(std::string(error.what()), uri());
  }
  if (mq()) {
    EXPECT_FALSE(posix_queue_exists(reply_queue()));
  }
}

TEST_P(QueueChannelTest, SecondServerOnALiveQueueIsRefused) {
  ChannelListener first = ChannelListener::listen(uri());
  try {
    ChannelListener::listen(uri());
    FAIL() << "a second server took over a live queue";
  } catch (const SystemError& error) {
    EXPECT_EQ(error.code(), EADDRINUSE);
    EXPECT_CONTAINS(std::string(error.what()), "another");
  }
  EXPECT_TRUE(queue_exists(uri()));
}

TEST_P(QueueChannelTest, ClientSeesClosedOnceTheServerStops) {
  auto listener = std::make_unique<ChannelListener>(ChannelListener::listen(uri()));
  auto server = std::make_unique<Channel>(*listener->accept());
  Channel client = Channel::connect(uri());
  auto result = std::async(std::launch::async, [&] { return client.receive(kWait).status; });
  std::this_thread::sleep_for(100ms);
  auto stopped_at = Clock::now();
  server.reset();
  listener.reset();
  ASSERT_EQ(result.wait_for(kWait), std::future_status::ready);
  EXPECT_EQ(result.get(), ReceiveStatus::closed);
  EXPECT_LT(Clock::now() - stopped_at, 2s);
}

TEST_P(QueueChannelTest, ForeignMessageWithoutTheHeaderIsAProtocolErrorAndServingGoesOn) {
  ChannelListener listener = ChannelListener::listen(uri());
  Channel server = *listener.accept();
  if (mq())
    PosixMessageQueue::open(path(), QueueAccess::send_only).send(bytes_of("junk"));
  else
    SysVMessageQueue::open(*parse_sysv_key(path())).send(1, bytes_of("junk"));
  try {
    server.receive(kWait);
    FAIL() << "a message without conduit's header was taken for a request";
  } catch (const ProtocolError& error) {
    EXPECT_CONTAINS(std::string(error.what()), "without conduit's");
  }
  Channel client = Channel::connect(uri());
  client.send(bytes_of("proper"));
  echo(server, 1);
  EXPECT_EQ(text_of(receive_message(client)), "proper");
}

TEST_P(QueueChannelTest, ServerGoesOnAfterAClientDiesAndClearsWhatItLeft) {
  ChannelListener listener = ChannelListener::listen(uri());
  std::optional<Channel> server = listener.accept();
  pid_t victim = fork_child([&] {
    Channel client = Channel::connect(uri());
    client.send(bytes_of("last words"));
    ::raise(SIGKILL);  // dies without removing anything
  });
  int status = wait_child(victim);
  ASSERT_TRUE(WIFSIGNALED(status)) << describe(status);
  EXPECT_EQ(text_of(receive_message(*server)), "last words");
  try {
    server->send(bytes_of("into the void"));  // nobody will read it
  } catch (const SystemError& error) {
    // The server may have removed the killed client's queue already.
    EXPECT_CONTAINS(std::string(error.what()), "is gone");
  }

  Channel client = Channel::connect(uri());
  client.send(bytes_of("still served"));
  echo(*server, 1);
  EXPECT_EQ(text_of(receive_message(client)), "still served");

  if (mq()) {
    // The server removes the reply queues of killed clients while it serves.
    EXPECT_TRUE(eventually(
        [&] {
          server->receive(50ms);
          return !posix_queue_exists(reply_queue(victim));
        },
        5s));
  } else {
    // An idle server drops the replies that dead clients never read: only
    // the record naming the server stays.
    SysVMessageQueue queue = SysVMessageQueue::open(*parse_sysv_key(path()));
    EXPECT_TRUE(eventually(
        [&] {
          server->receive(50ms);
          return queue.status().messages == 1;
        },
        5s));
  }
}

// POSIX queues only: a server's request queue outlives a killed server, and
// its lock tells the difference.
class QueueChannelPosixTest : public ::testing::Test {
 protected:
  void TearDown() override {
    EXPECT_FALSE(posix_queue_exists(name_));
    ::mq_unlink(name_.c_str());
  }
  std::string name_ = unique_queue_name("stale");
  std::string uri_ = "mq:" + name_;
};

TEST_F(QueueChannelPosixTest, QueueLeftByAKilledServerIsTakenOverByTheNextServer) {
  pid_t server = fork_child([&] {
    ChannelListener listener = ChannelListener::listen(uri_);
    ::raise(SIGKILL);
  });
  ASSERT_TRUE(WIFSIGNALED(wait_child(server)));
  ASSERT_TRUE(posix_queue_exists(name_));
  ChannelListener listener = ChannelListener::listen(uri_);
  Channel channel = *listener.accept();
  Channel client = Channel::connect(uri_);
  client.send(bytes_of("new server"));
  echo(channel, 1);
  EXPECT_EQ(text_of(receive_message(client)), "new server");
}

TEST_F(QueueChannelPosixTest, ClientOfAKilledServerSeesClosed) {
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t server = fork_child([&] {
    ChannelListener listener = ChannelListener::listen(uri_);
    (void)!::write(ready[1], "r", 1);
    ::pause();
  });
  char byte;
  ASSERT_EQ(::read(ready[0], &byte, 1), 1);
  ::close(ready[0]);
  ::close(ready[1]);
  Channel client = Channel::connect(uri_);
  auto result = std::async(std::launch::async, [&] { return client.receive(kWait).status; });
  std::this_thread::sleep_for(100ms);
  ::kill(server, SIGKILL);
  wait_child(server);
  ASSERT_EQ(result.wait_for(kWait), std::future_status::ready);
  EXPECT_EQ(result.get(), ReceiveStatus::closed);
  EXPECT_TRUE(PosixMessageQueue::unlink(name_));  // what the killed server left
}

TEST_F(QueueChannelPosixTest, ReplyQueueLeftByAKilledClientWithTheSamePidIsReplaced) {
  ChannelListener listener = ChannelListener::listen(uri_);
  std::string stale = name_ + "." + std::to_string(::getpid());
  {
    PosixMessageQueue left = PosixMessageQueue::create(stale, QueueAccess::send_and_receive,
                                                       PosixQueueAttributes{10, 8192});
    left.send(bytes_of("stale reply"));
    left.persist();  // as if its process had been killed
  }
  Channel server = *listener.accept();
  {
    Channel client = Channel::connect(uri_);
    client.send(bytes_of("fresh"));
    echo(server, 1);
    EXPECT_EQ(text_of(receive_message(client)), "fresh");
  }
  EXPECT_FALSE(posix_queue_exists(stale));
}

TEST(QueueChannelPermissions, ClientThatMayNotUseTheQueueGetsPermissionDenied) {
  for (std::string scheme : {"mq", "sysvmq"}) {
    std::string uri = fresh_queue_uri(scheme, "channel");
    ChannelListener listener = ChannelListener::listen(uri);  // mode 600, owned by root
    pid_t child = fork_child([&] {
      ASSERT_TRUE(conduit::testing::become_nobody());
      try {
        Channel::connect(uri);
        ADD_FAILURE() << "nobody connected to " << uri;
      } catch (const SystemError& error) {
        EXPECT_EQ(error.code(), EACCES) << error.what();
        EXPECT_CONTAINS(std::string(error.what()), "Permission denied");
      }
    });
    int status = wait_child(child);
    EXPECT_TRUE(exited_cleanly(status)) << scheme << ": " << describe(status);
  }
}

}  // namespace
}  // namespace conduit::ipc
