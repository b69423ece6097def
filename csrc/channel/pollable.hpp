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
  // `plan.may_hand_over` set on the way in, a Pending probe whose strategy spins through a
  // window of kHandoverMin..kHandoverMax in which the item is due hands the wait over
  // (`plan.handed_over`, window end `plan.until`): the waiter's next wait() continues it.
  virtual Probe probe(bool first, IdlePlan& plan, std::exception_ptr& error) = 0;

  // The shortest and the longest window handed over (shorter: the waiter would wake after it
  // ended; longer: the poller spins until this much is left).
  static constexpr std::chrono::microseconds kHandoverMin{15};
  static constexpr std::chrono::microseconds kHandoverMax{300};
};

}  // namespace fc
