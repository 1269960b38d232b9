// A multi-process, multi-threaded worker pool that shares its work through
// shared memory and semaphores.
//
// The parent puts a control block and a data area in one anonymous memfd
// segment, then forks the workers, which inherit the mapping. Jobs ("checksum
// block i of the data area") travel through a bounded ring in the control
// block: two process-shared semaphores count its free and filled slots, and a
// robust mutex guards the ring and the shared totals. Each worker process runs
// several threads that take jobs and add their results to the totals; the
// parent waits on a process-shared condition variable until every job is
// done, stops the workers and checks the total against its own.
//
// With --crash, one more worker process, started alone before the others,
// dies by SIGKILL in the middle of updating the totals for its first job,
// while it holds the mutex. The next process to lock the mutex is told the
// owner died and repairs the totals from the write-ahead record the dead
// worker left, so the pool still finishes with the right answer.
//
//   worker_pool [--processes N] [--threads M] [--jobs J] [--block-size B] [--crash]
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "conduit/error.hpp"
#include "conduit/ipc/robust_mutex.hpp"
#include "conduit/ipc/semaphore.hpp"
#include "conduit/ipc/shared_memory.hpp"

namespace {

using namespace std::chrono_literals;
using conduit::ipc::LockResult;
using conduit::ipc::RobustLock;
using conduit::ipc::RobustMutex;
using conduit::ipc::SharedCondition;
using conduit::ipc::UnnamedSemaphore;

constexpr std::uint32_t ring_slots = 64;
constexpr std::uint32_t stop_job = UINT32_MAX;
// No wait is unbounded: a worker whose parent vanished gives up after this.
constexpr auto patience = 30s;

struct Options {
  int processes = 3;
  int threads = 2;
  std::uint32_t jobs = 2000;
  std::uint32_t block_size = 4096;
  bool crash = false;
};

// What a worker is about to do to the totals, written before it does it.
// Replaying it is idempotent: it holds the values the totals will have, not
// the amounts to add.
struct Journal {
  bool pending = false;
  std::uint32_t job = 0;
  std::uint64_t total = 0;
  std::uint32_t done = 0;
};

// The control block at the start of the segment. Every field below `mutex`
// is guarded by it.
struct Control {
  UnnamedSemaphore free_slots{ring_slots};
  UnnamedSemaphore filled_slots{0};
  RobustMutex mutex;
  SharedCondition all_done;

  std::uint64_t head = 0;  // next slot to take
  std::uint64_t tail = 0;  // next slot to fill
  std::uint32_t ring[ring_slots] = {};

