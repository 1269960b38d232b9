#include "leftovers.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <thread>

namespace conduit::ipc {

bool process_gone(pid_t pid) {
  return ::kill(pid, 0) < 0 && errno == ESRCH;
}

std::uint64_t pid_namespace() {
  struct stat st {};
  return ::stat("/proc/self/ns/pid", &st) == 0 ? st.st_ino : 0;
}

bool process_gone(pid_t pid, std::uint64_t recorded_namespace) {
  return recorded_namespace != 0 && recorded_namespace == pid_namespace() && process_gone(pid);
}

std::string server_gone_hint(pid_t pid, const std::string& what, const std::string& uri) {
  return "the server is gone (pid " + std::to_string(pid) + " ended without removing " + what +
         "); a server started on " + uri + " takes it over";
}

std::optional<pid_t> pid_after(std::string_view name, std::string_view prefix,
                               std::string_view* rest) {
  if (name.size() <= prefix.size() || name.substr(0, prefix.size()) != prefix) return std::nullopt;
  std::string_view tail = name.substr(prefix.size());
  pid_t pid = 0;
  auto [end, error] = std::from_chars(tail.data(), tail.data() + tail.size(), pid);
  if (error != std::errc() || end == tail.data() || pid <= 0) return std::nullopt;
  std::string_view more(end, static_cast<std::size_t>(tail.data() + tail.size() - end));
  if (!more.empty() && more.front() != '.') return std::nullopt;
  if (rest) *rest = more.empty() ? more : more.substr(1);
  return pid;
}

namespace {

// The mqueue filesystem's f_type (MQUEUE_MAGIC in the kernel's sources; not
// every <linux/magic.h> has it).
constexpr long kMqueueMagic = 0x19800202;

std::vector<std::string> entries_of(DIR* directory) {
  std::vector<std::string> names;
  if (!directory) return names;
  while (dirent* entry = ::readdir(directory)) {
    std::string_view name = entry->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
  ::closedir(directory);
  return names;
}

bool is_mqueue_filesystem(int fd) {
  struct statfs info {};
  return ::fstatfs(fd, &info) == 0 && info.f_type == kMqueueMagic;
}

// Mounts the mqueue filesystem where only the calling thread sees it and
// opens its directory. Runs on a thread of its own, whose mount namespace
// then differs from the rest of the process'.
FileDescriptor mount_privately() {
  if (::unshare(CLONE_NEWNS) != 0) return FileDescriptor();
  // Nothing mounted here may reach the namespace the process lives in.
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return FileDescriptor();
  char path[] = "/tmp/conduit-mqueue-XXXXXX";
  if (!::mkdtemp(path)) return FileDescriptor();
  FileDescriptor directory;
  if (::mount("mqueue", path, "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) == 0) {
    directory.reset(::open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    ::umount2(path, MNT_DETACH);  // the open descriptor keeps it readable
  }
  ::rmdir(path);
  return directory;
}

}  // namespace

std::vector<std::string> directory_entries(const std::string& path) {
  return entries_of(::opendir(path.c_str()));
}

std::vector<std::string> directory_entries(int fd) {
  int copy = ::openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (copy < 0) return {};
  DIR* directory = ::fdopendir(copy);
  if (!directory) ::close(copy);
  return entries_of(directory);
}

FileDescriptor open_mqueue_directory() {
  FileDescriptor mounted(::open("/dev/mqueue", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (mounted && is_mqueue_filesystem(mounted.get())) return mounted;
  FileDescriptor own;
  std::thread([&own] { own = mount_privately(); }).join();
  if (own && is_mqueue_filesystem(own.get())) return own;
  return FileDescriptor();
}

}  // namespace conduit::ipc
