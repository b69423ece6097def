// WakeSignal: a process-wide "something a waiter may care about happened" signal. Commits,
// command-buffer completions, device close and device faults notify it; sleeping waiters (a
// reader's adaptive wait(), the poller thread) sleep on it with a timeout, so those events end
// their sleep at once instead of after a back-off step. A notify with nobody asleep costs one
// atomic add and one atomic load (no lock, no syscall): cheap enough for every commit.
//
// Why no wake-up is lost: notify() increments `seq_` and then loads `waiters_`; a sleeper
// increments `waiters_` and then loads `seq_` (under the mutex). All four are seq_cst, so in
// their single total order either the notifier's load sees the sleeper (it then takes the
// mutex, which the sleeper holds until it is blocked on the condition variable, and notifies)
// or the sleeper's load comes after the increment and it does not sleep at all. The notifier
// takes and releases the mutex before notify_all, not around it: a sleeper between its
// check and its block holds the mutex, so once the notifier got it every such sleeper is
// blocked and the notify reaches it; notifying after the unlock wakes sleepers without
// sending them straight into a mutex the notifier still holds (one more sleep and wake-up
// each, on the path of every commit -> reader wake-up).
// The signal carries no data: whoever wakes re-checks the state it waits for with that state's
// own memory orders (a channel's acquire loads), so a spurious or missed-by-timeout wake
// only changes when the check happens, never what it sees.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace fc {

class WakeSignal {
 public:
  using clock = std::chrono::steady_clock;
  // Read before checking the awaited state; pass it to sleep_until.
  uint64_t sequence() const { return seq_.load(std::memory_order_seq_cst); }
  void notify() {
    seq_.fetch_add(1, std::memory_order_seq_cst);
    if (waiters_.load(std::memory_order_seq_cst) != 0) {
      { std::lock_guard lock(mutex_); }
      cv_.notify_all();
    }
  }
  // Sleeps until the sequence differs from `seen` (true) or `until` passes (false).
  bool sleep_until(uint64_t seen, clock::time_point until) {
    std::unique_lock lock(mutex_);
    waiters_.fetch_add(1, std::memory_order_seq_cst);
    const bool signalled = cv_.wait_until(
        lock, until, [&] { return seq_.load(std::memory_order_seq_cst) != seen; });
    waiters_.fetch_sub(1, std::memory_order_seq_cst);
    return signalled;
  }

 private:
  std::atomic<uint64_t> seq_{0};
  std::atomic<uint32_t> waiters_{0};
  std::mutex mutex_;
  std::condition_variable cv_;
};

// The process's one signal (never destroyed: threads may use it during exit).
WakeSignal& wake_signal();

// Nanoseconds on the steady clock, for time stamps kept in atomics.
inline int64_t steady_now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace fc
