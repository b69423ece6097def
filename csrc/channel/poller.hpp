// Poller: one thread per process that waits for many readers at once (hundreds of streams of a
// server on one asyncio loop: one thread, not one per stream). A waiter arms a reader with a
// target; the poller checks every armed reader (Pollable::probe: a u32 or a record reader), idles as the
// readers' wait strategies allow (the earliest Sleep of all of them, spinning when any wants
// to spin), sleeps on the process WakeSignal (commits, completions, close, faults, arms end
// the sleep), and hands each finished wait (Ready, Closed, Timeout, or an error such as
// DeviceClosedError) to its target exactly once, then forgets the reader.
//
// Hand-over: when a reader's strategy spins through a window in which its item is due (a
// commit just happened, or a learnt rate expects the item; IdlePlan::until ends it) and its
// target accepts, the poller completes the wait early with `handover_until` set instead of
// spinning itself: the waiter's thread wakes while the device is still producing and finishes
// the wait in place (a bounded wait on its own thread), so the item is not delayed by the
// poller -> waiter wake-up after it lands. An asyncio loop with a single awaited reader
// accepts (it then waits at most Pollable::kHandoverMax, GIL released); with more, it does
// not, and the poller spins or sleeps for them as before.
//
// It never touches Python: the asyncio binding's target (FdTarget) only queues the completion
// and writes an eventfd that the event loop watches (loop.add_reader), so the poller never
// waits for the GIL (a Python launch loop holding it cannot delay the other streams) and never
// meets a finalising interpreter.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "channel/pollable.hpp"
#include "channel/reader.hpp"  // WaitResult

namespace fc {

struct PollCompletion {
  uint64_t id = 0;
  WaitResult result = WaitResult::Timeout;  // Ready, Closed or Timeout (when error is null)
  std::exception_ptr error;
  // Set (not the epoch) when the wait was handed over: nothing is readable yet, an item is
  // expected by then; `result` is Timeout and means nothing.
  std::chrono::steady_clock::time_point handover_until{};
};

class PollerTarget {
 public:
  virtual ~PollerTarget() = default;
  // On the poller thread, with no poller lock held; must return quickly.
  virtual void complete(PollCompletion completion) = 0;
  // Whether a wait may be handed over to the waiter now (on the poller thread; a hint).
  virtual bool accepts_handover() const { return false; }
};

class Poller {
 public:
  static Poller& instance();  // the process's poller (never destroyed)
  Poller() = default;
  ~Poller();
  Poller(const Poller&) = delete;
  Poller& operator=(const Poller&) = delete;

  // Waits for `reader` (timeout_s < 0: forever); the target gets one completion with the
  // returned id, unless disarm(id) returned true first. Starts the thread if needed.
  uint64_t arm(std::shared_ptr<Pollable> reader, double timeout_s,
               std::shared_ptr<PollerTarget> target);
  // True if the wait was still armed: then its target is never called for it. False if it
  // already completed (the completion may be in flight: targets must ignore unknown ids).
  bool disarm(uint64_t id);
  // Ends the thread and drops every armed wait without completing it (process exit). A later
  // arm() starts a new thread.
  void shutdown();

  struct Stats {
    size_t armed = 0;
    uint64_t rounds = 0;       // passes over the armed readers
    uint64_t completions = 0;
    uint64_t handovers = 0;    // completions that handed a wait over (no item yet)
    uint32_t threads_started = 0;
    bool running = false;
  };
  Stats stats() const;

 private:
  struct Entry {
    uint64_t id;
    std::shared_ptr<Pollable> reader;
    std::shared_ptr<PollerTarget> target;
    std::chrono::steady_clock::time_point deadline;
    std::chrono::steady_clock::time_point planned{};  // when its last probe asked to look again
    bool first = true;
  };
  void run();

  mutable std::mutex mutex_;
  std::condition_variable cv_;  // entries added or stop requested, while idle with none armed
  std::vector<Entry> entries_;
  std::thread thread_;
  bool running_ = false;
  bool stopping_ = false;
  uint64_t next_id_ = 1;
  uint64_t rounds_ = 0;
  uint64_t completions_ = 0;
  uint64_t handovers_ = 0;
  uint32_t threads_started_ = 0;
};

// A target for event loops: completions are queued and an fd (eventfd on Linux, a pipe
// elsewhere) becomes readable; the loop's thread calls take().
class FdTarget final : public PollerTarget {
 public:
  FdTarget();  // std::system_error if no fd can be made
  ~FdTarget() override;
  int fd() const { return read_fd_; }
  void complete(PollCompletion completion) override;
  // Clears the fd and moves the queued completions into `out` (appended).
  void take(std::vector<PollCompletion>& out);
  // The owner (on its loop's thread) says whether it accepts hand-overs: while it has a
  // single wait armed. Relaxed: a hint the poller reads, ordering nothing (a stale value costs
  // one bounded in-place wait or one missed hand-over, never an item).
  void set_accepts_handover(bool accepts) { accepts_.store(accepts, std::memory_order_relaxed); }
  bool accepts_handover() const override { return accepts_.load(std::memory_order_relaxed); }

 private:
  std::atomic<bool> accepts_{false};
  int read_fd_ = -1;
  int write_fd_ = -1;
  std::mutex mutex_;
  std::vector<PollCompletion> done_;
};

}  // namespace fc
