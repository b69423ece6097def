// How a reader waits for the next item: the idle strategies of a channel reader (the Aeron
// idle-strategy idea). A strategy never looks at the channel: the caller checks the ring, and
// when nothing is readable asks the strategy what to do until the next check (spin, yield the
// core, or sleep until a time point). One strategy object per reader, used by whoever waits on
// that reader (its thread's wait(), or the poller thread), never by two at once (the reader's
// single-consumer flag serialises them). Fixed-size state, no allocation.
//
//   spin      pause-spins between checks: the lowest latency, one core busy while waiting.
//   backoff   the pre-0.2 behaviour: ~2k pause spins, yields for 50 us, then plain sleeps
//             doubling from 20 us to 1 ms (a push is seen up to ~1 ms late).
//   adaptive  (default) learns the inter-arrival time and its jitter, sleeps until just before
//             the next item is due, then spins briefly; spins for a while right after a
//             command buffer is committed on the reader's device (the work that will push),
//             learning how long after a commit items arrive; otherwise sleeps, woken early by
//             commits, completions, device close and faults (device/wake_signal.hpp).
//
// Memory orders: the only shared inputs are the device's last-commit time stamp (a relaxed
// atomic load: a hint, its value orders nothing) and the WakeSignal (seq_cst, see its header).
// Neither publishes channel data: after any wake the caller re-reads the ring with the
// reader's acquire loads (docs/protocol.md), so a stale hint can only make a wait spin or
// sleep a little longer or shorter, never deliver a wrong or missing item.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

namespace fc {

enum class WaitStrategyKind : uint8_t { Spin, Backoff, Adaptive };

const char* wait_strategy_name(WaitStrategyKind kind);
std::optional<WaitStrategyKind> parse_wait_strategy(std::string_view name);

// Makes the calling thread's timed sleeps end when planned (Linux: a timer slack of 1 us
// instead of the default 50 us, which made a planned wake-up up to 50 us late at random);
// once per thread, before its first timed sleep. No-op elsewhere.
void use_fine_timer_slack();

struct IdlePlan {
  enum class Action : uint8_t { Spin, Yield, Sleep };
  Action action;
  // Sleep: wake by then (a signal may end it earlier). Yield: where set, when the window it
  // spins through ends.
  std::chrono::steady_clock::time_point until{};
  // A spin (Yield) through the window in which a learnt rate expects the next item: the
  // poller, serving many readers, sleeps through such windows instead (it must not spin for
  // hundreds of streams; their commits still wake it).
  bool predicted = false;
  // Where set (adaptive's windows): the latest the item is expected (a commit window's end;
  // for a learnt rate, the due time plus the jitter, which can lie past the spin window).
  std::chrono::steady_clock::time_point window_end{};
  // The poller's hand-over (poller.hpp): in, whether the waiter would take the wait over
  // (probe_once reads it); out, whether it was handed over.
  bool may_hand_over = false;
  bool handed_over = false;
  // In (the poller): when it planned this look (its last plan's `until` for this wait; the
  // epoch for a first look). A hand-over made later than planned is dated from when it was due
  // (the later of the two), so the lead the strategy learns covers the poller's own late
  // wake-ups as well as the waiter's take-up.
  std::chrono::steady_clock::time_point planned{};
};

class WaitStrategy {
 public:
  using clock = std::chrono::steady_clock;
  using ns = std::chrono::nanoseconds;

  explicit WaitStrategy(WaitStrategyKind kind = WaitStrategyKind::Adaptive) : kind_(kind) {}
  WaitStrategyKind kind() const { return kind_; }
  void set_kind(WaitStrategyKind kind) { kind_ = kind; }
  // Whether a Sleep may end early on the process WakeSignal (backoff sleeps plainly).
  bool wakes_on_signal() const { return kind_ != WaitStrategyKind::Backoff; }

  // A wait starts (nothing was readable at its first check).
  void begin(clock::time_point now);
  // Nothing readable at `now`; `last_commit` is the reader's device's last commit (or the
  // epoch when none). What to do until the next check.
  IdlePlan idle(clock::time_point now, clock::time_point last_commit);
  // An item became readable at `now` during a wait: learn from it.
  void arrived(clock::time_point now, clock::time_point last_commit);
  // A Sleep planned until `planned` ended at `woke` without a signal: learn the overshoot.
  void slept(clock::time_point planned, clock::time_point woke);
  // The poller handed this wait over to the waiter's thread, due at `due` (at most now), its
  // window ending at `until`.
  void hand_over(clock::time_point due, clock::time_point until);
  // Whether a wait starting at `now` continues a handed-over one (then it begins nothing, and
  // an item its first check finds counts as an arrival); learns how long the waiter took to
  // take it up. Once; a hand-over nobody took up within kHandoverStale (a cancelled await) is
  // forgotten.
  bool take_handover(clock::time_point now);
  // How long before a predicted window opens the poller hands its wait over: enough for the
  // waiter's slow take-ups, not its average one (a take-up that comes after the item lands
  // costs the item the whole take-up): the larger of the learnt lag plus three times its mean
  // deviation and the recent peak lag (which decays by kPeakDecay per take-up), at most
  // kHandoverLeadMax.
  ns handover_lead() const {
    return std::min<ns>(
        to_ns_(std::max(handover_lag_ns_ + 3 * handover_lag_dev_ns_, handover_lag_peak_ns_)),
        kHandoverLeadMax);
  }
  // How early a predicted sleep ends, for the timed wake-up's lateness: the learnt mean
  // overshoot plus three times its mean deviation (a wake-up that is late by its tail, not by
  // its mean, still comes before the window opens), at most kOversleepMarginMax.
  ns oversleep_margin() const {
    return std::min<ns>(to_ns_(oversleep_ns_ + 3 * oversleep_dev_ns_), kOversleepMarginMax);
  }

