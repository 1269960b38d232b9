// Who runs a client channel's I/O: the thread that waits for a blocking
// call, or a thread of the channel's own.
//
// A channel used only through blocking calls has no thread of its own: the
// caller that waits runs the channel's io_context itself until its call is
// done (one caller at a time; the others wait for their answer or for their
// turn to run it). A call then costs no hand-over between threads: the
// caller writes its request and reads its answer itself, as a plain socket
// client does.
//
// The first asynchronous use (a call with a completion, a stream, the
// executor) starts the channel's own I/O thread, which takes over once the
// caller running the io_context has its answer; from then on blocking calls
// hand their work to that thread and wait.
//
// Either way the io_context is run by one thread at a time, so what runs on
// it needs no locks of its own.
#pragma once

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "conduit/rpc/status.hpp"
#include "rpc/waiter.hpp"

namespace conduit::rpc {

class IoDriver {
 public:
  IoDriver() = default;
  IoDriver(const IoDriver&) = delete;
  IoDriver& operator=(const IoDriver&) = delete;
  // REQUIRES: shut_down() has been called.
  ~IoDriver() = default;

  boost::asio::io_context& io() { return io_; }

  // Starts the I/O thread, if it has not started: before any asynchronous
  // operation whose completion nobody waits for. Thread-safe.
  void go_async() {
    std::call_once(started_, [this] {
      threaded_.store(true, std::memory_order_release);
      thread_ = std::thread([this] {
        io_thread_.store(std::this_thread::get_id(), std::memory_order_release);
        {
          std::unique_lock lock(mutex_);
          turn_.wait(lock, [this] { return !running_; });
          running_ = true;  // for good
        }
        io_.run();
      });
    });
  }

  // True on the I/O thread (a completion callback runs there).
  bool on_io_thread() const {
    return std::this_thread::get_id() == io_thread_.load(std::memory_order_acquire);
  }

  // Runs a blocking call: `begin(done)` starts it, and `done` is called on
  // the io_context with its result, which this returns.
  Status block(const std::function<void(std::function<void(Status)>)>& begin) {
    if (threaded_.load(std::memory_order_acquire)) {
      Waiter<Status> waiter;
      begin(waiter.setter());
      return waiter.wait();
    }
    auto blocked = std::make_shared<Blocked>();
    begin([this, blocked](Status status) {
      {
        std::lock_guard lock(mutex_);
        blocked->result = std::move(status);
        blocked->done.store(true, std::memory_order_release);
      }
      blocked->wake.notify_one();
    });
    std::unique_lock lock(mutex_);
    while (!blocked->result) {
      if (!running_ && !threaded_.load(std::memory_order_acquire)) {
        running_ = true;
        lock.unlock();
        while (!blocked->done.load(std::memory_order_acquire)) io_.run_one();
        lock.lock();
        running_ = false;
        // The next to run it: the I/O thread, or a caller still waiting.
        turn_.notify_one();
        for (Blocked* other : waiting_) {
          if (!other->result) {
            other->wake.notify_one();
            break;
          }
        }
      } else {
        waiting_.push_back(blocked.get());
        blocked->wake.wait(lock);
        std::erase(waiting_, blocked.get());
      }
    }
    return std::move(*blocked->result);
  }

  // Runs `last` on the io_context, then everything it leaves to do, and
  // stops: on the I/O thread if it started, else here.
  // REQUIRES: no call is running or waiting.
  template <typename Work>
  void shut_down(Work last) {
    boost::asio::post(io_, std::move(last));
    work_.reset();
    if (threaded_.load(std::memory_order_acquire))
      thread_.join();
    else
      io_.run();
  }

 private:
  struct Blocked {
    std::condition_variable wake;
    std::optional<Status> result;   // under mutex_
    std::atomic<bool> done{false};  // read by the caller running the io_context
  };

  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_ =
      boost::asio::make_work_guard(io_);
  std::once_flag started_;
  std::atomic<bool> threaded_{false};
  std::atomic<std::thread::id> io_thread_{};
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable turn_;   // the I/O thread waits for its turn
  bool running_ = false;           // someone runs the io_context (under mutex_)
  std::vector<Blocked*> waiting_;  // callers waiting (under mutex_)
};

}  // namespace conduit::rpc
