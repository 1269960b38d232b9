// conduit's Channel against the raw system calls of the same mechanism, in
// the same run: 64-byte round trips between two processes, p50, first with a
// minimal loop of bare system calls, then through conduit, over the same kind
// of kernel object. The loops and links are conduit compare's (src/compare/),
// so this is its latency column alone, run longer.
//
//   build/bench/ipc_overhead_bench [--seconds S]
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "compare/registry.hpp"
#include "compare/runner.hpp"

namespace {

using namespace conduit::compare;

// A private directory for sockets and FIFOs.
std::string scratch_directory() {
  char path[] = "/tmp/conduit-bench-XXXXXX";
  if (!::mkdtemp(path)) {
    std::perror("mkdtemp");
    std::exit(1);
  }
  return path;
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 1.0;
  for (int i = 1; i + 1 < argc; ++i)
    if (std::string(argv[i]) == "--seconds") seconds = std::stod(argv[i + 1]);

  RunContext context;
  context.loop.duration = std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::duration<double>(seconds));
  context.loop.warmup = context.loop.duration / 10;
  context.loop.clock_overhead_ns = clock_overhead_ns();
  if (usable_cpu_count() >= 2) {
    context.placement.cpus = std::pair(0, 1);
    pin_to_cpu(0);
  }
  context.scratch = Scratch{scratch_directory(), "/conduit-bench-" + std::to_string(::getpid())};

  std::printf("64-byte round trip, p50 over %.1f s each, raw system calls vs conduit\n\n", seconds);
  std::printf("%-30s %10s %10s %8s\n", "mechanism", "raw us", "conduit us", "ratio");
  Registry registry;
  add_ipc_entries(registry);
  for (const Entry& entry : registry.entries()) {
    Outcome<Latency> raw = entry.latency(Side::raw, 64, context);
    Outcome<Latency> conduit = entry.latency(Side::conduit, 64, context);
    if (!raw.ok() || !conduit.ok()) {
      std::printf("%-30s failed: %s\n", entry.name.c_str(),
                  (raw.ok() ? conduit.error : raw.error).c_str());
      continue;
    }
    std::printf("%-30s %10.2f %10.2f %8.2f\n", entry.name.c_str(), raw.figure->p50_us,
                conduit.figure->p50_us, conduit.figure->p50_us / raw.figure->p50_us);
    std::fflush(stdout);
  }
  ::rmdir(context.scratch.directory.c_str());
  return 0;
}
