// Pollable: what the poller thread (poller.hpp) needs of a reader, whatever it reads (u32
// items, records): one non-blocking check that also says how to idle until the next one.
#pragma once

#include <chrono>
#include <exception>

#include "channel/wait_strategy.hpp"

namespace fc {

class Pollable {
 public:
  // Busy: its owner is reading it now (look again shortly). Pending: nothing yet, `plan` says
  // when to look again. Ready / Closed: as for wait(). Error: `error` holds why (a closed or
  // faulted device, a re-init).
  enum class Probe { Busy, Pending, Ready, Closed, Error };
  virtual ~Pollable() = default;
  // `first`: the first check of this wait (starts the reader's wait strategy). With
  // `plan.may_hand_over` set on the way in, a Pending probe whose strategy expects the item
  // soon (in a commit window, or from the hand-over lead before a learnt rate's spin window
  // until the item is expected at the latest) hands the wait over (`plan.handed_over`): the
  // waiter's next wait() continues it until `plan.until`, at most kHandoverMax from now.
  virtual Probe probe(bool first, IdlePlan& plan, std::exception_ptr& error) = 0;

  // The shortest and the longest wait handed over (shorter: the waiter would wake after it
  // ended; longer: cut to this, so an event loop is never blocked longer). 1 ms: the lead
  // (WaitStrategy::kHandoverLeadMax) plus a window; asyncio's own timers fire up to 1 ms late
  // (epoll's millisecond timeout), so a loop blocked this long is within its usual timing.
  static constexpr std::chrono::microseconds kHandoverMin{15};
  static constexpr std::chrono::microseconds kHandoverMax{1000};
};

}  // namespace fc
