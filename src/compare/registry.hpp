// What `conduit compare` can measure: one entry per row, registered by each
// family (IPC mechanisms here; each RPC protocol adds its own entries with
// one call in default_registry()).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "compare/ipc_links.hpp"
#include "compare/measurement.hpp"
#include "compare/results.hpp"

namespace conduit::compare {

// Through conduit, or through the bare system calls of the same mechanism.
enum class Side { conduit, raw };

// What every measurement of one run shares.
struct RunContext {
  LoopSettings loop;
  Placement placement;
  std::chrono::seconds watchdog{60};
  Scratch scratch;
};

struct Entry {
  std::string family;     // "IPC", "RPC"
  std::string key;        // for --only and `conduit bench`: lower case, no spaces
  std::string name;       // for people
  std::string transport;  // RPC: the transport; empty for IPC
  std::string raw_name;   // what the raw side does; empty: no raw side
  // Round trips of `size`-byte messages (RPC: echo calls).
  std::function<Outcome<Latency>(Side, std::size_t size, const RunContext&)> latency;
  // One-way throughput of `size`-byte messages (RPC: calls per second).
  std::function<Outcome<Throughput>(Side, std::size_t size, const RunContext&)> throughput;
  // Optional: figures that fit no table, such as RPC's bytes on the wire per
  // call; they go into Row::extra (and the JSON and CSV).
  std::function<std::map<std::string, double>(const RunContext&)> extra;
};

class Registry {
 public:
  // REQUIRES: no entry with the same key.
  void add(Entry entry);
  const std::vector<Entry>& entries() const { return entries_; }
  // nullptr when no entry has `key`.
  const Entry* find(const std::string& key) const;
  // "pipe, fifo, ..." for error messages and --help.
  std::string keys() const;

 private:
  std::vector<Entry> entries_;
};

// Round trips of `size`-byte messages to a peer that echoes them, over the
// link `make_link` makes: the latency measurement every row shares.
Outcome<Latency> echo_latency(const std::function<std::unique_ptr<Link>()>& make_link,
                              std::size_t size, const RunContext& context);

void add_ipc_entries(Registry& registry);
void add_rpc_entries(Registry& registry);

// Every family conduit has.
Registry default_registry();

}  // namespace conduit::compare
