#include "fifo_transport.hpp"

#include <fcntl.h>
#include <limits.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <filesystem>
#include <thread>

#include "conduit/error.hpp"
#include "conduit/ipc/fifo.hpp"
#include "conduit/ipc/pipe.hpp"
#include "leftovers.hpp"
#include "stream_transport.hpp"
#include "sys.hpp"

namespace conduit::ipc {
namespace {

// How long the server keeps trying to open a client's reply FIFO, for
// clients (a shell) that open their end only after announcing themselves.
constexpr auto kReplyOpenPatience = std::chrono::seconds(2);

std::atomic<unsigned> next_instance{0};

// Retries open_fifo_for_writing(nonblocking) while it fails with ENXIO (no
// reader yet), until the deadline. Returns an empty descriptor on timeout.
FileDescriptor open_writer_when_read(const std::string& path, const Deadline& deadline) {
  for (;;) {
    try {
      return open_fifo_for_writing(path, FifoOpen::nonblocking);
    } catch (const SystemError& error) {
      if (error.code() != ENXIO) throw;
    }
    if (deadline.poll_timeout_ms() == 0) return FileDescriptor();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

// Creates a FIFO, replacing a stale node of the same name.
Fifo create_replacing(const std::string& path, mode_t mode) {
  try {
    return Fifo::create(path, mode);
  } catch (const SystemError& error) {
    if (error.code() != EEXIST) throw;
  }
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0 && !S_ISFIFO(st.st_mode))
    throw SystemError("mkfifo", path, EEXIST, "the path exists and is not a FIFO");
  ::unlink(path.c_str());
  return Fifo::create(path, mode);
}

class FifoListener final : public ListenerImpl {
 public:
  FifoListener(const Uri& uri, const Settings& settings, const ChannelOptions& options)
      : uri_(uri), settings_(settings), options_(options) {
    ignore_sigpipe();
    struct stat st {};
    if (::lstat(uri_.path.c_str(), &st) == 0) {
      if (!S_ISFIFO(st.st_mode))
        throw SystemError("mkfifo", uri_.str(), EEXIST, "the path exists and is not a FIFO");
      FileDescriptor probe = open_fifo_for_reading(uri_.path, FifoOpen::nonblocking);
      if (::flock(probe.get(), LOCK_EX | LOCK_NB) != 0)
        throw SystemError("mkfifo", uri_.str(), EADDRINUSE,
                          "another server is serving on this FIFO; stop it or choose another path");
      ::unlink(uri_.path.c_str());  // stale: its server died
    }
    requests_node_ = Fifo::create(uri_.path, settings_.mode);
    requests_ = open_fifo_for_reading(uri_.path, FifoOpen::nonblocking);
    // The lock tells a second server this FIFO is in use. Our own writer keeps
    // the FIFO from reporting end of file each time a client's writer closes.
    ::flock(requests_.get(), LOCK_EX | LOCK_NB);
    keep_open_ = open_fifo_for_writing(uri_.path, FifoOpen::nonblocking);
    remove_pairs_of_gone_clients();
  }

  std::optional<Channel> accept(std::chrono::nanoseconds timeout) override {
    Deadline deadline(timeout);
    for (;;) {
      if (std::chrono::steady_clock::now() >= next_sweep_) remove_pairs_of_gone_clients();
      auto newline = pending_.find('\n');
      if (newline != std::string::npos) {
        std::string prefix = pending_.substr(0, newline);
        pending_.erase(0, newline + 1);
        if (auto channel = open_client(prefix)) return channel;
        continue;  // malformed, or the client is gone: wait for the next
      }
      auto to_sweep = std::chrono::ceil<std::chrono::milliseconds>(
          next_sweep_ - std::chrono::steady_clock::now());
      if (!wait_for_fd(requests_.get(), POLLIN, deadline.sooner(to_sweep), options_.cancellation,
                       uri_.str())) {
        if (deadline.poll_timeout_ms() == 0) return std::nullopt;
        continue;
      }
      char chunk[PIPE_BUF];
      ssize_t n = sys::retry_on_eintr([&] { return ::read(requests_.get(), chunk, sizeof chunk); });
      if (n > 0) pending_.append(chunk, static_cast<std::size_t>(n));
      if (pending_.size() > 64 * PIPE_BUF) pending_.clear();  // garbage without newlines
    }
  }

  PeerModel peer_model() const override { return PeerModel::concurrent; }
  std::string uri() const override { return uri_.str(); }

 private:
  // Removes the pairs "PATH.PID.N.c2s" and ".s2c" of clients whose process
  // is gone: killed before they could remove their own.
  void remove_pairs_of_gone_clients() {
    next_sweep_ = std::chrono::steady_clock::now() + kLeftoverSweepInterval;
    std::filesystem::path path(uri_.path);
    std::string directory = path.has_parent_path() ? path.parent_path().string() : ".";
    std::string prefix = path.filename().string() + ".";
    for (const std::string& name : directory_entries(directory)) {
      std::string_view rest;
      std::optional<pid_t> pid = pid_after(name, prefix, &rest);
      if (!pid || !(rest.ends_with(".c2s") || rest.ends_with(".s2c")) || !process_gone(*pid))
        continue;
      std::string node = directory + "/" + name;
      struct stat st {};
      if (::lstat(node.c_str(), &st) == 0 && S_ISFIFO(st.st_mode)) ::unlink(node.c_str());
    }
  }

  // Opens the pair a client announced. Only names "/path.<something without
  // a slash>" are accepted, so a request cannot point the server elsewhere.
  std::optional<Channel> open_client(std::string prefix) {
    const std::string base = uri_.path + ".";
    // Bytes someone wrote without a newline end up in front of the next
    // request; the request proper starts at the last mention of the base.
    if (auto at = prefix.rfind(base); at != std::string::npos && at > 0) prefix.erase(0, at);
    if (prefix.size() <= base.size() || prefix.compare(0, base.size(), base) != 0 ||
        prefix.find('/', base.size()) != std::string::npos)
      return std::nullopt;
    try {
      StreamEnds ends;
      ends.read = open_fifo_for_reading(prefix + ".c2s", FifoOpen::nonblocking);
      ends.write = open_writer_when_read(prefix + ".s2c", Deadline(kReplyOpenPatience));
      if (!ends.write) return std::nullopt;
      set_nonblocking(ends.write.get(), false);
      ends.poll_before_read = true;
      return Channel(std::make_unique<StreamTransport>(std::move(ends), uri_.str(),
                                                       settings_.max_message_size, settings_.raw,
                                                       options_.cancellation));
    } catch (const Error&) {
      return std::nullopt;  // the client vanished or named something that is not a FIFO
    }
  }

  Uri uri_;
  Settings settings_;
  ChannelOptions options_;
  Fifo requests_node_;
  FileDescriptor requests_;
  FileDescriptor keep_open_;
  std::string pending_;
  std::chrono::steady_clock::time_point next_sweep_;
};

}  // namespace

std::unique_ptr<Transport> connect_fifo(const Uri& uri, const Settings& settings,
                                        const ChannelOptions& options) {
  ignore_sigpipe();
  FileDescriptor requests;
  try {
    requests = open_fifo_for_writing(uri.path, FifoOpen::nonblocking);
  } catch (const SystemError& error) {
    if (error.code() == ENXIO)
      throw SystemError("connect", uri.str(), ENXIO,
                        "no server has this FIFO open: is the server running?");
    if (error.code() == ENOENT)
      throw SystemError("connect", uri.str(), ENOENT, "no such FIFO: is the server running?");
    throw;
  }
  std::string prefix =
      uri.path + "." + std::to_string(::getpid()) + "." + std::to_string(next_instance++);
  std::string request = prefix + "\n";
  if (request.size() > PIPE_BUF)
    throw InvalidUri("fifo: path '" + uri.path + "' is too long for an atomic connection request");

  StreamEnds ends;
  ends.nodes.push_back(create_replacing(prefix + ".c2s", settings.mode));
  ends.nodes.push_back(create_replacing(prefix + ".s2c", settings.mode));
  ends.read = open_fifo_for_reading(prefix + ".s2c", FifoOpen::nonblocking);
  ssize_t n =
      sys::retry_on_eintr([&] { return ::write(requests.get(), request.data(), request.size()); });
  if (n != static_cast<ssize_t>(request.size()))
    throw SystemError("write(connection request)", uri.str(), n < 0 ? errno : EAGAIN,
                      "the server's request FIFO is full or gone");
  ends.write = open_writer_when_read(prefix + ".c2s", Deadline(options.connect_timeout));
  if (!ends.write)
    throw SystemError("connect", uri.str(), ETIMEDOUT,
                      "the server did not accept the connection in time");
  set_nonblocking(ends.write.get(), false);
  ends.poll_before_read = true;
  return std::make_unique<StreamTransport>(std::move(ends), uri.str(), settings.max_message_size,
                                           settings.raw, options.cancellation);
}

std::unique_ptr<ListenerImpl> listen_fifo(const Uri& uri, const Settings& settings,
                                          const ChannelOptions& options) {
  return std::make_unique<FifoListener>(uri, settings, options);
}

}  // namespace conduit::ipc
