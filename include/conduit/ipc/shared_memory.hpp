// Shared memory segments: POSIX (shm_open), anonymous memfd (memfd_create)
// and System V (shmget), and their mappings.
//
// A segment is a kernel object; a Mapping is this process's view of it. The
// creator of a named segment owns its name and removes it on destruction;
// segments opened by name are left in place. A memfd has no name at all: it
// lives as long as a descriptor or a mapping refers to it, and reaches another
// process only by inheritance or over a UNIX socket (SCM_RIGHTS), which makes
// it the private choice.
//
// Limits to know about:
// - POSIX segments live in /dev/shm, a tmpfs. Creating one only sets its size;
//   pages are allocated when first touched, and touching one when the tmpfs is
//   full raises SIGBUS, as does touching a page past the end of a segment that
//   another process shrank. anonymous() seals its memfd against shrinking.
// - System V segments are bounded by kernel.shmmax (bytes per segment),
//   kernel.shmall (pages in all segments) and kernel.shmmni (segment count);
//   errors caused by them name the setting and its current value.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>

#include "conduit/ipc/file_descriptor.hpp"

namespace conduit::ipc {

// This process's mapping of a segment. Move-only; unmaps (munmap, or shmdt
// for a System V attachment) on destruction. An empty Mapping (a segment of
// size 0) has data() == nullptr and size() == 0.
class Mapping {
 public:
  enum class Kind { mmap, sysv };

  Mapping() = default;
  // Takes ownership of a mapping made with mmap (Kind::mmap) or shmat
  // (Kind::sysv) at `address`.
  Mapping(void* address, std::size_t size, Kind kind = Kind::mmap)
      : address_(address), size_(size), kind_(kind) {}
  Mapping(Mapping&& other) noexcept;
  Mapping& operator=(Mapping&& other) noexcept;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping();

  void* data() const { return address_; }
  std::byte* bytes() const { return static_cast<std::byte*>(address_); }
  std::size_t size() const { return size_; }
  explicit operator bool() const { return address_ != nullptr; }
  Kind kind() const { return kind_; }

  // Unmaps now (idempotent); the Mapping becomes empty.
  void reset() noexcept;

 private:
  void* address_ = nullptr;
  std::size_t size_ = 0;
  Kind kind_ = Kind::mmap;
};

enum class Access { read_only, read_write };

// A POSIX shared memory object (/dev/shm/NAME) or a memfd. Move-only.
class SharedMemory {
 public:
  // Creates "/name" (one leading slash, no other, at most NAME_MAX = 255
  // characters after it, not "/." or "/..") of `size` bytes, zero-filled, with exactly `mode`
  // (the umask is not applied); the object owns the name and unlinks it on
  // destruction, unless the name meanwhile names another segment. Throws
  // SystemError: EEXIST when the name is taken, EINVAL (with the rule broken)
  // for a malformed name, EACCES, EFBIG.
  static SharedMemory create(const std::string& name, std::size_t size, mode_t mode = 0600);

  // Opens an existing "/name"; does not own the name. size() is its size at
  // the time of opening. Throws SystemError: ENOENT, EACCES (the segment's
  // mode does not grant `access` to this user), EINVAL for a malformed name.
  static SharedMemory open(const std::string& name, Access access = Access::read_write);

  // An anonymous memfd of `size` bytes, zero-filled, close-on-exec, sealed
  // against shrinking and growing (F_SEAL_SHRINK | F_SEAL_GROW), so a process
  // it is passed to cannot truncate it under another's mapping. `debug_name`
  // (at most 249 bytes) shows up in /proc/PID/fd only. Share it by fork, or
  // pass fd() over a UNIX socket (UnixSocket::send_with_fds) and adopt() it.
  // Throws SystemError: EINVAL for an over-long debug name, EMFILE, ENOMEM.
  static SharedMemory anonymous(const std::string& debug_name, std::size_t size);

