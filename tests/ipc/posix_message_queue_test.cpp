// Specification of conduit::ipc::PosixMessageQueue (posix_message_queue.hpp):
// creation and naming rules, ownership and persistence, priorities, the
// blocking, non-blocking and timed operations, limits and their errors
// (also raised inside an IPC namespace of the test's own), permissions, and
// real processes on both ends.
#include "conduit/ipc/posix_message_queue.hpp"

#include <gtest/gtest.h>
#include <mqueue.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "conduit/error.hpp"
#include "messages.hpp"
#include "queue_test_support.hpp"
#include "test_support.hpp"

namespace conduit::ipc {
namespace {

using namespace std::chrono_literals;
using conduit::testing::Bytes;
using conduit::testing::bytes_of;
using conduit::testing::describe;
using conduit::testing::exited_cleanly;
using conduit::testing::fork_child;
using conduit::testing::make_message;
using conduit::testing::posix_queue_exists;
using conduit::testing::run_in_own_ipc_namespace;
using conduit::testing::skipped_for_lack_of_namespace;
using conduit::testing::text_of;
using conduit::testing::unique_queue_name;
using conduit::testing::wait_child;
using Clock = std::chrono::steady_clock;

// Small queues: every POSIX queue of this user counts against
// RLIMIT_MSGQUEUE (819200 bytes by default), shared with tests running in
// parallel.
const PosixQueueAttributes kSmall{10, 512};

// Every test's queues must be gone when it ends: the fixture remembers the
// names handed out and checks them.
class PosixMessageQueueTest : public ::testing::Test {
 protected:
  std::string name(const std::string& tag = "q") {
    names_.push_back(unique_queue_name(tag));
    return names_.back();
  }
  void TearDown() override {
    for (const std::string& each : names_) {
      EXPECT_FALSE(posix_queue_exists(each)) << each << " was left behind";
      ::mq_unlink(each.c_str());
    }
  }

