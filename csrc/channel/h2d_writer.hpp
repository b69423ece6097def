// H2DWriter: the CPU side of a host-to-device channel, its single producer (docs/protocol.md
// "Host-to-device channels"). It never overwrites an item the device has not taken: when the
// ring is full it waits for room (bounded by a timeout; timeout 0 raises at once). Nothing here
// allocates; waits spin briefly, then yield, then sleep with a growing step (a kernel cannot
// wake a CPU thread: the writer polls the device's count READ_IDX).
//
// Every call takes the writer for its duration: two threads pushing at once get
// ConcurrentUseError (one producer per channel).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>

namespace fc {

class H2DChannel;

class H2DWriter {
 public:
  explicit H2DWriter(H2DChannel& channel) : channel_(channel) {}
  H2DWriter(const H2DWriter&) = delete;
  H2DWriter& operator=(const H2DWriter&) = delete;

  // Pushes one item (the channel's record_words words) if there is room now and the
  // channel's newest init has run; false otherwise (never waits). Throws ChannelError when the
  // channel is closed or was never initialised.
  bool try_push(const uint32_t* words);
  // Pushes one item, waiting up to timeout_s for room (< 0: no limit; 0: no wait at all).
  // TimeoutError when there is none in time; `interrupted` (Python's Ctrl-C check, may be
  // empty) is polled while waiting.
  void push(const uint32_t* words, double timeout_s, const std::function<bool()>& interrupted);
  // Pushes `count` items (count * record_words words), as many at a time as there is room
  // for, within one overall timeout. TimeoutError says how many were pushed.
  void push_many(const uint32_t* words, size_t count, double timeout_s,
                 const std::function<bool()>& interrupted);
  // No more items in this epoch: a pop that finds the channel empty ends (got 0). Waits, like
  // a push, for the newest init to have run. A second close is a no-op.
  void close(double timeout_s, const std::function<bool()>& interrupted);

  // Items pushed in the current epoch (as far as this writer knows).
  uint64_t pushed() const { return written_.load(std::memory_order_relaxed); }
  // Items the device has taken in the current epoch (its READ_IDX, extended to 64 bits).
  uint64_t taken() const;
  bool closed() const { return closed_.load(std::memory_order_relaxed); }

 private:
  class Hold;  // the single-producer guard
  // True once the newest encoded init has run; starts the writer's new epoch when one has.
  bool epoch_ready();
  uint32_t room() const;
  void write_item(const uint32_t* words);
  // Waits until ready() or the deadline; throws TimeoutError with `describe_timeout()`.
  template <class Ready, class Describe>
  void wait_until(Ready&& ready, double timeout_s, const std::function<bool()>& interrupted,
                  Describe&& describe_timeout);

  H2DChannel& channel_;
  std::atomic_flag busy_ = ATOMIC_FLAG_INIT;
  // Only the producer writes these (under busy_); atomics so that pushed()/closed() may be
  // read from any thread.
  std::atomic<uint64_t> written_{0};
  std::atomic<bool> closed_{false};
  uint32_t device_epoch_ = 0;  // the EPOCH value the current epoch started at (0: none yet)
};

}  // namespace fc