  // Adopts a memfd or shm descriptor received from another process; size()
  // is its current size. Throws Error when fd is not a regular file (not a
  // memory segment), SystemError when fstat fails.
  static SharedMemory adopt(FileDescriptor fd);

  SharedMemory() = default;
  SharedMemory(SharedMemory&& other) noexcept;
  SharedMemory& operator=(SharedMemory&& other) noexcept;
  SharedMemory(const SharedMemory&) = delete;
  SharedMemory& operator=(const SharedMemory&) = delete;
  ~SharedMemory();

  // Maps the whole segment (MAP_SHARED): size() bytes, or an empty Mapping
  // when size() is 0. The mapping outlives this object if kept. Throws
  // SystemError: EACCES when read_write is asked of a segment opened
  // read-only, ENOMEM.
  Mapping map(Access access = Access::read_write) const;

  int fd() const { return fd_.get(); }
  std::size_t size() const { return size_; }
  // "/name", or empty for a memfd.
  const std::string& name() const { return name_; }
  bool owns_name() const { return owner_; }
  // True when the size is sealed (F_SEAL_SHRINK and F_SEAL_GROW), as for
  // anonymous(): mapping it cannot later fault with SIGBUS because a peer
  // truncated it. Check it before mapping a descriptor from an untrusted peer.
  bool size_sealed() const;

  // Removes the name now (owner or not); the memory lives on while mapped or
  // open. Does nothing for a memfd or when the name is already gone; throws
  // SystemError (EACCES) otherwise. This object no longer owns the name.
  void unlink();

 private:
  FileDescriptor fd_;
  std::size_t size_ = 0;
  std::string name_;
  bool owner_ = false;
};

// A System V shared memory segment (shmget). Move-only. The creator removes
// it (IPC_RMID) on destruction; the kernel frees it once the last process
// detaches. Segments are not subject to the umask; `ipcs -m` lists them.
class SysVSharedMemory {
 public:
  // Creates a zero-filled segment of `size` (>= 1) bytes for `key`
  // (IPC_CREAT | IPC_EXCL; IPC_PRIVATE for a new private segment, reachable
  // by id or by fork) with permission bits `mode`. Throws SystemError:
  // EEXIST when the key is taken; EINVAL naming kernel.shmmax when the size
  // is 0 or over it; ENOSPC naming kernel.shmmni or kernel.shmall.
  static SysVSharedMemory create(key_t key, std::size_t size, mode_t mode = 0600);
  // Opens an existing segment by key, checking that its mode grants `access`
  // to this user; does not own it. Throws SystemError: ENOENT, EACCES.
  static SysVSharedMemory open(key_t key, Access access = Access::read_write);

  SysVSharedMemory() = default;
  SysVSharedMemory(SysVSharedMemory&& other) noexcept;
  SysVSharedMemory& operator=(SysVSharedMemory&& other) noexcept;
  SysVSharedMemory(const SysVSharedMemory&) = delete;
  SysVSharedMemory& operator=(const SysVSharedMemory&) = delete;
  ~SysVSharedMemory();

  // Attaches the segment (shmat); the Mapping detaches (shmdt) on destruction.
  // Throws SystemError: EACCES when the segment's mode does not grant
  // `access`, EIDRM/EINVAL when it has been removed.
  Mapping attach(Access access = Access::read_write) const;

  int id() const { return id_; }
  std::size_t size() const { return size_; }
  bool owner() const { return owner_; }
  // Marks the segment for removal now (IPC_RMID), owner or not: the key is
  // freed, and the memory goes once the last attachment is detached. Does
  // nothing when already removed; throws SystemError (EPERM) when this user
  // may not remove it. This object no longer owns the segment.
  void remove();

 private:
  int id_ = -1;
  std::size_t size_ = 0;
  bool owner_ = false;
};

// ftok(path, project): a System V key from an existing file. Throws
// SystemError when the path does not exist.
key_t key_from_path(const std::string& path, int project = 'c');

}  // namespace conduit::ipc
