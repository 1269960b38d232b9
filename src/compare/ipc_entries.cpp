// The IPC rows of the comparison: each mechanism through conduit's Channel
// (or ShmRing's loan path) and through a minimal loop of its system calls.
#include <fmt/core.h>
#include <sys/socket.h>

#include <atomic>
#include <fstream>

#include "compare/registry.hpp"
#include "conduit/error.hpp"

namespace conduit::compare {

namespace {

using LinkMaker = std::function<std::unique_ptr<Link>(Side, std::size_t, const RunContext&)>;

// A name no other link of this run uses.
std::string unique(const RunContext& context, const char* what) {
  static std::atomic<int> counter{0};
  return fmt::format("{}-{}-{}", context.scratch.name_prefix, what, counter++);
}

std::string in_directory(const RunContext& context, const char* what) {
  static std::atomic<int> counter{0};
  return fmt::format("{}/{}-{}", context.scratch.directory, what, counter++);
}

// A new empty file, for ftok(): System V keys come from existing paths.
std::string new_file(const RunContext& context, const char* what) {
  std::string path = in_directory(context, what);
  std::ofstream touch(path);
  if (!touch) throw Error("could not create " + path + " for a System V key");
  return path;
}

Entry ipc_entry(std::string key, std::string name, std::string raw_name, LinkMaker make) {
  Entry entry;
  entry.family = "IPC";
  entry.key = std::move(key);
  entry.name = std::move(name);
  entry.raw_name = std::move(raw_name);
  entry.latency = [make](Side side, std::size_t size, const RunContext& context) {
    return echo_latency([&] { return make(side, size, context); }, size, context);
  };
  entry.throughput = [make](Side side, std::size_t size, const RunContext& context) {
    Pattern pattern(size);
    return in_two_processes<Throughput>(
        [&] { return make(side, size, context); },
        [&](Endpoint& peer) { receive_until_quit(peer, pattern, size); },
        [&](Endpoint& driver) {
          Throughput throughput = measure_one_way(driver, pattern, size, context.loop);
          send_quit(driver, pattern, size);
          return throughput;
        },
        context.placement, context.watchdog);
  };
  return entry;
}

}  // namespace

Outcome<Latency> echo_latency(const std::function<std::unique_ptr<Link>()>& make_link,
                              std::size_t size, const RunContext& context) {
  Pattern pattern(size);
  return in_two_processes<Latency>(
      make_link, [](Endpoint& peer) { echo_until_quit(peer); },
      [&](Endpoint& driver) {
        Latency latency = measure_round_trips(driver, pattern, size, context.loop);
        send_quit(driver, pattern, size);
        return latency;
      },
      context.placement, context.watchdog);
}

void add_ipc_entries(Registry& registry) {
  registry.add(ipc_entry("pipe", "anonymous pipe", "write/read on two pipes",
                         [](Side side, std::size_t size, const RunContext&) {
                           return side == Side::conduit ? channel_pipe_link(size)
                                                        : raw_pipe_link(size);
                         }));
  registry.add(ipc_entry("fifo", "named pipe (FIFO)", "write/read on two FIFOs",
                         [](Side side, std::size_t size, const RunContext& context) {
                           return side == Side::conduit
                                      ? channel_link("fifo:" + in_directory(context, "fifo"), size)
                                      : raw_fifo_link(context.scratch, size);
                         }));
  registry.add(ipc_entry("mq", "POSIX message queue", "mq_send/mq_receive on two queues",
                         [](Side side, std::size_t size, const RunContext& context) {
                           return side == Side::conduit
                                      ? channel_link("mq:" + unique(context, "mq"), size)
                                      : raw_posix_queue_link(context.scratch, size);
                         }));
  registry.add(ipc_entry("sysvmq", "System V message queue", "msgsnd/msgrcv by message type",
                         [](Side side, std::size_t size, const RunContext& context) {
                           return side == Side::conduit
                                      ? channel_link("sysvmq:" + new_file(context, "sysvmq"),
                                                     size)
                                      : raw_sysv_queue_link(size);
                         }));
  registry.add(ipc_entry(
      "shm", "shared memory (ShmRing, copy)", "busy-polled slots, copy in, read in place",
      [](Side side, std::size_t size, const RunContext& context) {
        return side == Side::conduit ? channel_link("shm:" + unique(context, "shm"), size)
                                     : raw_shared_slots_link(size, true);
      }));
  registry.add(ipc_entry("shm-loan", "shared memory (ShmRing, loan)",
                         "busy-polled slots, built and read in place",
                         [](Side side, std::size_t size, const RunContext&) {
                           return side == Side::conduit ? ring_loan_link(size)
                                                        : raw_shared_slots_link(size, false);
                         }));
  registry.add(ipc_entry("unix", "UNIX stream socket", "write/read on an accepted connection",
                         [](Side side, std::size_t size, const RunContext& context) {
                           return side == Side::conduit
                                      ? channel_link("unix:" + in_directory(context, "stream"), size)
                                      : raw_unix_connection_link(context.scratch, SOCK_STREAM, size);
                         }));
  registry.add(ipc_entry(
      "unix-seqpacket", "UNIX seqpacket socket", "send/recv on an accepted connection",
      [](Side side, std::size_t size, const RunContext& context) {
        return side == Side::conduit
                   ? channel_link("unix+seqpacket:" + in_directory(context, "seqpacket"), size)
                   : raw_unix_connection_link(context.scratch, SOCK_SEQPACKET, size);
      }));
  registry.add(ipc_entry(
      "unix-dgram", "UNIX datagram socket", "send/recv on a socketpair",
      [](Side side, std::size_t size, const RunContext& context) {
        return side == Side::conduit
                   ? channel_link("unix+dgram:" + in_directory(context, "dgram"), size)
                   : raw_socketpair_link(SOCK_DGRAM, size);
      }));
  registry.add(ipc_entry("tcp", "TCP loopback", "write/read on a loopback connection",
                         [](Side side, std::size_t size, const RunContext&) {
                           return side == Side::conduit ? channel_link("tcp://127.0.0.1:0", size)
                                                        : raw_tcp_link(size);
                         }));
}

}  // namespace conduit::compare