  std::uint64_t total = 0;  // sum of the checksums of the jobs done
  std::uint32_t done = 0;   // number of jobs done
  Journal journal;
  std::uint32_t repairs = 0;
  pid_t repaired_by = 0;
};

// The segment: the control block, one "done" flag per job, the data blocks.
struct Pool {
  Control* control;
  std::uint8_t* done_flags;
  const std::uint8_t* data;
  Options options;
};

std::uint64_t checksum(const std::uint8_t* bytes, std::size_t size) {
  std::uint64_t hash = 0xcbf29ce484222325u;  // FNV-1a
  for (std::size_t i = 0; i < size; ++i) hash = (hash ^ bytes[i]) * 0x100000001b3u;
  return hash;
}

// Applies a journal record to the totals. REQUIRES: the mutex is held.
void apply(const Pool& pool, const Journal& record) {
  Control& control = *pool.control;
  control.total = record.total;
  control.done = record.done;
  pool.done_flags[record.job] = 1;
  control.journal.pending = false;
  if (control.done == pool.options.jobs) control.all_done.notify_all();
}

// Run by whoever locks the mutex after its owner died: finishes the dead
// owner's update if it had recorded one. Every other update of the guarded
// fields is a single store, so nothing else can be half done.
void repair(const Pool& pool) {
  Control& control = *pool.control;
  if (control.journal.pending) apply(pool, control.journal);
  ++control.repairs;
  control.repaired_by = ::getpid();
}

RobustLock lock(const Pool& pool) {
  return RobustLock(pool.control->mutex, [&] { repair(pool); });
}

void push(const Pool& pool, std::uint32_t job) {
  Control& control = *pool.control;
  if (!control.free_slots.wait_for(patience))
    throw conduit::Error("no free slot in the job ring for 30 s: are the workers alive?");
  {
    RobustLock held = lock(pool);
    control.ring[control.tail % ring_slots] = job;
    ++control.tail;
  }
  control.filled_slots.post();
}

std::uint32_t take(const Pool& pool) {
  Control& control = *pool.control;
  if (!control.filled_slots.wait_for(patience))
    throw conduit::Error("no job for 30 s: is the parent alive?");
  std::uint32_t job;
  {
    RobustLock held = lock(pool);
    job = control.ring[control.head % ring_slots];
    ++control.head;
  }
  control.free_slots.post();
  return job;
}

// One worker thread: takes jobs until it takes stop_job. With die_midway, the
// thread kills its whole process while holding the mutex, after recording the
// update it was about to make.
void work(const Pool& pool, bool die_midway) {
  const std::size_t block = pool.options.block_size;
  for (;;) {
    std::uint32_t job = take(pool);
    if (job == stop_job) return;
    std::uint64_t sum = checksum(pool.data + std::size_t{job} * block, block);
    RobustLock held = lock(pool);
    Control& control = *pool.control;
    if (pool.done_flags[job]) continue;  // cannot happen: each job is queued once
    control.journal = Journal{true, job, control.total + sum, control.done + 1};
    if (die_midway) {
      std::printf("worker %d: dying while holding the lock, with job %u half recorded\n",
                  ::getpid(), job);
      std::fflush(stdout);
      ::raise(SIGKILL);
    }
    apply(pool, control.journal);
  }
}

// A worker process: `threads` threads; exits 0 when all stopped cleanly.
[[noreturn]] void worker_process(const Pool& pool, int threads, bool die_midway) {
  std::atomic<bool> failed{false};
  std::vector<std::thread> pool_threads;
  for (int t = 0; t < threads; ++t) {
    pool_threads.emplace_back([&, t] {
      try {
        work(pool, die_midway && t == 0);
      } catch (const std::exception& error) {
        std::fprintf(stderr, "worker %d: %s\n", ::getpid(), error.what());
        failed = true;
      }
    });
  }
  for (auto& thread : pool_threads) thread.join();
  std::fflush(nullptr);
  ::_exit(failed ? 1 : 0);
}

bool parse(int argc, char** argv, Options& options) {
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    auto number = [&](auto& into, long low, long high) {
      if (i + 1 >= argc) return false;
      char* end = nullptr;
      long value = std::strtol(argv[++i], &end, 10);
      if (*end != '\0' || value < low || value > high) return false;
      into = static_cast<std::remove_reference_t<decltype(into)>>(value);
      return true;
    };
    bool ok = flag == "--processes"    ? number(options.processes, 1, 64)
              : flag == "--threads"    ? number(options.threads, 1, 64)
              : flag == "--jobs"       ? number(options.jobs, 1, 1000000)
              : flag == "--block-size" ? number(options.block_size, 1, 1 << 24)
              : flag == "--crash"      ? (options.crash = true)
                                       : false;
    if (!ok) return false;
  }
  return true;
}