  // What the adaptive strategy learnt (tests, benchmarks): seconds; 0 while unknown.
  double mean_gap_s() const { return arrivals_.samples ? arrivals_.mean_ns * 1e-9 : 0.0; }
  double jitter_s() const { return arrivals_.samples ? arrivals_.jitter_ns * 1e-9 : 0.0; }
  double commit_lag_s() const { return commit_lag_ns_ * 1e-9; }
  double commit_driven() const { return commit_driven_; }
  // The learnt gap between the commits that drove items (0 while unknown).
  double commit_gap_s() const { return commits_.known() ? commits_.mean_ns * 1e-9 : 0.0; }
  uint32_t samples() const { return arrivals_.samples; }

  // Tunables (documented in README.md's table).
  static constexpr ns kFirstSpin{2'000};            // pause-spin at the start of every wait
  static constexpr ns kCommitWindowDefault{200'000};  // spin after a commit, before learning
  static constexpr ns kCommitWindowMin{30'000};
  static constexpr ns kCommitWindowMax{1'000'000};
  static constexpr ns kBackoffMin{50'000};
  static constexpr ns kBackoffMax{1'000'000};       // sleep steps while recently active ...
  static constexpr ns kIdleAfter{50'000'000};       // ... and after 50 ms with nothing,
  static constexpr ns kIdleMax{10'000'000};         // up to 10 ms (signals still end them)
  static constexpr ns kPredictMargin{30'000};       // wake this much before the due time ...
  static constexpr ns kPredictLate{50'000};         // ... and spin until this much after it
  static constexpr ns kPredictMaxWindow{300'000};   // the longest predicted spin
  static constexpr ns kHandoverStale{10'000'000};
  // A waiter's take-up can take a few hundred microseconds at its tail (an event loop asleep
  // in epoll on an idle vCPU): hand over up to this much before a window. Bounded with the
  // in-place wait by Pollable::kHandoverMax.
  static constexpr ns kHandoverLeadMax{700'000};
  static constexpr double kPeakDecay = 0.95;        // per take-up: ~45 take-ups to fade 10x
  static constexpr ns kOversleepMarginMax{100'000};

 private:
  IdlePlan backoff_plan(clock::time_point now);
  std::optional<IdlePlan> predicted_plan(clock::time_point now, clock::time_point due, ns spread,
                                         double budget_ns, clock::time_point spin_until,
                                         clock::time_point expected_by) const;
  IdlePlan adaptive_plan(clock::time_point now, clock::time_point last_commit);

  WaitStrategyKind kind_;
  clock::time_point begin_{};
  // backoff
  uint32_t spins_ = 0;
  ns sleep_{20'000};
  // adaptive: exponentially weighted (1/8) mean and mean absolute deviation of the gaps
  // between arrivals; how often an arrival followed a commit, and how long after it.
  clock::time_point last_arrival_{};
  // The gaps of a rhythm: exponentially weighted (1/8) mean and mean absolute deviation.
  struct Rhythm {
    double mean_ns = 0;
    double jitter_ns = 0;
    uint32_t samples = 0;
    bool known() const { return samples >= 3; }
    // One more gap; a gap of more than 16 means (a pause: a new request, a stalled
    // producer) starts learning again.
    void learn(double gap_ns);
  };
  Rhythm arrivals_;
  double commit_driven_ = 0;
  double commit_lag_ns_ = 0;
  bool commit_lag_known_ = false;
  // the rhythm of the commits that drove items (mean and mean absolute deviation of their gaps)
  clock::time_point prev_commit_{};
  Rhythm commits_;
  double oversleep_ns_ = 60'000;  // a timed sleep ends this much late (learnt) ...
  double oversleep_dev_ns_ = 10'000;  // ... give or take this (mean absolute deviation)
  ns backoff_{kBackoffMin};
  // hand-over: set by hand_over(), cleared by begin() and take_handover()
  clock::time_point handover_at_{};
  clock::time_point handover_until_{};
  double handover_lag_ns_ = 50'000;
  double handover_lag_dev_ns_ = 10'000;
  double handover_lag_peak_ns_ = 0;  // the slowest recent take-up, decaying
  static ns to_ns_(double v) { return ns(static_cast<int64_t>(v)); }
};

}  // namespace fc
