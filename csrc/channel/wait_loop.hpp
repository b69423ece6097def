// The blocking wait every reader kind shares: check, then idle as the reader's WaitStrategy
// plans (spin, yield, or sleep on the process WakeSignal), until an item is readable, the
// channel is closed and drained, a command buffer finished, the deadline passed, or a Python
// signal handler raised. The reader supplies what "readable" and "closed" mean; everything
// about timing lives here (and in wait_strategy.hpp).
#pragma once

#include <atomic>
#include <chrono>
#include <exception>
#include <functional>
#include <thread>

#include "channel/pollable.hpp"
#include "channel/wait_strategy.hpp"
#include "device/deadline.hpp"
#include "device/device.hpp"
#include "device/wake_signal.hpp"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define FC_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define FC_CPU_RELAX() asm volatile("yield" ::: "memory")
#else
#define FC_CPU_RELAX() ((void)0)
#endif

namespace fc {

enum class WaitResult;  // reader.hpp

// The device's last commit as a steady_clock time point (the adaptive strategy's cue).
inline std::chrono::steady_clock::time_point commit_time(const Device& device) {
  return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(device.last_commit_ns()));
}

// `usable()` throws when the reader or its device cannot be read; `ready()` is true when the
// next read returns an item; `closed()` when the channel is closed and drained.
template <class Usable, class Ready, class Closed>
WaitResult wait_loop(WaitStrategy& strategy, const Device& device, double timeout_s,
                     const std::function<bool()>& interrupted, const CommandBuffer* until,
                     Usable&& usable, Ready&& ready, Closed&& closed) {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  const auto deadline = deadline_after(timeout_s);
  WakeSignal& signal = wake_signal();
  auto last_interrupt_check = start;
  // A wait the poller handed over continues: no new begin(), and an item seen at the first
  // check arrived while it waited.
  bool first = !strategy.take_handover(start);
  for (;;) {
    // Read before the checks: a commit, completion, close or fault after them ends the sleep.
    const uint64_t seen = signal.sequence();
    usable();
    if (ready()) {
      if (!first) strategy.arrived(clock::now(), commit_time(device));
      return WaitResult::Ready;
    }
    if (closed()) return WaitResult::Closed;
    if (until) {
      auto s = until->status();
      if (s == CommandBufferStatus::Completed || s == CommandBufferStatus::Error) {
        return WaitResult::Finished;
      }
    }
    auto now = clock::now();
    if (first) {
      strategy.begin(now);
      first = false;
    }
    if (now >= deadline) return WaitResult::Timeout;
    if (interrupted && now - last_interrupt_check > std::chrono::milliseconds(1)) {
      last_interrupt_check = now;
      if (interrupted()) throw InterruptedError();
    }
    const IdlePlan plan = strategy.idle(now, commit_time(device));
    switch (plan.action) {
      case IdlePlan::Action::Spin:
        for (int i = 0; i < 8; ++i) FC_CPU_RELAX();
        break;
      case IdlePlan::Action::Yield:
        std::this_thread::yield();
        break;
      case IdlePlan::Action::Sleep: {
        // Never past the deadline; with an interrupt check, wake for it about every 20 ms at
        // most (Ctrl-C), however far ahead the strategy would sleep.
        auto wake = std::min(plan.until, deadline);
        if (interrupted) wake = std::min(wake, now + std::chrono::milliseconds(20));
        use_fine_timer_slack();
        if (strategy.wakes_on_signal()) {
          if (!signal.sleep_until(seen, wake)) strategy.slept(wake, clock::now());
        } else {
          std::this_thread::sleep_until(wake);
        }
        break;
      }
    }
  }
}

// The poller's one check of a reader (Pollable::probe), with the same three callables as
// wait_loop: never throws (Error carries the exception) and never blocks on the reader's owner
// (Busy while another thread holds `busy`).
template <class Usable, class Ready, class Closed>
Pollable::Probe probe_once(std::atomic_flag& busy, WaitStrategy& strategy, const Device& device,
                           bool first, IdlePlan& plan, std::exception_ptr& error,
                           Usable&& usable, Ready&& ready, Closed&& closed) {
  using Probe = Pollable::Probe;
  if (busy.test_and_set(std::memory_order_acquire)) return Probe::Busy;
  struct Release {
    std::atomic_flag& flag;
    ~Release() { flag.clear(std::memory_order_release); }
  } release{busy};
  using clock = std::chrono::steady_clock;
  try {
    usable();
    if (ready()) {
      if (!first) strategy.arrived(clock::now(), commit_time(device));
      return Probe::Ready;
    }
    if (closed()) return Probe::Closed;
    const auto now = clock::now();
    if (first) strategy.begin(now);
    const IdlePlan plan_in = plan;
    const bool may_hand_over = plan.may_hand_over;
    plan = strategy.idle(now, commit_time(device));
    if (may_hand_over && plan.window_end.time_since_epoch().count() != 0) {
      // Hand over inside a window, or the learnt lead before a predicted one opens (the
      // waiter's thread takes about that long to start); the waiter blocks for at most
      // kHandoverMax (a longer wait is handed over again if the window still holds).
      const auto from = plan.action == IdlePlan::Action::Sleep
                            ? plan.until - strategy.handover_lead()
                            : now;
      const auto until = std::min<clock::time_point>(plan.window_end, now + Pollable::kHandoverMax);
      if (now >= from && until - now >= Pollable::kHandoverMin) {
        // Due at `from` if the poller planned to look then and looked late (its wake-up
        // lateness then counts in the learnt lead); else now (a commit window, a first look).
        const bool late_look = !first && plan_in.planned.time_since_epoch().count() != 0 &&
                               plan_in.planned <= now && from <= now;
        const auto due = late_look ? std::max(from, plan_in.planned) : now;
        strategy.hand_over(due, until);  // under the busy flag: the waiter's wait() sees it
        plan.until = until;
        plan.handed_over = true;
      } else if (plan.action == IdlePlan::Action::Sleep && from > now) {
        plan.until = std::min(plan.until, from);  // look again when the lead begins
      }
    }
    return Probe::Pending;
  } catch (...) {
    error = std::current_exception();
    return Probe::Error;
  }
}

}  // namespace fc
