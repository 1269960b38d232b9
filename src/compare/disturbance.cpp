#include "compare/disturbance.hpp"

#include <dirent.h>
#include <fmt/core.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <sstream>
#include <vector>

namespace conduit::compare {

namespace {

// A process's parent and CPU ticks (utime + stime, and with `waited` its
// waited-for children's too), from /proc/PID/stat; false when it is gone.
bool process_ticks(const std::string& pid, bool waited, long long& parent, long long& ticks) {
  std::ifstream in("/proc/" + pid + "/stat");
  std::string text;
  if (!std::getline(in, text)) return false;
  // The command name may hold spaces and parentheses: the fields follow
  // the last ')'.
  const std::size_t close = text.rfind(')');
  if (close == std::string::npos) return false;
  std::istringstream fields(text.substr(close + 2));
  std::vector<std::string> field;  // field[0] is the state (field 3 of stat)
  for (std::string one; fields >> one && field.size() < 15;) field.push_back(one);
  if (field.size() < 15) return false;
  parent = std::stoll(field[1]);                                       // 4: ppid
  ticks = std::stoll(field[11]) + std::stoll(field[12]);               // 14, 15: utime, stime
  if (waited) ticks += std::stoll(field[13]) + std::stoll(field[14]);  // 16, 17: cutime, cstime
  return true;
}

}  // namespace

DisturbanceWatch::DisturbanceWatch() : start_(read()) {}

DisturbanceWatch::Reading DisturbanceWatch::read() {
  Reading reading;
  reading.at = std::chrono::steady_clock::now();
  std::ifstream stat("/proc/stat");
  std::string cpu;
  long long user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  stat >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal;
  reading.busy_ticks = user + nice + system;
  reading.steal_ticks = steal;
  // Every process's parent, to find this one's descendants.
  std::map<long long, std::vector<std::pair<long long, long long>>> children;  // ppid: (pid, ticks)
  const long long self = ::getpid();
  if (DIR* proc = ::opendir("/proc")) {
    while (const dirent* entry = ::readdir(proc)) {
      const std::string name = entry->d_name;
      if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
      const long long pid = std::stoll(name);
      long long parent = 0, ticks = 0;
      if (!process_ticks(name, pid == self, parent, ticks)) continue;
      if (pid == self)
        reading.own_ticks += ticks;
      else
        children[parent].emplace_back(pid, ticks);
    }
    ::closedir(proc);
  }
  std::vector<long long> frontier{self};
  while (!frontier.empty()) {
    const long long pid = frontier.back();
    frontier.pop_back();
    for (const auto& [child, ticks] : children[pid]) {
      reading.own_ticks += ticks;
      frontier.push_back(child);
    }
  }
  return reading;
}

std::string DisturbanceWatch::verdict(const DisturbanceLimits& limits) const {
  const Reading end = read();
  static const double tick_seconds = 1.0 / static_cast<double>(::sysconf(_SC_CLK_TCK));
  const double wall = std::chrono::duration<double>(end.at - start_.at).count();
  if (wall <= 0) return {};
  // Ticks are counted in whole units: a couple either way is noise.
  constexpr long long kNoiseTicks = 3;
  const long long others =
      (end.busy_ticks - start_.busy_ticks) - (end.own_ticks - start_.own_ticks) - kNoiseTicks;
  const long long stolen = end.steal_ticks - start_.steal_ticks - kNoiseTicks;
  const double others_share = static_cast<double>(others) * tick_seconds / wall;
  const double steal_share = static_cast<double>(stolen) * tick_seconds / wall;
  if (others_share > limits.others_cpu_share)
    return fmt::format("other processes used {:.0f}% of a CPU meanwhile", 100 * others_share);
  if (steal_share > limits.steal_share)
    return fmt::format("the hypervisor took {:.0f}% of a CPU meanwhile", 100 * steal_share);
  return {};
}

}  // namespace conduit::compare
