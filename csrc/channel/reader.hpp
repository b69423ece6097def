// ChannelU32Reader: the CPU side of a device-to-host channel. Single consumer per channel
// (ChannelU32::reader() hands out the channel's one reader); lock-free and allocation-free once
// constructed. The protocol it implements is docs/protocol.md.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>

#include "channel/channel.hpp"
#include "channel/channel_cursor.hpp"
#include "channel/pollable.hpp"
#include "channel/wait_strategy.hpp"

namespace fc {

// Ready: an item is readable (the next read returns it). Closed: closed and drained.
// Timeout. Finished: the command buffer given to wait() completed or failed (a runner's cue to
// retire a window).
enum class WaitResult { Ready, Closed, Timeout, Finished };

class ChannelU32Reader : public Pollable {
 public:
  struct Key {};  // only ChannelU32::reader() constructs readers
  ChannelU32Reader(std::shared_ptr<ChannelU32> channel, Key);
  ~ChannelU32Reader();
  ChannelU32Reader(const ChannelU32Reader&) = delete;
  ChannelU32Reader& operator=(const ChannelU32Reader&) = delete;

  // Copies up to `capacity` available items into `out` and returns how many. Never blocks.
  size_t drain_into(uint32_t* out, size_t capacity);
  // The next item, or nullopt when none is available now.
  std::optional<uint32_t> try_next();
  // Blocks until an item is readable (Ready: the next try_next/drain_into returns it), the
  // channel is closed and drained (Closed), or the timeout passes (Timeout; timeout_s < 0 or
  // infinite waits forever). Between checks it idles as the reader's wait strategy says
  // (wait_strategy.hpp: spin, backoff, adaptive). `interrupted` is polled about every
  // millisecond once idle (Python: signal check); when it returns true the wait throws
  // InterruptedError. With `until`, the wait also ends (Finished) when that command buffer
  // completes or fails.
  WaitResult wait(double timeout_s, const std::function<bool()>& interrupted = {},
                  const CommandBuffer* until = nullptr);
  // Moves past every item published so far in the current epoch without delivering them (not
  // counted as dropped); returns how many. 0 while the awaited init has not run yet.
  uint64_t skip_to_end();
  // Ends this reader: later calls raise ChannelError, and ChannelU32::reader() makes a new one
  // that continues at this reader's position. Idempotent.
  void close();
  bool closed() const { return closed_; }

  // Items skipped because the producer overwrote them before they were read.
  uint64_t dropped() const { return dropped_; }
  // Items handed to the caller so far.
  uint64_t delivered() const { return delivered_; }
  // Index (64-bit count in this epoch) of the item try_next() returned last: a consumer of
  // multi-item messages (byte strings) sees a gap where items were dropped.
  uint64_t last_index() const { return last_index_; }
  // Index (64-bit count in this epoch) of the next item this reader will return.
  uint64_t position() const {
    return cache_pos_ != cache_len_ ? cache_index_[cache_pos_] : cursor_.index();
  }
  // Items readable now without blocking (including the reader's small read-ahead cache): a
  // hint, counting published items whose slot may not be visible yet and items that will turn
  // out to be dropped.
  uint64_t available();
  // The producer marked the channel closed and every item was read or counted as dropped.
  bool exhausted();
  const std::shared_ptr<ChannelU32>& channel() const { return channel_; }
  // The slot protocol of the run this reader is attached to (1 or 2, read from the header's
  // FLAGS when it attaches; docs/protocol.md).
  uint32_t slot_protocol() const { return cursor_.slot_protocol(); }

  // How wait() (and the poller, for an armed reader) idles between checks.
  WaitStrategyKind wait_strategy() const { return strategy_.kind(); }
  void set_wait_strategy(WaitStrategyKind kind);
  const WaitStrategy& strategy_state() const { return strategy_; }

  // One non-blocking check for the poller thread (channel/poller.hpp): never throws and never
  // raises ConcurrentUseError: Busy when another thread is using the reader right now.
  // Ready / Closed as for wait(); Pending with `plan` saying when to check again; Error with
  // `error` set (device closed or faulted, channel re-initialised: the caller re-raises it by
  // reading). `first` starts a new wait for the strategy.
  Probe probe(bool first, IdlePlan& plan, std::exception_ptr& error) override;

 private:
  // Returns the items kept; `consumed` is how many ring indices it moved past. With
  // `indices`, each kept item's index is stored beside it.
  size_t copy_from_ring(uint32_t* out, size_t max, size_t& consumed, uint64_t* indices = nullptr);
  // copy_from_ring's slot loop for slot protocol 2; returns the ring indices moved past.
  uint64_t copy_tagged32(uint64_t start, uint64_t avail, uint32_t* out, size_t max, size_t& kept,
                         uint64_t& overwritten, uint64_t* indices);
  size_t fill_cache();     // items in the read-ahead cache after refilling it if empty
  bool attach();           // false while the awaited init has not run yet
  void check_epoch();      // throws ChannelError once if the channel was re-initialised
  bool closed_and_drained();
  void check_usable() const;
  ConsumerPosition current_position() const;

  std::shared_ptr<ChannelU32> channel_;
  ChannelCursor cursor_;  // the run it reads, the next ring index to copy, the header words
  const uint32_t* ring_;
  uint32_t mask_;
  bool closed_ = false;
  uint64_t dropped_ = 0;
  uint64_t delivered_ = 0;
  uint64_t last_index_ = 0;
  std::atomic_flag busy_ = ATOMIC_FLAG_INIT;
  WaitStrategy strategy_;  // the reader's idle strategy and what it learnt (fixed size)
  // Read-ahead for try_next() and wait(): one ring copy serves many single-item reads.
  static constexpr size_t kCacheItems = 256;
  std::array<uint32_t, kCacheItems> cache_{};
  std::array<uint64_t, kCacheItems> cache_index_{};  // item indices: the cache may have gaps
  size_t cache_pos_ = 0;
  size_t cache_len_ = 0;
};

}  // namespace fc
