// conduit's Channel against the raw system calls of the same mechanism, in
// the same run: a 64-byte ping-pong between two processes, p50 of the round
// trip, first with a minimal loop of bare system calls, then through Channel
// (framing, checks, timeouts) over the same kind of kernel object.
//
//   build/bench/ipc_overhead_bench [--rounds N]
#include <fcntl.h>
#include <mqueue.h>
#include <sys/msg.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "conduit/ipc/channel.hpp"
#include "conduit/ipc/tcp_socket.hpp"

namespace {

using conduit::ipc::Channel;
using conduit::ipc::ChannelListener;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

int rounds = 20000;
constexpr std::size_t kSize = 64;

// Times `rounds` calls of round_trip and returns the median in microseconds.
double p50_us(const std::function<void()>& round_trip) {
  for (int i = 0; i < rounds / 10; ++i) round_trip();  // warm-up
  std::vector<double> samples;
  samples.reserve(rounds);
  for (int i = 0; i < rounds; ++i) {
    auto start = Clock::now();
    round_trip();
    samples.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
  }
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

int total_rounds() {
  return rounds + rounds / 10;
}

void reap(pid_t child) {
  int status;
  waitpid(child, &status, 0);
}

void read_exactly(int fd, char* buffer, std::size_t size) {
  while (size > 0) {
    ssize_t n = read(fd, buffer, size);
    if (n <= 0) _exit(1);
    buffer += n;
    size -= static_cast<std::size_t>(n);
  }
}

// Raw echo over a pair of descriptors (pipes, FIFOs, stream sockets).
double raw_stream(int to_peer_write, int from_peer_read, int peer_read, int peer_write,
                  const std::function<void()>& close_in_parent) {
  pid_t child = fork();
  if (child == 0) {
    char buffer[kSize];
    for (int i = 0; i < total_rounds(); ++i) {
      read_exactly(peer_read, buffer, kSize);
      (void)!write(peer_write, buffer, kSize);
    }
    _exit(0);
  }
  close_in_parent();
  char message[kSize] = {1};
  double result = p50_us([&] {
    (void)!write(to_peer_write, message, kSize);
    read_exactly(from_peer_read, message, kSize);
  });
  reap(child);
  return result;
}

double raw_pipe() {
  int there[2], back[2];
  (void)!pipe(there);
  (void)!pipe(back);
  double result = raw_stream(there[1], back[0], there[0], back[1], [&] {
    close(there[0]);
    close(back[1]);
  });
  close(there[1]);
  close(back[0]);
  return result;
}

double raw_socketpair(int type) {
  int pair[2];
  socketpair(AF_UNIX, type, 0, pair);
  double result = raw_stream(pair[0], pair[0], pair[1], pair[1], [&] { close(pair[1]); });
  close(pair[0]);
  return result;
}

double raw_fifo() {
  char dir[] = "/tmp/conduit-bench-XXXXXX";
  mkdtemp(dir);
  std::string there = std::string(dir) + "/there", back = std::string(dir) + "/back";
  mkfifo(there.c_str(), 0600);
  mkfifo(back.c_str(), 0600);
  int there_w = open(there.c_str(), O_RDWR), back_r = open(back.c_str(), O_RDWR);
  int peer_r = open(there.c_str(), O_RDONLY), peer_w = open(back.c_str(), O_WRONLY);
  double result = raw_stream(there_w, back_r, peer_r, peer_w, [&] {
    close(peer_r);
    close(peer_w);
  });
  for (int fd : {there_w, back_r}) close(fd);
  unlink(there.c_str());
  unlink(back.c_str());
  rmdir(dir);
  return result;
}

double raw_tcp() {
  auto listener = conduit::ipc::TcpListener::bind("127.0.0.1", 0);
  auto client = conduit::ipc::TcpSocket::connect("127.0.0.1", listener.port());
  auto server = listener.accept();
  return raw_stream(client.fd(), client.fd(), server.fd(), server.fd(), [] {});
}

double raw_posix_mq() {
  std::string there = "/conduit-bench-there-" + std::to_string(getpid());
  std::string back = "/conduit-bench-back-" + std::to_string(getpid());
  mq_attr attributes{};
  attributes.mq_maxmsg = 10;
  attributes.mq_msgsize = kSize;
  mqd_t there_q = mq_open(there.c_str(), O_RDWR | O_CREAT, 0600, &attributes);
  mqd_t back_q = mq_open(back.c_str(), O_RDWR | O_CREAT, 0600, &attributes);
  pid_t child = fork();
  if (child == 0) {
    char buffer[kSize];
    for (int i = 0; i < total_rounds(); ++i) {
      mq_receive(there_q, buffer, kSize, nullptr);
      mq_send(back_q, buffer, kSize, 0);
    }
    _exit(0);
  }
  char message[kSize] = {1};
  double result = p50_us([&] {
    mq_send(there_q, message, kSize, 0);
    mq_receive(back_q, message, kSize, nullptr);
  });
  reap(child);
  mq_close(there_q);
  mq_close(back_q);
  mq_unlink(there.c_str());
  mq_unlink(back.c_str());
  return result;
}

double raw_sysv_mq() {
  int queue = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
  struct Message {
    long type;
    char text[kSize];
  };
  pid_t child = fork();
  if (child == 0) {
    Message message;
    for (int i = 0; i < total_rounds(); ++i) {
      msgrcv(queue, &message, kSize, 1, 0);
      message.type = 2;
      msgsnd(queue, &message, kSize, 0);
    }
    _exit(0);
  }
  Message message{1, {1}};
  double result = p50_us([&] {
    message.type = 1;
    msgsnd(queue, &message, kSize, 0);
    msgrcv(queue, &message, kSize, 2, 0);
  });
  reap(child);
  msgctl(queue, IPC_RMID, nullptr);
  return result;
}

// The same ping-pong through Channel: an echo server process on `uri`.
double conduit_channel(const std::string& uri) {
  ChannelListener listener = ChannelListener::listen(uri);
  std::string target = listener.uri();
  pid_t child = fork();
  if (child == 0) {
    auto channel = listener.accept();
    while (auto received = channel->receive()) channel->send(received.message);
    _exit(0);
  }
  std::optional<Channel> channel = Channel::connect(target);
  std::vector<std::byte> message(kSize, std::byte{1});
  double result = p50_us([&] {
    channel->send(message);
    channel->receive();
  });
  channel.reset();
  if (listener.peer_model() != conduit::ipc::PeerModel::single || uri.rfind("pipe", 0) == 0)
    reap(child);
  else
    kill(child, SIGTERM), reap(child);
  return result;
}

double conduit_pipe() {
  int there[2], back[2];
  (void)!pipe2(there, O_CLOEXEC);
  (void)!pipe2(back, O_CLOEXEC);
  pid_t child = fork();
  if (child == 0) {
    close(there[1]);
    close(back[0]);
    Channel channel =
        Channel::connect("pipe:" + std::to_string(there[0]) + "," + std::to_string(back[1]));
    while (auto received = channel.receive()) channel.send(received.message);
    _exit(0);
  }
  close(there[0]);
  close(back[1]);
  std::optional<Channel> channel =
      Channel::connect("pipe:" + std::to_string(back[0]) + "," + std::to_string(there[1]));
  std::vector<std::byte> message(kSize, std::byte{1});
  double result = p50_us([&] {
    channel->send(message);
    channel->receive();
  });
  channel.reset();
  reap(child);
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::string(argv[i]) == "--rounds") rounds = std::stoi(argv[i + 1]);
  char dir[] = "/tmp/conduit-bench-XXXXXX";
  mkdtemp(dir);
  std::string d = dir;
  std::string tag = std::to_string(getpid());
  struct Row {
    const char* name;
    std::function<double()> raw;
    std::function<double()> channel;
  };
  std::vector<Row> rows = {
      {"pipe", raw_pipe, conduit_pipe},
      {"FIFO", raw_fifo, [&] { return conduit_channel("fifo:" + d + "/fifo"); }},
      {"UNIX stream", [] { return raw_socketpair(SOCK_STREAM); },
       [&] { return conduit_channel("unix:" + d + "/stream.sock"); }},
      {"UNIX seqpacket", [] { return raw_socketpair(SOCK_SEQPACKET); },
       [&] { return conduit_channel("unix+seqpacket:" + d + "/seqpacket.sock"); }},
      {"UNIX datagram", [] { return raw_socketpair(SOCK_DGRAM); },
       [&] { return conduit_channel("unix+dgram:" + d + "/dgram.sock"); }},
      {"TCP loopback", raw_tcp, [] { return conduit_channel("tcp://127.0.0.1:0"); }},
      {"POSIX mq", raw_posix_mq, [&] { return conduit_channel("mq:/conduit-bench-" + tag); }},
      {"System V mq", raw_sysv_mq, [&] { return conduit_channel("sysvmq:" + d); }},
  };
  std::printf("64-byte round trip, p50 over %d rounds, raw system calls vs Channel\n\n", rounds);
  std::printf("%-16s %10s %10s %8s\n", "mechanism", "raw us", "conduit us", "ratio");
  for (const Row& row : rows) {
    double raw = row.raw();
    double channel = row.channel();
    std::printf("%-16s %10.2f %10.2f %8.2f\n", row.name, raw, channel, channel / raw);
    std::fflush(stdout);
  }
  rmdir(dir);
  return 0;
}
