// The reader's idle strategies (wait_strategy.hpp says what each does and why the memory orders
// of the hints it reads are enough: it reads no channel data at all).
#include "channel/wait_strategy.hpp"

#include <algorithm>
#include <cmath>

#include "device/wake_signal.hpp"

#if defined(__linux__)
#include <sys/prctl.h>
#endif

namespace fc {

WakeSignal& wake_signal() {
  static WakeSignal* signal = new WakeSignal();  // never destroyed: used by threads at exit
  return *signal;
}

const char* wait_strategy_name(WaitStrategyKind kind) {
  switch (kind) {
    case WaitStrategyKind::Spin: return "spin";
    case WaitStrategyKind::Backoff: return "backoff";
    case WaitStrategyKind::Adaptive: return "adaptive";
  }
  return "?";
}

std::optional<WaitStrategyKind> parse_wait_strategy(std::string_view name) {
  if (name == "spin") return WaitStrategyKind::Spin;
  if (name == "backoff") return WaitStrategyKind::Backoff;
  if (name == "adaptive") return WaitStrategyKind::Adaptive;
  return std::nullopt;
}

void use_fine_timer_slack() {
#if defined(__linux__)
  thread_local bool done = false;
  if (!done) {
    prctl(PR_SET_TIMERSLACK, 1000UL);
    done = true;
  }
#endif
}

namespace {
constexpr double kAlpha = 1.0 / 8;  // weight of a new sample in the running means
using ns = std::chrono::nanoseconds;
ns to_ns(double v) { return ns(static_cast<int64_t>(v)); }
}  // namespace

void WaitStrategy::begin(clock::time_point now) {
  begin_ = now;
  handover_until_ = {};
  spins_ = 0;
  sleep_ = ns(20'000);
  backoff_ = kBackoffMin;
}

IdlePlan WaitStrategy::idle(clock::time_point now, clock::time_point last_commit) {
  switch (kind_) {
    case WaitStrategyKind::Spin: return {IdlePlan::Action::Spin};
    case WaitStrategyKind::Backoff: return backoff_plan(now);
    case WaitStrategyKind::Adaptive: break;
  }
  return adaptive_plan(now, last_commit);
}

IdlePlan WaitStrategy::backoff_plan(clock::time_point now) {
  // ~2k pause spins (a few microseconds: catches a device that is about to push), then yields
  // for ~50 us, then sleeps doubling from 20 us to 1 ms.
  if (spins_ < 2048) {
    ++spins_;
    return {IdlePlan::Action::Spin};
  }
  if (now - begin_ < ns(50'000)) return {IdlePlan::Action::Yield};
  IdlePlan plan{IdlePlan::Action::Sleep, now + sleep_};
  sleep_ = std::min<ns>(sleep_ * 2, ns(1'000'000));
  return plan;
}

std::optional<IdlePlan> WaitStrategy::predicted_plan(clock::time_point now, clock::time_point due,
                                                    ns spread, double budget_ns,
                                                    clock::time_point spin_until,
                                                    clock::time_point expected_by) const {
  // Sleep until `due` less the spread, the timed wake-up's lateness and a margin; spin until
  // `spin_until`; at most `budget_ns` of spinning (at least 2 margins, at most
  // kPredictMaxWindow), centred on `due` when the jitter asks for more.
  const ns oversleep = oversleep_margin();
  auto early = due - spread - oversleep - kPredictMargin;
  auto late = spin_until;
  const ns budget =
      std::min<ns>(std::max<ns>(to_ns(budget_ns), 2 * kPredictMargin), kPredictMaxWindow);
  if (late - early > budget) {  // too much jitter to spin through: centre a budget on `due`
    early = due - budget / 2 - oversleep;
    late = due + budget / 2;
  }
  if (now < early) return IdlePlan{IdlePlan::Action::Sleep, early, true, expected_by};
  if (now < late) return IdlePlan{IdlePlan::Action::Yield, late, true, expected_by};
  return std::nullopt;
}

IdlePlan WaitStrategy::adaptive_plan(clock::time_point now, clock::time_point last_commit) {
  if (now - begin_ < kFirstSpin) return {IdlePlan::Action::Spin};

  // Right after a commit on the reader's device: the work that pushes is starting. Spin
  // (yielding the core to the producer if it needs it) for about twice the learnt commit ->
  // item lag.
  // Only a commit newer than the last arrival: an older one's item was already seen.
  if (last_commit.time_since_epoch().count() != 0 && now >= last_commit &&
      last_commit > last_arrival_) {
    const ns window =
        commit_lag_known_
            ? std::clamp(to_ns(2 * commit_lag_ns_) + ns(20'000), kCommitWindowMin, kCommitWindowMax)
            : kCommitWindowDefault;
    if (now - last_commit < window) {
      return {IdlePlan::Action::Yield, last_commit + window, false, last_commit + window};
    }
  }

  // A learnt rate: sleep until shortly before the next item is due, then spin through the
  // window the jitter calls for, never more than ~1/8 of the period for items that arrive on
  // their own schedule (pushes from a long command buffer or a replayed graph), ~1/16 for
  // items that follow commits (the commit wakes the reader anyway; spinning just before it
  // only saves the wake-up).
  // Items that follow commits are predicted from the commits' own rhythm: due the learnt
  // commit -> item lag after the next commit is due (once that commit comes, the commit window
  // above takes over). An arrival-anchored prediction inherits each item's pick-up delay: one
  // item picked up late shifted the next item's window late too, so an on-time item found the
  // reader asleep (the tails came in pairs), and the pick-up jitter widened every window.
  if (commit_driven_ >= 0.5 && commits_.known()) {
    const auto due = prev_commit_ + to_ns(commits_.mean_ns) + to_ns(commit_lag_ns_);
    const ns spread = to_ns(3 * commits_.jitter_ns);
    const auto expected_by = due + spread + kPredictLate;
    if (auto plan = predicted_plan(now, due, spread, commits_.mean_ns / 16, expected_by,
                                   expected_by)) {
      return *plan;
    }
  } else if (arrivals_.known()) {
    const auto due = last_arrival_ + to_ns(arrivals_.mean_ns);
    const ns spread = to_ns(3 * arrivals_.jitter_ns);
    // The latest the item is expected: a waiter the poller hands this wait over to waits
    // until then (sleeping past the spin window below; a commit still wakes it).
    const auto expected_by = due + spread + kPredictLate;
    const double share = commit_driven_ < 0.5 ? 1.0 / 8 : 1.0 / 16;
    if (auto plan = predicted_plan(now, due, spread, arrivals_.mean_ns * share, expected_by,
                                   expected_by)) {
      return *plan;
    }
  }

  // Nothing expected soon: sleep with a growing step; commits, completions, close and faults
  // end the sleep early (the WakeSignal).
  // After kIdleAfter with nothing, the step grows to kIdleMax: an idle reader then checks ~100
  // times a second (pushes without a commit, e.g. a replayed CUDA graph, are seen that late
  // only while the strategy has no rate learnt for them).
  IdlePlan plan{IdlePlan::Action::Sleep, now + backoff_};
  const ns cap = now - begin_ > kIdleAfter ? kIdleMax : kBackoffMax;
  backoff_ = std::min<ns>(backoff_ * 2, cap);
  return plan;
}

void WaitStrategy::Rhythm::learn(double gap_ns) {
  if (known() && gap_ns > 16 * mean_ns) {
    samples = 0;
  } else if (samples == 0) {
    mean_ns = gap_ns;
    jitter_ns = gap_ns / 4;
    samples = 1;
  } else {
    jitter_ns += kAlpha * (std::fabs(gap_ns - mean_ns) - jitter_ns);
    mean_ns += kAlpha * (gap_ns - mean_ns);
    ++samples;
  }
}

void WaitStrategy::arrived(clock::time_point now, clock::time_point last_commit) {
  const bool had_arrival = last_arrival_.time_since_epoch().count() != 0;
  if (had_arrival && now > last_arrival_) {
    arrivals_.learn(static_cast<double>(ns(now - last_arrival_).count()));
  }
  // Commit-driven: a commit came after the previous arrival and shortly before this one.
  const bool has_commit = last_commit.time_since_epoch().count() != 0;
  const bool driven = has_commit && now >= last_commit &&
                      (!had_arrival || last_commit >= last_arrival_) &&
                      now - last_commit <= 2 * kCommitWindowMax;
  commit_driven_ += kAlpha * ((driven ? 1.0 : 0.0) - commit_driven_);
  if (driven) {
    const double lag = static_cast<double>(ns(now - last_commit).count());
    commit_lag_ns_ = commit_lag_known_ ? commit_lag_ns_ + kAlpha * (lag - commit_lag_ns_) : lag;
    commit_lag_known_ = true;
    // The commits' rhythm: gaps between the commits that drove consecutive items.
    if (prev_commit_.time_since_epoch().count() != 0 && last_commit > prev_commit_) {
      commits_.learn(static_cast<double>(ns(last_commit - prev_commit_).count()));
    }
    prev_commit_ = last_commit;
  }
  last_arrival_ = now;
  backoff_ = kBackoffMin;
}

void WaitStrategy::hand_over(clock::time_point due, clock::time_point until) {
  handover_at_ = due;
  handover_until_ = until;
}

bool WaitStrategy::take_handover(clock::time_point now) {
  const bool taken = handover_until_.time_since_epoch().count() != 0 &&
                     now <= handover_until_ + kHandoverStale;
  if (taken) {
    // How long the waiter took to start continuing (its thread's wake-up, an event loop's
    // turn): the poller hands over that much, plus its spread, before a predicted window
    // opens (a waiter that comes late sees the item late; one that comes early sleeps).
    const double lag = std::clamp<double>(static_cast<double>(ns(now - handover_at_).count()),
                                          0.0, static_cast<double>(kHandoverLeadMax.count()));
    handover_lag_dev_ns_ += kAlpha * (std::fabs(lag - handover_lag_ns_) - handover_lag_dev_ns_);
    handover_lag_ns_ += kAlpha * (lag - handover_lag_ns_);
    handover_lag_peak_ns_ = std::max(lag, handover_lag_peak_ns_ * kPeakDecay);
  }
  handover_until_ = {};
  return taken;
}

void WaitStrategy::slept(clock::time_point planned, clock::time_point woke) {
  const double over = std::clamp<double>(static_cast<double>(ns(woke - planned).count()), 0.0,
                                         500'000.0);
  oversleep_dev_ns_ += kAlpha * (std::fabs(over - oversleep_ns_) - oversleep_dev_ns_);
  oversleep_ns_ += kAlpha * (over - oversleep_ns_);
}

}  // namespace fc
