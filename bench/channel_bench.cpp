// Channel round trips against the raw system calls they wrap, in the same
// process run: two threads ping-pong over a pipe pair, once with bare
// write()/read() and once through Channel's framing.
//
//   build/bench/conduit_bench --benchmark_filter=RoundTrip
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "conduit/ipc/channel.hpp"
#include "conduit/ipc/pipe.hpp"

namespace {

using conduit::ipc::Channel;
using conduit::ipc::PipePair;

std::string pipe_uri(const conduit::ipc::FileDescriptor& read,
                     const conduit::ipc::FileDescriptor& write) {
  return "pipe:" + std::to_string(read.get()) + "," + std::to_string(write.get());
}

bool read_exactly(int fd, char* buffer, std::size_t size) {
  while (size > 0) {
    ssize_t n = ::read(fd, buffer, size);
    if (n <= 0) return false;
    buffer += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

void BM_RawPipeRoundTrip(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  PipePair there = PipePair::create();
  PipePair back = PipePair::create();
  std::thread echo([&] {
    std::vector<char> buffer(size);
    while (read_exactly(there.read_end.get(), buffer.data(), size))
      (void)!::write(back.write_end.get(), buffer.data(), size);
  });
  std::vector<char> message(size, 'x');
  for (auto _ : state) {
    (void)!::write(there.write_end.get(), message.data(), size);
    read_exactly(back.read_end.get(), message.data(), size);
  }
  there.write_end.reset();
  echo.join();
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(size) * 2);
}

void BM_ChannelPipeRoundTrip(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  PipePair there = PipePair::create();
  PipePair back = PipePair::create();
  Channel server = Channel::connect(pipe_uri(there.read_end, back.write_end));
  there.read_end.release();  // now owned by the channel
  back.write_end.release();
  std::optional<Channel> client = Channel::connect(pipe_uri(back.read_end, there.write_end));
  back.read_end.release();
  there.write_end.release();
  std::thread echo([&] {
    while (auto received = server.receive()) server.send(received.message);
  });
  std::vector<std::byte> message(size, std::byte{'x'});
  for (auto _ : state) {
    client->send(message);
    benchmark::DoNotOptimize(client->receive().message.data());
  }
  client.reset();  // the echo thread sees end of stream
  echo.join();
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(size) * 2);
}

BENCHMARK(BM_RawPipeRoundTrip)->Arg(64)->Arg(4096)->Arg(65536)->UseRealTime();
BENCHMARK(BM_ChannelPipeRoundTrip)->Arg(64)->Arg(4096)->Arg(65536)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
