#include <fmt/core.h>
#include <malloc.h>

#include <CLI/CLI.hpp>

#include "cli/compare_command.hpp"
#include "cli/exit_codes.hpp"
#include "cli/ipc_command.hpp"
#include "cli/rpc_command.hpp"
#include "cli/version.hpp"
#include "conduit/error.hpp"

namespace {

// glibc hands a thread's freed memory back to the kernel once more than
// M_TRIM_THRESHOLD of it lies free, and serves allocations above
// M_MMAP_THRESHOLD with fresh mappings; both thresholds start low and only
// grow as large blocks come and go. A server answering multi-megabyte calls
// then returns the same pages after every call and faults them back in on
// the next one (about 1,500 page faults per 1 MiB JSON-RPC echo; each costs
// microseconds, more on virtual machines). These values are the top of
// glibc's own adaptive range (DEFAULT_MMAP_THRESHOLD_MAX and twice it), set
// from the start: blocks up to 32 MiB are reused, at most 64 MiB per arena
// stays mapped while free. A server built on the library can do the same
// with mallopt() or GLIBC_TUNABLES.
void keep_freed_memory_for_reuse() {
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
}

}  // namespace

int main(int argc, char** argv) {
  keep_freed_memory_for_reuse();
  CLI::App app{
      "conduit: every way Linux processes talk (pipes, FIFOs, UNIX sockets, TCP, ...),\n"
      "behind one API, measured on this machine."};
  app.require_subcommand(1);
  app.set_version_flag("-V,--version", conduit::cli::version_text,
                       "Print conduit's version, the git revision it was built from and the "
                       "versions of the libraries it uses, then exit");
  app.footer(
      "Examples:\n"
      "  conduit ipc serve unix:/tmp/echo.sock &\n"
      "  conduit ipc ping unix:/tmp/echo.sock --count 10000 --size 64\n"
      "  conduit ipc ping pipe:            (spawns its own echo child)\n"
      "  conduit compare --quick           (every mechanism measured, beside raw system calls)\n"
      "  conduit bench shm                 (one mechanism in depth)\n"
      "  conduit serve --listen tcp://127.0.0.1:8080 &   (JSON-RPC 2.0 on HTTP, lines, shm)\n"
      "  conduit call http://127.0.0.1:8080/jsonrpc subtract '[42,23]'\n"
      "Run 'conduit ipc --help' for the URI forms.");
  conduit::cli::add_ipc_command(app);
  conduit::cli::add_compare_commands(app);
  conduit::cli::add_rpc_commands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    int code = app.exit(error);
    return code == 0 ? 0 : conduit::cli::kExitUsage;
  }
  if (auto code = conduit::cli::run_compare_commands()) return *code;
  if (auto code = conduit::cli::run_rpc_commands()) return *code;
  return conduit::cli::run_ipc_command(app);
}