 private:
  std::vector<std::string> names_;
};

std::string create_error(const std::string& name, const PosixQueueAttributes& attributes,
                         int expected_code) {
  try {
    PosixMessageQueue::create(name, QueueAccess::send_and_receive, attributes);
  } catch (const SystemError& error) {
    EXPECT_EQ(error.code(), expected_code) << error.what();
    return error.what();
  }
  ADD_FAILURE() << "creating " << name << " succeeded";
  return "";
}

// ---- creation, names, ownership ---------------------------------------------------

TEST_F(PosixMessageQueueTest, CreateMakesAQueueWithTheAskedAttributes) {
  PosixMessageQueue queue = PosixMessageQueue::create(name(), QueueAccess::send_and_receive,
                                                      PosixQueueAttributes{5, 300});
  EXPECT_TRUE(queue.owns_name());
  EXPECT_EQ(queue.attributes().max_messages, 5);
  EXPECT_EQ(queue.attributes().message_size, 300);
  EXPECT_EQ(queue.pending(), 0);
}

TEST_F(PosixMessageQueueTest, CreateAppliesExactlyTheModeWhateverTheUmask) {
  mode_t saved = ::umask(077);
  PosixMessageQueue queue =
      PosixMessageQueue::create(name(), QueueAccess::send_and_receive, kSmall, 0644);
  ::umask(saved);
  struct stat st {};
  ASSERT_EQ(::fstat(queue.fd(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
}

TEST_F(PosixMessageQueueTest, CreateRefusesATakenNameAndSaysQueuesPersist) {
  std::string taken = name();
  PosixMessageQueue first = PosixMessageQueue::create(taken, QueueAccess::send_and_receive, kSmall);
  std::string message = create_error(taken, kSmall, EEXIST);
  EXPECT_CONTAINS(message, taken);
  EXPECT_CONTAINS(message, "persist until unlinked");
}

TEST_F(PosixMessageQueueTest, OwnerUnlinksTheNameOnDestruction) {
  std::string queue_name = name();
  {
    PosixMessageQueue queue =
        PosixMessageQueue::create(queue_name, QueueAccess::send_and_receive, kSmall);
    EXPECT_TRUE(posix_queue_exists(queue_name));
  }
  EXPECT_FALSE(posix_queue_exists(queue_name));
}

TEST_F(PosixMessageQueueTest, OpeningByNameDoesNotOwnTheName) {
  std::string queue_name = name();
  PosixMessageQueue owner =
      PosixMessageQueue::create(queue_name, QueueAccess::send_and_receive, kSmall);
  {
    PosixMessageQueue opened = PosixMessageQueue::open(queue_name);
    EXPECT_FALSE(opened.owns_name());
  }
  EXPECT_TRUE(posix_queue_exists(queue_name));
}

TEST_F(PosixMessageQueueTest, OpeningAMissingQueueThrowsENOENTNamingIt) {
  std::string missing = name();
  try {
    PosixMessageQueue::open(missing);
    FAIL() << "opened a queue that does not exist";
  } catch (const SystemError& error) {
    EXPECT_EQ(error.code(), ENOENT);
    EXPECT_CONTAINS(std::string(error.what()), missing);
    EXPECT_CONTAINS(std::string(error.what()), "no queue by this name");
  }
}

TEST_F(PosixMessageQueueTest, MovingTransfersOwnershipOfTheName) {
  std::string queue_name = name();
  PosixMessageQueue moved;
  {
    PosixMessageQueue original =
        PosixMessageQueue::create(queue_name, QueueAccess::send_and_receive, kSmall);
    moved = std::move(original);
  }
  EXPECT_TRUE(posix_queue_exists(queue_name));
  EXPECT_TRUE(moved.owns_name());
  moved = PosixMessageQueue();
  EXPECT_FALSE(posix_queue_exists(queue_name));
}

TEST_F(PosixMessageQueueTest, AForkedChildDoesNotUnlinkItsParentsQueue) {
  std::string queue_name = name();
  PosixMessageQueue queue =
      PosixMessageQueue::create(queue_name, QueueAccess::send_and_receive, kSmall);
  pid_t child = fork_child([&] {
    PosixMessageQueue inherited = std::move(queue);  // destroyed in the child
  });
  ASSERT_TRUE(exited_cleanly(wait_child(child)));
  EXPECT_TRUE(posix_queue_exists(queue_name));
}

TEST_F(PosixMessageQueueTest, OwnerLeavesANameThatNowNamesAnotherQueue) {
  std::string queue_name = name();
  PosixMessageQueue original =
      PosixMessageQueue::create(queue_name, QueueAccess::send_and_receive, kSmall);
  ASSERT_TRUE(PosixMessageQueue::unlink(queue_name));
  PosixMessageQueue replacement =
      PosixMessageQueue::create(queue_name, QueueAccess::send_and_receive, kSmall);
  original.remove();
  EXPECT_TRUE(posix_queue_exists(queue_name));
}

TEST_F(PosixMessageQueueTest, AdoptedDescriptorWorksAndOwnsNoName) {
  std::string queue_name = name();
  PosixMessageQueue queue =
      PosixMessageQueue::create(queue_name, QueueAccess::send_and_receive, kSmall);
  int copy = ::fcntl(queue.fd(), F_DUPFD_CLOEXEC, 3);
  ASSERT_GE(copy, 0);
  {
    PosixMessageQueue adopted = PosixMessageQueue::adopt(FileDescriptor(copy), queue_name);
    EXPECT_FALSE(adopted.owns_name());
    adopted.send(bytes_of("through the copy"));
  }
  Bytes buffer(512);
  EXPECT_EQ(text_of(std::span(buffer).first(queue.receive(buffer).size)), "through the copy");
  EXPECT_TRUE(posix_queue_exists(queue_name));
}

TEST(PosixMessageQueueNames, MalformedNamesAreRefusedWithTheRule) {
  for (const std::string& bad : std::vector<std::string>{"no-slash", "/two/slashes", "/", "/.",
                                                         "/..", "/" + std::string(256, 'n'), ""}) {
    try {
      PosixMessageQueue::create(bad, QueueAccess::send_and_receive, kSmall);
      ADD_FAILURE() << "created '" << bad << "'";
    } catch (const SystemError& error) {
      EXPECT_EQ(error.code(), EINVAL) << bad;
      EXPECT_CONTAINS(std::string(error.what()), "a POSIX queue name is one leading '/'");
    }
    EXPECT_FALSE(posix_queue_name_problem(bad).empty()) << bad;
  }
  EXPECT_CONTAINS(posix_queue_name_problem("/a/b"), "'/' after the first character");
  EXPECT_CONTAINS(posix_queue_name_problem("/" + std::string(256, 'n')), "256 characters long");
}

TEST(PosixMessageQueueNames, NameOf255CharactersIsAccepted) {
  std::string prefix = unique_queue_name("long");
  std::string longest = prefix + std::string(256 - prefix.size(), 'x');
  ASSERT_EQ(longest.size(), 256u);
  EXPECT_EQ(posix_queue_name_problem(longest), "");
  {
    PosixMessageQueue queue =
        PosixMessageQueue::create(longest, QueueAccess::send_and_receive, kSmall);
    EXPECT_TRUE(posix_queue_exists(longest));
  }
  EXPECT_FALSE(posix_queue_exists(longest));
}

// ---- persistence --------------------------------------------------------------------------

TEST_F(PosixMessageQueueTest, MessagesOutliveTheProcessThatWroteThemWhenPersisted) {
  std::string queue_name = name();
  pid_t writer = fork_child([&] {
    PosixMessageQueue queue = PosixMessageQueue::create(queue_name, QueueAccess::send_only, kSmall);
    for (int i = 0; i < 3; ++i) queue.send(make_message(i, 100 + i));
    queue.persist();
  });  // the writer's destructors run and it exits
  ASSERT_TRUE(exited_cleanly(wait_child(writer)));

  ASSERT_TRUE(posix_queue_exists(queue_name));
  PosixMessageQueue reader = PosixMessageQueue::open(queue_name, QueueAccess::receive_only);
  EXPECT_EQ(reader.pending(), 3);
  Bytes buffer(512);
  for (int i = 0; i < 3; ++i) {
    std::size_t size = reader.receive(buffer).size;
    EXPECT_EQ(Bytes(buffer.begin(), buffer.begin() + size), make_message(i, 100 + i));
  }
  EXPECT_TRUE(PosixMessageQueue::unlink(queue_name));
  EXPECT_FALSE(PosixMessageQueue::unlink(queue_name));
}

TEST_F(PosixMessageQueueTest, WithoutPersistTheWritersQueueGoesWithIt) {
  std::string queue_name = name();
  pid_t writer = fork_child([&] {
    PosixMessageQueue queue = PosixMessageQueue::create(queue_name, QueueAccess::send_only, kSmall);
    queue.send(bytes_of("lost"));
  });
  ASSERT_TRUE(exited_cleanly(wait_child(writer)));
  EXPECT_FALSE(posix_queue_exists(queue_name));
}

TEST_F(PosixMessageQueueTest, UnlinkedQueueStaysUsableByThoseWhoHaveItOpen) {
  std::string queue_name = name();
  PosixMessageQueue queue =
      PosixMessageQueue::create(queue_name, QueueAccess::send_and_receive, kSmall);
  ASSERT_TRUE(PosixMessageQueue::unlink(queue_name));
  EXPECT_FALSE(posix_queue_exists(queue_name));
  queue.send(bytes_of("still here"));
  Bytes buffer(512);
  EXPECT_EQ(text_of(std::span(buffer).first(queue.receive(buffer).size)), "still here");
}

// ---- messages, sizes, priorities ----------------------------------------------------------

TEST_F(PosixMessageQueueTest, MessagesOfEverySizeUpToTheMessageSizeRoundTrip) {
  PosixMessageQueue queue = PosixMessageQueue::create(name(), QueueAccess::send_and_receive,
                                                      PosixQueueAttributes{10, 512});
  Bytes buffer(512);
  for (std::size_t size = 0; size <= 512; ++size) {
    queue.send(make_message(size, size));
    PosixQueueMessage got = queue.receive(buffer);
    ASSERT_EQ(got.size, size);
    ASSERT_EQ(Bytes(buffer.begin(), buffer.begin() + size), make_message(size, size));
  }
}

TEST_F(PosixMessageQueueTest, MessageAboveTheMessageSizeThrowsMessageTooLargeAndQueuesNothing) {
  PosixMessageQueue queue = PosixMessageQueue::create(name(), QueueAccess::send_and_receive,
                                                      PosixQueueAttributes{10, 512});
  try {
    queue.send(Bytes(513));
    FAIL() << "sent 513 bytes into a queue of 512-byte messages";
  } catch (const MessageTooLarge& error) {
    EXPECT_CONTAINS(std::string(error.what()), "513 bytes exceeds the queue's message size of 512");
  }
  EXPECT_EQ(queue.pending(), 0);
}

TEST_F(PosixMessageQueueTest, ReceiveBufferBelowTheMessageSizeIsRefusedAndTheMessageStays) {
  PosixMessageQueue queue = PosixMessageQueue::create(name(), QueueAccess::send_and_receive,
                                                      PosixQueueAttributes{10, 512});
  queue.send(bytes_of("tiny"));
  Bytes small(100);
  try {
    queue.receive(small);
    FAIL() << "received into a buffer smaller than mq_msgsize";
  } catch (const SystemError& error) {
    EXPECT_EQ(error.code(), EMSGSIZE);
    EXPECT_CONTAINS(std::string(error.what()),
                    "receive buffer of 100 bytes is smaller than the queue's message size of 512");
    EXPECT_CONTAINS(std::string(error.what()), "stays queued");
  }
  EXPECT_EQ(queue.pending(), 1);
  Bytes buffer(512);
  EXPECT_EQ(text_of(std::span(buffer).first(queue.receive(buffer).size)), "tiny");
}

TEST_F(PosixMessageQueueTest, HigherPrioritiesComeFirstAndEachPriorityInSendOrder) {
  PosixMessageQueue queue =
      PosixMessageQueue::create(name(), QueueAccess::send_and_receive, kSmall);
  queue.send(bytes_of("low-1"), 1);
  queue.send(bytes_of("high-1"), 31);
  queue.send(bytes_of("zero"), 0);
  queue.send(bytes_of("low-2"), 1);
  queue.send(bytes_of("high-2"), 31);
  queue.send(bytes_of("top"), kPosixQueuePriorities - 1);
  Bytes buffer(512);
  std::vector<std::pair<std::string, unsigned>> order;
  while (auto got = queue.try_receive(buffer))
    order.emplace_back(text_of(std::span(buffer).first(got->size)), got->priority);
  std::vector<std::pair<std::string, unsigned>> expected = {{"top", kPosixQueuePriorities - 1},
                                                            {"high-1", 31},
                                                            {"high-2", 31},
                                                            {"low-1", 1},
                                                            {"low-2", 1},
                                                            {"zero", 0}};
  EXPECT_EQ(order, expected);
}

TEST_F(PosixMessageQueueTest, PriorityOutOfRangeIsRefused) {
  PosixMessageQueue queue =
      PosixMessageQueue::create(name(), QueueAccess::send_and_receive, kSmall);
  try {
    queue.send(bytes_of("x"), kPosixQueuePriorities);
    FAIL() << "sent with priority " << kPosixQueuePriorities;
  } catch (const Error& error) {
    EXPECT_CONTAINS(std::string(error.what()), "priorities run from 0 to 32767");
  }
}

TEST_F(PosixMessageQueueTest, SendOnAQueueOpenedForReceivingOnlyFailsWithEBADF) {
  std::string queue_name = name();
  PosixMessageQueue owner =
      PosixMessageQueue::create(queue_name, QueueAccess::send_and_receive, kSmall);
  PosixMessageQueue reader = PosixMessageQueue::open(queue_name, QueueAccess::receive_only);
  try {
    reader.send(bytes_of("x"));
    FAIL() << "sent on a receive-only descriptor";
  } catch (const SystemError& error) {
    EXPECT_EQ(error.code(), EBADF);
    EXPECT_CONTAINS(std::string(error.what()), "not opened for sending");
  }
}

// ---- non-blocking, timed, blocking ----------------------------------------------------------

TEST_F(PosixMessageQueueTest, TryReceiveOnAnEmptyQueueReturnsNothingAtOnce) {
  PosixMessageQueue queue =
      PosixMessageQueue::create(name(), QueueAccess::send_and_receive, kSmall);
  Bytes buffer(512);
  auto started = Clock::now();
  EXPECT_FALSE(queue.try_receive(buffer));
  EXPECT_LT(Clock::now() - started, 1s);
}

TEST_F(PosixMessageQueueTest, TrySendOnAFullQueueReturnsFalseAndKeepsTheQueuedOnes) {
  PosixMessageQueue queue =
      PosixMessageQueue::create(name(), QueueAccess::send_and_receive, PosixQueueAttributes{3, 64});
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(queue.try_send(make_message(i, 10)));
  EXPECT_FALSE(queue.try_send(make_message(3, 10)));
  EXPECT_EQ(queue.pending(), 3);
}

TEST_F(PosixMessageQueueTest, ReceiveForTimesOutAfterAboutTheTimeout) {
  PosixMessageQueue queue =
      PosixMessageQueue::create(name(), QueueAccess::send_and_receive, kSmall);
  Bytes buffer(512);
  auto started = Clock::now();
  EXPECT_FALSE(queue.receive_for(buffer, 150ms));
  auto waited = Clock::now() - started;
  EXPECT_GE(waited, 140ms);
  EXPECT_LT(waited, 5s);
}

TEST_F(PosixMessageQueueTest, SendForTimesOutWhileTheQueueStaysFull) {
  PosixMessageQueue queue =
      PosixMessageQueue::create(name(), QueueAccess::send_and_receive, PosixQueueAttributes{1, 64});
  ASSERT_TRUE(queue.try_send(bytes_of("fills it")));
  auto started = Clock::now();
  EXPECT_FALSE(queue.send_for(bytes_of("no room"), 0, 150ms));
  auto waited = Clock::now() - started;
  EXPECT_GE(waited, 140ms);
  EXPECT_LT(waited, 5s);
}

TEST_F(PosixMessageQueueTest, ReceiveForReturnsAMessageSentDuringTheWait) {
  PosixMessageQueue queue =
      PosixMessageQueue::create(name(), QueueAccess::send_and_receive, kSmall);
  std::thread sender([&] {
    std::this_thread::sleep_for(50ms);
    PosixMessageQueue::open(queue.name()).send(bytes_of("late"));
  });
  Bytes buffer(512);
  auto got = queue.receive_for(buffer, 10s);
  sender.join();
  ASSERT_TRUE(got);
  EXPECT_EQ(text_of(std::span(buffer).first(got->size)), "late");
}

TEST_F(PosixMessageQueueTest, SendForSucceedsWhenRoomAppearsDuringTheWait) {
  PosixMessageQueue queue =
      PosixMessageQueue::create(name(), QueueAccess::send_and_receive, PosixQueueAttributes{1, 64});
  ASSERT_TRUE(queue.try_send(bytes_of("first")));
  std::thread reader([&] {
    std::this_thread::sleep_for(50ms);
    Bytes buffer(64);
    PosixMessageQueue::open(queue.name()).receive(buffer);
  });
  EXPECT_TRUE(queue.send_for(bytes_of("second"), 0, 10s));
  reader.join();
  Bytes buffer(64);
  EXPECT_EQ(text_of(std::span(buffer).first(queue.receive(buffer).size)), "second");
}

TEST_F(PosixMessageQueueTest, DescriptorIsPollableForMessagesAndRoom) {
  PosixMessageQueue queue =
      PosixMessageQueue::create(name(), QueueAccess::send_and_receive, PosixQueueAttributes{1, 64});
  pollfd ready{queue.fd(), POLLIN | POLLOUT, 0};
  ASSERT_EQ(::poll(&ready, 1, 0), 1);
  EXPECT_EQ(ready.revents, POLLOUT);
  queue.send(bytes_of("x"));
  ready.revents = 0;
  ASSERT_EQ(::poll(&ready, 1, 0), 1);
  EXPECT_EQ(ready.revents, POLLIN);
}

// Blocking calls interrupted by a signal whose handler does not ask for
// restarts (no SA_RESTART) see EINTR; the queue retries them.
std::atomic<int> interruptions{0};  // signals handled
void count_posix_interruption(int) {
  ++interruptions;
}

class PosixMessageQueueSignalTest : public PosixMessageQueueTest {
 protected:
  void SetUp() override {
    struct sigaction action {};
    action.sa_handler = count_posix_interruption;
    sigemptyset(&action.sa_mask);
    ::sigaction(SIGUSR1, &action, &saved_);
    interruptions = 0;
  }
  void TearDown() override {
    ::sigaction(SIGUSR1, &saved_, nullptr);
    PosixMessageQueueTest::TearDown();
  }
  // Signals `thread` every few milliseconds for about 100 ms.
  static void interrupt(std::thread& thread) {
    for (int i = 0; i < 20; ++i) {
      ::pthread_kill(thread.native_handle(), SIGUSR1);
      std::this_thread::sleep_for(5ms);
    }
  }

 private:
  struct sigaction saved_ {};
};

TEST_F(PosixMessageQueueSignalTest, BlockingReceiveSurvivesSignals) {
  PosixMessageQueue queue =
      PosixMessageQueue::create(name(), QueueAccess::send_and_receive, kSmall);
  std::promise<std::string> result;
  std::thread receiver([&] {
    try {
      Bytes buffer(512);
      result.set_value(text_of(std::span(buffer).first(queue.receive(buffer).size)));
    } catch (...) {
      result.set_exception(std::current_exception());
    }
  });
  interrupt(receiver);
  queue.send(bytes_of("after the signals"));
  auto future = result.get_future();
  ASSERT_EQ(future.wait_for(10s), std::future_status::ready);
  receiver.join();
  EXPECT_EQ(future.get(), "after the signals");
  EXPECT_GT(interruptions.load(), 0);
}

TEST_F(PosixMessageQueueSignalTest, BlockingSendOnAFullQueueSurvivesSignals) {
  PosixMessageQueue queue =
      PosixMessageQueue::create(name(), QueueAccess::send_and_receive, PosixQueueAttributes{1, 64});
  queue.send(bytes_of("fills it"));
  std::promise<void> sent;
  std::thread sender([&] {
    try {
      queue.send(bytes_of("waits for room"));
      sent.set_value();
    } catch (...) {
      sent.set_exception(std::current_exception());
    }
  });
  interrupt(sender);
  Bytes buffer(64);
  queue.receive(buffer);
  auto future = sent.get_future();
  ASSERT_EQ(future.wait_for(10s), std::future_status::ready);
  sender.join();
  future.get();
  EXPECT_EQ(text_of(std::span(buffer).first(queue.receive(buffer).size)), "waits for room");
}

// ---- real processes on both ends ------------------------------------------------------

TEST_F(PosixMessageQueueTest, ChildSendsMessagesOfEverySizeToTheParent) {
  std::string queue_name = name();
  PosixMessageQueue queue = PosixMessageQueue::create(queue_name, QueueAccess::receive_only,
                                                      PosixQueueAttributes{10, 1024});
  pid_t child = fork_child([&] {
    PosixMessageQueue writer = PosixMessageQueue::open(queue_name, QueueAccess::send_only);
    for (std::size_t size = 0; size <= 1024; size += 31) writer.send(make_message(size, size));
    writer.send(make_message(1024, 1024));
  });
  Bytes buffer(1024);
  for (std::size_t size = 0; size <= 1024; size += 31) {
    auto got = queue.receive_for(buffer, 10s);
    ASSERT_TRUE(got) << "size " << size;
    ASSERT_EQ(Bytes(buffer.begin(), buffer.begin() + got->size), make_message(size, size));
  }
  auto last = queue.receive_for(buffer, 10s);
  ASSERT_TRUE(last);
  EXPECT_EQ(Bytes(buffer.begin(), buffer.begin() + last->size), make_message(1024, 1024));
  EXPECT_TRUE(exited_cleanly(wait_child(child)));
}

TEST_F(PosixMessageQueueTest, ParentSendsAndAChildReceivesAndAnswers) {
  std::string requests = name("requests");
  std::string replies = name("replies");
  PosixMessageQueue to_child = PosixMessageQueue::create(requests, QueueAccess::send_only, kSmall);
  PosixMessageQueue from_child =
      PosixMessageQueue::create(replies, QueueAccess::receive_only, kSmall);
  pid_t child = fork_child([&] {
    PosixMessageQueue in = PosixMessageQueue::open(requests, QueueAccess::receive_only);
    PosixMessageQueue out = PosixMessageQueue::open(replies, QueueAccess::send_only);
    Bytes buffer(512);
    for (int i = 0; i < 100; ++i) {
      auto got = in.receive_for(buffer, 10s);
      ASSERT_TRUE(got);
      Bytes answer(buffer.begin(), buffer.begin() + got->size);
      std::reverse(answer.begin(), answer.end());
      out.send(answer, got->priority);
    }
  });
  Bytes buffer(512);
  for (int i = 0; i < 100; ++i) {
    Bytes message = make_message(i, i * 5);
    to_child.send(message, i % 7);
    auto got = from_child.receive_for(buffer, 10s);
    ASSERT_TRUE(got) << i;
    std::reverse(message.begin(), message.end());
    ASSERT_EQ(Bytes(buffer.begin(), buffer.begin() + got->size), message);
    EXPECT_EQ(got->priority, static_cast<unsigned>(i % 7));
  }
  EXPECT_TRUE(exited_cleanly(wait_child(child)));
}

TEST_F(PosixMessageQueueTest, ThousandsOfMessagesPassATenMessageQueueInOrder) {
  std::string queue_name = name();
  PosixMessageQueue queue = PosixMessageQueue::create(queue_name, QueueAccess::receive_only,
                                                      PosixQueueAttributes{10, 256});
  constexpr int kCount = 5000;
  pid_t child = fork_child([&] {
    PosixMessageQueue writer = PosixMessageQueue::open(queue_name, QueueAccess::send_only);
    for (int i = 0; i < kCount; ++i) writer.send(make_message(i, (i * 37) % 257));
  });
  Bytes buffer(256);
  for (int i = 0; i < kCount; ++i) {
    auto got = queue.receive_for(buffer, 10s);
    ASSERT_TRUE(got) << "message " << i << " did not arrive";
    ASSERT_EQ(Bytes(buffer.begin(), buffer.begin() + got->size), make_message(i, (i * 37) % 257))
        << "message " << i;
  }
  EXPECT_TRUE(exited_cleanly(wait_child(child)));
}

// ---- limits -----------------------------------------------------------------------------

TEST_F(PosixMessageQueueTest, MoreMessagesThanMsgMaxIsRefusedNamingTheLimitAndTheSysctl) {
  PosixQueueLimits limits = PosixQueueLimits::current();
  ASSERT_GT(limits.msg_max, 0);
  PosixQueueAttributes attributes{limits.msg_max + 1, 64};  // 11 on a default machine
  std::string queue_name = name();
  std::string message;
  try {
    PosixMessageQueue queue =
        PosixMessageQueue::create(queue_name, QueueAccess::send_and_receive, attributes);
    GTEST_SKIP() << "this process may exceed fs.mqueue.msg_max (CAP_SYS_RESOURCE)";
  } catch (const SystemError& error) {
    EXPECT_EQ(error.code(), EINVAL);
    message = error.what();
  }
  EXPECT_CONTAINS(message, "asked for " + std::to_string(limits.msg_max + 1) + " messages");
  EXPECT_CONTAINS(message, "fs.mqueue.msg_max = " + std::to_string(limits.msg_max));
  EXPECT_CONTAINS(message, "/proc/sys/fs/mqueue/msg_max");
  EXPECT_CONTAINS(message, "sysctl -w fs.mqueue.msg_max=" + std::to_string(limits.msg_max + 1));
  EXPECT_CONTAINS(message, "unshare --ipc");
}

TEST_F(PosixMessageQueueTest, LargerMessagesThanMsgsizeMaxAreRefusedNamingTheLimitAndTheSysctl) {
  PosixQueueLimits limits = PosixQueueLimits::current();
  ASSERT_GT(limits.msgsize_max, 0);
  PosixQueueAttributes attributes{2, limits.msgsize_max + 1};  // 8193 on a default machine
  std::string message;
  try {
    PosixMessageQueue queue =
        PosixMessageQueue::create(name(), QueueAccess::send_and_receive, attributes);
    GTEST_SKIP() << "this process may exceed fs.mqueue.msgsize_max (CAP_SYS_RESOURCE)";
  } catch (const SystemError& error) {
    EXPECT_EQ(error.code(), EINVAL);
    message = error.what();
  }
  EXPECT_CONTAINS(message, "messages of " + std::to_string(limits.msgsize_max + 1) + " bytes");
  EXPECT_CONTAINS(message, "fs.mqueue.msgsize_max = " + std::to_string(limits.msgsize_max));
  EXPECT_CONTAINS(message, "sysctl -w fs.mqueue.msgsize_max=");
}

TEST(PosixMessageQueueLimits, ZeroMessagesOrZeroBytesAreRefused) {
  std::string message = create_error(unique_queue_name(), PosixQueueAttributes{0, 64}, EINVAL);
  EXPECT_CONTAINS(message, "both must be at least 1");
}

TEST(PosixMessageQueueLimits, ExceedingRlimitMsgqueueNamesTheLimitAndUlimit) {
  std::string queue_name = unique_queue_name();
  pid_t child = fork_child([&] {
    rlimit small{4096, 4096};  // lowering a limit needs no privilege
    ASSERT_EQ(::setrlimit(RLIMIT_MSGQUEUE, &small), 0);
    std::string message = create_error(queue_name, PosixQueueAttributes{10, 1024}, EMFILE);
    EXPECT_CONTAINS(message, "RLIMIT_MSGQUEUE = 4096 bytes");
    EXPECT_CONTAINS(message, "ulimit -q");
    EXPECT_CONTAINS(message, "10 messages of 1024 bytes");
  });
  int status = wait_child(child);
  EXPECT_TRUE(exited_cleanly(status)) << describe(status);
  EXPECT_FALSE(posix_queue_exists(queue_name));
}

TEST(PosixMessageQueueLimits, ReportsTheCurrentLimits) {
  PosixQueueLimits limits = PosixQueueLimits::current();
  EXPECT_GE(limits.msg_max, 1);
  EXPECT_GE(limits.msgsize_max, 128);
  EXPECT_GE(limits.queues_max, 0);
  EXPECT_NE(limits.rlimit_bytes, -1);
}

// The machine's limits stay as they are: each of these tests raises them in
// an IPC namespace of its own, as `unshare --ipc` does.
TEST(PosixMessageQueueOwnNamespace, RaisedLimitsAllowDeepQueuesAndBigMessagesAcrossProcesses) {
  long host_msg_max = PosixQueueLimits::current().msg_max;
  int status = run_in_own_ipc_namespace(
      {{"fs/mqueue/msg_max", "64"}, {"fs/mqueue/msgsize_max", "131072"}}, [] {
        PosixQueueLimits limits = PosixQueueLimits::current();
        ASSERT_EQ(limits.msg_max, 64);
        ASSERT_EQ(limits.msgsize_max, 131072);
        // 64 messages deep (more than the default 10).
        PosixMessageQueue deep = PosixMessageQueue::create(
            "/conduit-test-deep", QueueAccess::send_and_receive, PosixQueueAttributes{64, 128});
        for (int i = 0; i < 64; ++i) ASSERT_TRUE(deep.try_send(make_message(i, 100)));
        EXPECT_FALSE(deep.try_send(make_message(64, 100)));
        // 128 KiB messages (more than the default 8192 bytes), written by
        // another process.
        PosixMessageQueue big = PosixMessageQueue::create(
            "/conduit-test-big", QueueAccess::receive_only, PosixQueueAttributes{2, 131072});
        pid_t writer = fork_child([] {
          PosixMessageQueue out =
              PosixMessageQueue::open("/conduit-test-big", QueueAccess::send_only);
          for (int i = 0; i < 4; ++i) out.send(make_message(i, 131072 - i));
        });
        Bytes buffer(131072);
        for (int i = 0; i < 4; ++i) {
          auto got = big.receive_for(buffer, 10s);
          ASSERT_TRUE(got);
          ASSERT_EQ(Bytes(buffer.begin(), buffer.begin() + got->size), make_message(i, 131072 - i));
        }
        EXPECT_TRUE(exited_cleanly(wait_child(writer)));
      });
  if (skipped_for_lack_of_namespace(status)) GTEST_SKIP() << "no IPC namespace of our own here";
  EXPECT_TRUE(exited_cleanly(status)) << describe(status);
  EXPECT_EQ(PosixQueueLimits::current().msg_max, host_msg_max);
}

TEST(PosixMessageQueueOwnNamespace, QueuesMaxErrorNamesTheLimit) {
  int status = run_in_own_ipc_namespace({{"fs/mqueue/queues_max", "2"}}, [] {
    PosixMessageQueue one =
        PosixMessageQueue::create("/conduit-test-1", QueueAccess::send_and_receive, kSmall);
    PosixMessageQueue two =
        PosixMessageQueue::create("/conduit-test-2", QueueAccess::send_and_receive, kSmall);
    std::string message = create_error("/conduit-test-3", kSmall, ENOSPC);
    EXPECT_CONTAINS(message, "fs.mqueue.queues_max = 2");
    EXPECT_CONTAINS(message, "sysctl -w fs.mqueue.queues_max=");
  });
  if (skipped_for_lack_of_namespace(status)) GTEST_SKIP() << "no IPC namespace of our own here";
  EXPECT_TRUE(exited_cleanly(status)) << describe(status);
}

// ---- permissions ------------------------------------------------------------------------

TEST_F(PosixMessageQueueTest, ModeDecidesWhoMayOpenTheQueue) {
  std::string locked = name("locked");
  std::string writable = name("writable");
  PosixMessageQueue owner_only =
      PosixMessageQueue::create(locked, QueueAccess::send_and_receive, kSmall, 0600);
  PosixMessageQueue others_write =
      PosixMessageQueue::create(writable, QueueAccess::send_and_receive, kSmall, 0602);
  pid_t child = fork_child([&] {
    // root passes every permission check: be nobody.
    ASSERT_TRUE(conduit::testing::become_nobody());
    try {
      PosixMessageQueue::open(locked, QueueAccess::send_only);
      ADD_FAILURE() << "nobody opened a 0600 queue of root's";
    } catch (const SystemError& error) {
      EXPECT_EQ(error.code(), EACCES);
      EXPECT_CONTAINS(std::string(error.what()), "do not grant this user sending");
    }
    PosixMessageQueue::open(writable, QueueAccess::send_only).send(bytes_of("from nobody"));
    try {
      PosixMessageQueue::open(writable, QueueAccess::receive_only);
      ADD_FAILURE() << "nobody opened a 0602 queue for receiving";
    } catch (const SystemError& error) {
      EXPECT_EQ(error.code(), EACCES);
    }
  });
  int status = wait_child(child);
  EXPECT_TRUE(exited_cleanly(status)) << describe(status);
  Bytes buffer(512);
  auto got = others_write.try_receive(buffer);
  ASSERT_TRUE(got);
  EXPECT_EQ(text_of(std::span(buffer).first(got->size)), "from nobody");
}

}  // namespace
}  // namespace conduit::ipc
