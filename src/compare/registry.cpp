#include "compare/registry.hpp"

#include <stdexcept>

namespace conduit::compare {

void Registry::add(Entry entry) {
  if (find(entry.key)) throw std::logic_error("two comparison entries share the key " + entry.key);
  entries_.push_back(std::move(entry));
}

const Entry* Registry::find(const std::string& key) const {
  for (const Entry& entry : entries_)
    if (entry.key == key) return &entry;
  return nullptr;
}

std::string Registry::keys() const {
  std::string list;
  for (const Entry& entry : entries_) list += (list.empty() ? "" : ", ") + entry.key;
  return list;
}

Registry default_registry() {
  Registry registry;
  add_ipc_entries(registry);
  add_rpc_entries(registry);
  return registry;
}

}  // namespace conduit::compare