// Waits for a child at most timeout; kills it if still running.
int reap(pid_t child, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (::waitpid(child, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(child, SIGKILL);
      ::waitpid(child, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(1ms);
  }
  return status;
}

// The worker processes; any still running when this goes away (because the
// parent gave up) are killed and reaped, so none is left behind.
class Workers {
 public:
  Workers() = default;
  Workers(const Workers&) = delete;
  Workers& operator=(const Workers&) = delete;
  ~Workers() {
    for (pid_t pid : pids_) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }

  void add(pid_t pid) { pids_.push_back(pid); }
  std::size_t size() const { return pids_.size(); }
  // Reaps them all (each within timeout); false if any failed.
  bool reap_all(std::chrono::milliseconds timeout) {
    bool ok = true;
    for (pid_t pid : pids_) {
      int status = reap(pid, timeout);
      if (!(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        std::fprintf(stderr, "worker_pool: worker %d ended unexpectedly (status %d)\n", pid,
                     status);
        ok = false;
      }
    }
    pids_.clear();
    return ok;
  }

 private:
  std::vector<pid_t> pids_;
};

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (!parse(argc, argv, options)) {
    std::fprintf(stderr,
                 "usage: worker_pool [--processes N] [--threads M] [--jobs J] "
                 "[--block-size B] [--crash]\n");
    return 2;
  }
  try {
    // One anonymous segment: nothing is named, nothing is left behind.
    const std::size_t flags_at = sizeof(Control);
    const std::size_t data_at = (flags_at + options.jobs + 63) / 64 * 64;
    const std::size_t size = data_at + std::size_t{options.jobs} * options.block_size;
    conduit::ipc::SharedMemory segment = conduit::ipc::SharedMemory::anonymous("worker-pool", size);
    conduit::ipc::Mapping mapping = segment.map();
    Pool pool{new (mapping.data()) Control,
              reinterpret_cast<std::uint8_t*>(mapping.bytes() + flags_at),
              reinterpret_cast<const std::uint8_t*>(mapping.bytes() + data_at), options};
    std::unique_ptr<Control, void (*)(Control*)> control(pool.control, std::destroy_at<Control>);

    // Fill the data area and work out the answer before anyone else can.
    auto* data = reinterpret_cast<std::uint8_t*>(mapping.bytes() + data_at);
    std::uint64_t state = 0x9e3779b97f4a7c15u;
    for (std::size_t i = 0; i < std::size_t{options.jobs} * options.block_size; ++i) {
      state ^= state << 13, state ^= state >> 7, state ^= state << 17;  // xorshift64
      data[i] = static_cast<std::uint8_t>(state);
    }
    std::uint64_t expected = 0;
    for (std::uint32_t job = 0; job < options.jobs; ++job)
      expected += checksum(data + std::size_t{job} * options.block_size, options.block_size);

    auto fork_worker = [&](int threads, bool doomed) {
      pid_t child = ::fork();
      if (child < 0) throw conduit::SystemError("fork", "worker", errno);
      if (child == 0) worker_process(pool, threads, doomed);
      return child;
    };
    auto started = std::chrono::steady_clock::now();
    bool ok = true;
    std::uint32_t first_job = 0;
    if (options.crash) {
      // A worker with one thread, alone with the first job so that it surely
      // gets one, dies holding the mutex; the others start after its death.
      pid_t doomed = fork_worker(1, true);
      push(pool, first_job++);
      int status = reap(doomed, 10s);
      if (!(status >= 0 && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)) {
        std::fprintf(stderr, "worker_pool: the doomed worker did not die (status %d)\n", status);
        ok = false;
      }
    }
    Workers workers;
    for (int p = 0; p < options.processes; ++p) workers.add(fork_worker(options.threads, false));
    const int consumers = options.processes * options.threads;

    for (std::uint32_t job = first_job; job < options.jobs; ++job) push(pool, job);
    {
      RobustLock held = lock(pool);
      auto deadline = std::chrono::steady_clock::now() + patience;
      while (pool.control->done < options.jobs) {
        if (std::chrono::steady_clock::now() > deadline)
          throw conduit::Error("the jobs were not all done within 30 s");
        // A bounded wait: when a worker died holding the mutex, no one may
        // notify, and the parent repairs on re-locking.
        if (pool.control->all_done.wait_for(held.mutex(), 100ms) ==
            LockResult::previous_owner_died) {
          repair(pool);
          held.mark_consistent();
        }
      }
    }
    for (int i = 0; i < consumers; ++i) push(pool, stop_job);
    auto elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started);

    if (!workers.reap_all(10s)) ok = false;

    RobustLock held = lock(pool);
    const Control& result = *pool.control;
    std::printf(
        "%d processes x %d threads, %u jobs of %u bytes in %.3f s; total %016llx, "
        "expected %016llx\n",
        options.processes, options.threads, options.jobs, options.block_size, elapsed.count(),
        static_cast<unsigned long long>(result.total), static_cast<unsigned long long>(expected));
    if (options.crash) {
      std::printf("the lock's owner died %u time(s); process %d repaired the totals\n",
                  result.repairs, result.repaired_by);
      if (result.repairs != 1) ok = false;
    }
    if (result.total != expected || result.done != options.jobs) ok = false;
    std::printf("%s\n", ok ? "OK" : "MISMATCH");
    return ok ? 0 : 1;
  } catch (const conduit::Error& error) {
    std::fprintf(stderr, "worker_pool: %s\n", error.what());
    return 2;
  }
}
