// ChannelU32Reader: the CPU side of a device-to-host channel. Single consumer; lock-free
// and allocation-free once constructed.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>

#include "channel/channel.hpp"

namespace fc {

// Ready: an item is readable. Closed: closed and drained. Timeout. Finished: the command
// buffer given to wait() completed or failed (a runner's cue to retire a window).
enum class WaitResult { Ready, Closed, Timeout, Finished };

class ChannelU32Reader {
 public:
  explicit ChannelU32Reader(std::shared_ptr<ChannelU32> channel);

  // Copies up to `capacity` available items into `out` and returns how many. Never blocks.
  size_t drain_into(uint32_t* out, size_t capacity);
  // The next item, or nullopt when none is available now.
  std::optional<uint32_t> try_next();
  // Blocks until an item is available (Ready), the channel is closed and drained (Closed),
  // or the timeout passes (Timeout; timeout_s < 0 waits forever). Spins briefly, then
  // yields, then sleeps with a growing back-off so an idle wait does not burn a core.
  // `interrupted` is polled about every millisecond once sleeping (Python: signal check);
  // when it returns true the wait throws InterruptedError.
  // With `until`, the wait also ends (Finished) when that command buffer completes or fails.
  WaitResult wait(double timeout_s, const std::function<bool()>& interrupted = {},
                  const CommandBuffer* until = nullptr);

  // Items skipped because the producer overwrote them before they were read.
  uint64_t dropped() const { return dropped_; }
  // Items handed to the caller so far.
  uint64_t delivered() const { return delivered_; }
  // Index of the next item this reader will return (mod 2^32).
  uint32_t position() const { return cursor_ - static_cast<uint32_t>(cache_len_ - cache_pos_); }
  // Items readable now without blocking (including the reader's small read-ahead cache).
  uint64_t available();
  // The producer marked the channel closed and every item was read or counted as dropped.
  bool exhausted();
  const std::shared_ptr<ChannelU32>& channel() const { return channel_; }

 private:
  class Exclusive;  // guards against two threads using one reader at once
  // Returns the items kept; `consumed` is how many ring indices it moved past.
  size_t copy_from_ring(uint32_t* out, size_t max, size_t& consumed);
  bool attach();  // false while the channel's init has not run yet
  bool channel_closed() const;
  void check_usable() const;

  std::shared_ptr<ChannelU32> channel_;
  uint32_t* header_;
  const uint32_t* ring_;
  uint32_t capacity_;
  uint32_t mask_;
  bool attached_ = false;
  uint32_t cursor_ = 0;  // next ring index to copy
  uint64_t dropped_ = 0;
  uint64_t delivered_ = 0;
  std::atomic_flag busy_ = ATOMIC_FLAG_INIT;
  // Read-ahead for try_next(): one ring copy serves many single-item reads.
  static constexpr size_t kCacheItems = 256;
  std::array<uint32_t, kCacheItems> cache_{};
  size_t cache_pos_ = 0;
  size_t cache_len_ = 0;
};

}  // namespace fc
