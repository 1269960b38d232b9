#include "conduit/ipc/shared_memory.hpp"

#include <fcntl.h>
#include <limits.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "conduit/error.hpp"
#include "kernel_setting.hpp"
#include "posix_name.hpp"
#include "sysv_key.hpp"

namespace conduit::ipc {
namespace {

// glibc keeps POSIX shared memory objects here; used only to tell whether a
// name still refers to the segment this process created.
constexpr const char* shm_directory = "/dev/shm";

// memfd_create's limit on the debug name: 249 bytes plus "memfd:" is NAME_MAX.
constexpr std::size_t memfd_name_max = 249;

void set_size(const FileDescriptor& fd, const std::string& target, std::size_t size) {
  int result;
  do {
    result = ::ftruncate(fd.get(), static_cast<off_t>(size));
  } while (result < 0 && errno == EINTR);
  if (result < 0) {
    int code = errno;
    if (code == EFBIG || code == EINVAL)
      throw SystemError("ftruncate", target, code,
                        "the size " + std::to_string(size) + " is larger than a segment can be");
    throw SystemError("ftruncate", target, code);
  }
}

std::size_t size_of(int fd, const std::string& target) {
  struct stat st {};
  if (::fstat(fd, &st) < 0) throw SystemError("fstat", target, errno);
  return static_cast<std::size_t>(st.st_size);
}

}  // namespace

// ---- Mapping ----------------------------------------------------------------

Mapping::Mapping(Mapping&& other) noexcept
    : address_(std::exchange(other.address_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      kind_(other.kind_) {}

Mapping& Mapping::operator=(Mapping&& other) noexcept {
  if (this != &other) {
    reset();
    address_ = std::exchange(other.address_, nullptr);
    size_ = std::exchange(other.size_, 0);
    kind_ = other.kind_;
  }
  return *this;
}

Mapping::~Mapping() {
  reset();
}

void Mapping::reset() noexcept {
  if (address_ == nullptr) return;
  if (kind_ == Kind::sysv)
    ::shmdt(address_);
  else
    ::munmap(address_, size_);
  address_ = nullptr;
  size_ = 0;
}

// ---- SharedMemory -------------------------------------------------------------

SharedMemory SharedMemory::create(const std::string& name, std::size_t size, mode_t mode) {
  detail::check_posix_name("shm_open", name, NAME_MAX);
  int fd = ::shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode & 07777);
  if (fd < 0) {
    int code = errno;
    if (code == EEXIST)
      throw SystemError("shm_open(O_CREAT|O_EXCL)", name, code,
                        "the name is taken; a stale segment from a crashed run can be removed "
                        "with SharedMemory::open(name).unlink() or rm /dev/shm" +
                            name);
    if (code == EACCES)
      throw SystemError("shm_open(O_CREAT|O_EXCL)", name, code,
                        "this user may not create entries in /dev/shm");
    throw SystemError("shm_open(O_CREAT|O_EXCL)", name, code);
  }
  // From here on the segment is ours: a failure below unlinks it again.
  SharedMemory segment;
  segment.fd_.reset(fd);
  segment.name_ = name;
  segment.owner_ = true;
  // shm_open applies the umask; the caller asked for exactly `mode`.
  if (::fchmod(fd, mode & 07777) < 0) throw SystemError("fchmod", name, errno);
  set_size(segment.fd_, name, size);
  segment.size_ = size;
  return segment;
}

SharedMemory SharedMemory::open(const std::string& name, Access access) {
  detail::check_posix_name("shm_open", name, NAME_MAX);
  int flags = (access == Access::read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC;
  const char* call = access == Access::read_only ? "shm_open(O_RDONLY)" : "shm_open(O_RDWR)";
  int fd = ::shm_open(name.c_str(), flags, 0);
  if (fd < 0) {
    int code = errno;
    if (code == ENOENT)
      throw SystemError(call, name, code,
                        "no segment has that name: it was not created yet, or was removed");
    if (code == EACCES)
      throw SystemError(call, name, code,
                        access == Access::read_only
                            ? "the segment's mode does not let this user read it"
                            : "the segment's mode does not let this user write it; open it "
                              "with Access::read_only if reading is enough");
    throw SystemError(call, name, code);
  }
  SharedMemory segment;
  segment.fd_.reset(fd);
  segment.name_ = name;
  segment.size_ = size_of(fd, name);
  return segment;
}

SharedMemory SharedMemory::anonymous(const std::string& debug_name, std::size_t size) {
  const std::string target = "memfd:" + debug_name;
  if (debug_name.size() > memfd_name_max)
    throw SystemError("memfd_create", target, EINVAL,
                      "the debug name is " + std::to_string(debug_name.size()) +
                          " bytes; memfd names are at most 249");
  int fd = ::memfd_create(debug_name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) throw SystemError("memfd_create", target, errno);
  SharedMemory segment;
  segment.fd_.reset(fd);
  set_size(segment.fd_, target, size);
  segment.size_ = size;
  if (::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0)
    throw SystemError("fcntl(F_ADD_SEALS)", target, errno);
  return segment;
}

SharedMemory SharedMemory::adopt(FileDescriptor fd) {
  const std::string target = "descriptor " + std::to_string(fd.get());
  struct stat st {};
  if (::fstat(fd.get(), &st) < 0) throw SystemError("fstat", target, errno);
  if (!S_ISREG(st.st_mode))
    throw Error("adopt(" + target +
                "): not a shared memory segment (expected a memfd or shm_open descriptor)");
  SharedMemory segment;
  segment.fd_ = std::move(fd);
  segment.size_ = static_cast<std::size_t>(st.st_size);
  return segment;
}

SharedMemory::SharedMemory(SharedMemory&& other) noexcept
    : fd_(std::move(other.fd_)),
      size_(std::exchange(other.size_, 0)),
      name_(std::move(other.name_)),
      owner_(std::exchange(other.owner_, false)) {
  other.name_.clear();
}

SharedMemory& SharedMemory::operator=(SharedMemory&& other) noexcept {
  if (this != &other) {
    SharedMemory previous(std::move(*this));  // releases the old segment on leaving
    fd_ = std::move(other.fd_);
    size_ = std::exchange(other.size_, 0);
    name_ = std::move(other.name_);
    other.name_.clear();
    owner_ = std::exchange(other.owner_, false);
  }
  return *this;
}

SharedMemory::~SharedMemory() {
  if (!owner_) return;
  owner_ = false;
  // Remove the name only while it still refers to this segment: after an
  // unlink by someone else, the name may belong to a new segment.
  struct stat ours {
  }, named{};
  std::string path = shm_directory + name_;
  if (fd_ && ::fstat(fd_.get(), &ours) == 0 && ::stat(path.c_str(), &named) == 0 &&
      (ours.st_dev != named.st_dev || ours.st_ino != named.st_ino))
    return;
  ::shm_unlink(name_.c_str());
}

Mapping SharedMemory::map(Access access) const {
  if (size_ == 0) return Mapping();
  int protection = access == Access::read_only ? PROT_READ : PROT_READ | PROT_WRITE;
  void* address = ::mmap(nullptr, size_, protection, MAP_SHARED, fd_.get(), 0);
  if (address == MAP_FAILED) {
    int code = errno;
    const std::string target = name_.empty() ? "memfd" : name_;
    if (code == EACCES)
      throw SystemError("mmap", target, code,
                        "the segment was opened read-only; map it with Access::read_only");
    throw SystemError("mmap", target, code);
  }
  return Mapping(address, size_, Mapping::Kind::mmap);
}

bool SharedMemory::size_sealed() const {
  int seals = ::fcntl(fd_.get(), F_GET_SEALS);
  return seals >= 0 && (seals & F_SEAL_SHRINK) && (seals & F_SEAL_GROW);
}

void SharedMemory::unlink() {
  owner_ = false;
  if (name_.empty()) return;
  if (::shm_unlink(name_.c_str()) < 0 && errno != ENOENT)
    throw SystemError("shm_unlink", name_, errno);
}

// ---- SysVSharedMemory -----------------------------------------------------------

SysVSharedMemory SysVSharedMemory::create(key_t key, std::size_t size, mode_t mode) {
  const std::string target = detail::describe_sysv_key(key);
  int id = ::shmget(key, size, IPC_CREAT | IPC_EXCL | static_cast<int>(mode & 0777));
  if (id < 0) {
    int code = errno;
    const std::string asked = "asked for " + std::to_string(size) + " bytes";
    if (code == EEXIST)
      throw SystemError("shmget(IPC_CREAT|IPC_EXCL)", target, code,
                        "a segment with this key exists; a stale one from a crashed run can be "
                        "removed with ipcrm -M KEY");
    if (code == EINVAL)
      throw SystemError("shmget", target, code,
                        asked + ", but a segment holds 1 byte to " +
                            detail::describe_kernel_setting("kernel.shmmax") + " bytes");
    if (code == ENOSPC)
      throw SystemError("shmget", target, code,
                        asked + ": either the number of segments reached " +
                            detail::describe_kernel_setting("kernel.shmmni") +
                            " or the pages of all segments would exceed " +
                            detail::describe_kernel_setting("kernel.shmall") +
                            " (ipcs -m -u shows the usage)");
    if (code == ENOMEM) throw SystemError("shmget", target, code, asked + ": not enough memory");
    throw SystemError("shmget", target, code);
  }
  SysVSharedMemory segment;
  segment.id_ = id;
  segment.size_ = size;
  segment.owner_ = true;
  return segment;
}

SysVSharedMemory SysVSharedMemory::open(key_t key, Access access) {
  const std::string target = detail::describe_sysv_key(key);
  int wanted = access == Access::read_only ? 0400 : 0600;
  int id = ::shmget(key, 0, wanted);
  if (id < 0) {
    int code = errno;
    if (code == ENOENT)
      throw SystemError("shmget", target, code,
                        "no segment has this key: it was not created yet, or was removed");
    if (code == EACCES)
      throw SystemError("shmget", target, code,
                        access == Access::read_only
                            ? "the segment's mode does not let this user read it"
                            : "the segment's mode does not let this user write it; open it "
                              "with Access::read_only if reading is enough");
    throw SystemError("shmget", target, code);
  }
  shmid_ds info{};
  if (::shmctl(id, IPC_STAT, &info) < 0) throw SystemError("shmctl(IPC_STAT)", target, errno);
  SysVSharedMemory segment;
  segment.id_ = id;
  segment.size_ = info.shm_segsz;
  return segment;
}

SysVSharedMemory::SysVSharedMemory(SysVSharedMemory&& other) noexcept
    : id_(std::exchange(other.id_, -1)),
      size_(std::exchange(other.size_, 0)),
      owner_(std::exchange(other.owner_, false)) {}

SysVSharedMemory& SysVSharedMemory::operator=(SysVSharedMemory&& other) noexcept {
  if (this != &other) {
    if (owner_) ::shmctl(id_, IPC_RMID, nullptr);
    id_ = std::exchange(other.id_, -1);
    size_ = std::exchange(other.size_, 0);
    owner_ = std::exchange(other.owner_, false);
  }
  return *this;
}

SysVSharedMemory::~SysVSharedMemory() {
  if (owner_) ::shmctl(id_, IPC_RMID, nullptr);
}

Mapping SysVSharedMemory::attach(Access access) const {
  const std::string target = "shmid " + std::to_string(id_);
  void* address = ::shmat(id_, nullptr, access == Access::read_only ? SHM_RDONLY : 0);
  if (address == reinterpret_cast<void*>(-1)) {
    int code = errno;
    if (code == EACCES)
      throw SystemError("shmat", target, code,
                        "the segment's mode does not grant this user the access asked for");
    if (code == EINVAL || code == EIDRM)
      throw SystemError("shmat", target, code, "the segment has been removed");
    throw SystemError("shmat", target, code);
  }
  return Mapping(address, size_, Mapping::Kind::sysv);
}

void SysVSharedMemory::remove() {
  owner_ = false;
  if (id_ < 0) return;
  if (::shmctl(id_, IPC_RMID, nullptr) < 0 && errno != EINVAL && errno != EIDRM)
    throw SystemError("shmctl(IPC_RMID)", "shmid " + std::to_string(id_), errno,
                      "only the segment's owner, creator or root may remove it");
}

key_t key_from_path(const std::string& path, int project) {
  key_t key = ::ftok(path.c_str(), project);
  if (key == -1) throw SystemError("ftok", path, errno, "the path must exist");
  return key;
}

}  // namespace conduit::ipc
