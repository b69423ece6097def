// The CPU reader. Producer side: csrc/kernels/channel_kernels.inc; layout: layout.hpp; the
// protocol and why its memory orders are enough: docs/protocol.md.
//
// Self-validating slots (the NCCL LL / MSCCL++ FIFO design): each slot holds (value, tag)
// written by one 8-byte store, item i's tag being the low 32 bits of i + 1. For the next
// index k the reader loads the slot's 8 bytes with one relaxed atomic load and
//   - tag == k + 1:                 the value is item k's, whole: deliver it;
//   - tag newer than k + 1:         the producer lapped the reader: item k is gone, count it
//                                   as dropped and go on with k + 1;
//   - tag older (or init's tag):    item k is not visible yet: stop, try again later.
// A torn read is impossible: value and tag come from one single-copy-atomic store. The memory
// orders used here:
//   write count  8-byte acquire load: how far to look, and when the reader is lapped by more
//                than a ring, how many to count as dropped at once (exact at any distance).
//   magic        acquire load, pairs with init's release store: the header words are set.
//   epoch        relaxed load after an acquire fence that follows the slot loads: init's
//                fence orders a new epoch before every later slot store, so if any slot we
//                copied came from a re-initialised run, the epoch we load afterwards is the
//                new one and the copy is thrown away (ChannelError), never delivered.
//   flags        acquire load, pairs with close's release store: the count loaded after it is
//                final.
//   read_idx     relaxed store: informational (drop-oldest never waits on the reader).
// The tags are 32-bit: a slot is mistaken for item k only if the producer published 2^32 more
// items between this reader's count load and its slot load (hours of pushing while one copy
// of at most a ring's worth runs).
#include "channel/reader.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>

#include "channel/wait_loop.hpp"
#include "common/atomic_word.hpp"
#include "device/deadline.hpp"
#include "device/wake_signal.hpp"



namespace fc {

namespace aw = atomic_word;


ChannelU32Reader::ChannelU32Reader(std::shared_ptr<ChannelU32> channel, Key)
    : channel_(std::move(channel)),
      cursor_(channel_->header_words(), channel_->capacity(), channel_->inits_encoded()),
      ring_(channel_->ring_words()),
      mask_(channel_->capacity() - 1) {
  channel_->device()->check_usable("create a reader");
}

ChannelU32Reader::~ChannelU32Reader() {
  if (!closed_) channel_->save_consumer_position(current_position());
}

ConsumerPosition ChannelU32Reader::current_position() const {
  // Cached items were not delivered: the next reader gets them from the ring again.
  return {cursor_.epoch(), position(), cursor_.attached()};
}

void ChannelU32Reader::close() {
  ConsumerGuard guard(busy_);
  if (closed_) return;
  closed_ = true;
  channel_->save_consumer_position(current_position());
  channel_->forget_reader(this);
}

void ChannelU32Reader::check_usable() const {
  check_reader_usable(closed_, *channel_->device());
}

bool ChannelU32Reader::attach() {
  return cursor_.attach(channel_->consumer_position());
}

void ChannelU32Reader::check_epoch() {
  try {
    cursor_.check_epoch(channel_->inits_encoded());
  } catch (const ChannelError&) {
    cache_pos_ = cache_len_ = 0;  // the old run's read-ahead goes with it
    throw;
  }
}

// Slot protocol 2 (docs/protocol.md): the producer stores tag := the slot's init tag, fence,
// value, fence, tag := index + 1, all 32-bit. Per slot the reader loads the tag (acquire), the
// value, then after an acquire fence the tag again, and takes the value only when both loads saw
// the expected tag: the first acquire makes the value at least that item's; if the value came
// from a later item, the fence before that item's value store and ours after the value load make
// the second load see that item's invalid tag or a newer one. Returns the indices moved past.
uint64_t ChannelU32Reader::copy_tagged32(uint64_t start, uint64_t avail, uint32_t* out,
                                         size_t max, size_t& kept, uint64_t& overwritten,
                                         uint64_t* indices) {
  uint64_t k = 0;
  for (; k < avail && kept < max; ++k) {
    const uint64_t index = start + k;
    const uint32_t slot = static_cast<uint32_t>(index & mask_);
    const uint32_t* words = &ring_[2 * uint64_t{slot}];
    const uint32_t expected = static_cast<uint32_t>(index + 1);
    const uint32_t tag = aw::load_acquire(&words[1]);
    if (tag == expected) {
      const uint32_t value = aw::load_relaxed(&words[0]);
      aw::fence_acquire();
      if (aw::load_relaxed(&words[1]) == expected) {
        if (indices) indices[kept] = index;
        out[kept++] = value;
      } else {
        ++overwritten;  // a later item is being written over it: item `index` is gone
      }
    } else if (tag == slot) {
      break;  // the invalid (init) tag: being written, this item or a later one: not yet
    } else if (static_cast<int32_t>(tag - expected) > 0) {
      ++overwritten;
    } else {
      break;  // not visible yet
    }
  }
  return k;
}

size_t ChannelU32Reader::copy_from_ring(uint32_t* out, size_t max, size_t& consumed,
                                        uint64_t* indices) {
  consumed = 0;
  if (!cursor_.attached() && !attach()) return 0;
  ChannelCursor::Span span;
  try {
    span = cursor_.span(cursor_.write_count());
  } catch (const ChannelError&) {
    check_epoch();  // a count below ours: a re-init says so first
    throw;
  }
  size_t kept = 0;
  uint64_t overwritten = 0;
  uint64_t k = 0;
  if (cursor_.slot_protocol() == layout::kSlotProtocolTagged32) {
    k = copy_tagged32(span.start, span.avail, out, max, kept, overwritten, indices);
  } else {
    for (; k < span.avail && kept < max; ++k) {
      const uint64_t index = span.start + k;
      const uint64_t slot = aw::load_pair_relaxed(&ring_[2 * (index & mask_)]);
      const uint32_t tag = static_cast<uint32_t>(slot >> 32);
      const uint32_t expected = static_cast<uint32_t>(index + 1);
      if (tag == expected) {
        if (indices) indices[kept] = index;
        out[kept++] = static_cast<uint32_t>(slot);
      } else if (static_cast<int32_t>(tag - expected) > 0) {
        ++overwritten;  // overwritten by a later item before we got to it
      } else {
        break;  // not visible yet
      }
    }
  }
  check_epoch();  // before anything copied counts: a re-init throws it all away
  dropped_ += span.lapped + overwritten;
  consumed = static_cast<size_t>(span.lapped + k);
  if (consumed) cursor_.advance(span.start + k);
  return kept;
}

size_t ChannelU32Reader::fill_cache() {
  if (cache_pos_ != cache_len_) return cache_len_ - cache_pos_;
  cache_pos_ = cache_len_ = 0;
  size_t consumed = 0;
  do {
    cache_len_ = copy_from_ring(cache_.data(), kCacheItems, consumed, cache_index_.data());
  } while (cache_len_ == 0 && consumed != 0);  // a whole batch was overwritten: go again
  return cache_len_;
}

size_t ChannelU32Reader::drain_into(uint32_t* out, size_t capacity) {
  ConsumerGuard guard(busy_);
  check_usable();
  size_t from_cache = std::min(capacity, cache_len_ - cache_pos_);
  std::memcpy(out, cache_.data() + cache_pos_, from_cache * sizeof(uint32_t));
  cache_pos_ += from_cache;
  size_t total = from_cache;
  // A discard in copy_from_ring can return fewer items than are readable; loop until the
  // ring has nothing more or `out` is full.
  while (total < capacity) {
    size_t consumed = 0;
    total += copy_from_ring(out + total, capacity - total, consumed);
    if (consumed == 0) break;
  }
  delivered_ += total;
  return total;
}

std::optional<uint32_t> ChannelU32Reader::try_next() {
  ConsumerGuard guard(busy_);
  check_usable();
  if (fill_cache() == 0) return std::nullopt;
  ++delivered_;
  last_index_ = cache_index_[cache_pos_];
  return cache_[cache_pos_++];
}

uint64_t ChannelU32Reader::skip_to_end() {
  ConsumerGuard guard(busy_);
  check_usable();
  uint64_t skipped = cache_len_ - cache_pos_;
  cache_pos_ = cache_len_ = 0;
  if (!cursor_.attached() && !attach()) return skipped;
  const uint64_t w = cursor_.write_count();
  check_epoch();
  if (w > cursor_.index()) {
    skipped += w - cursor_.index();
    cursor_.advance(w);
  }
  return skipped;
}

bool ChannelU32Reader::closed_and_drained() {
  if (cache_pos_ != cache_len_) return false;
  if (!cursor_.attached() && !attach()) return false;
  return cursor_.closed_at_end();
}

uint64_t ChannelU32Reader::available() {
  ConsumerGuard guard(busy_);
  check_usable();
  uint64_t cached = cache_len_ - cache_pos_;
  if (!cursor_.attached() && !attach()) return cached;
  const uint64_t w = cursor_.write_count();
  const uint64_t ahead = w > cursor_.index() ? w - cursor_.index() : 0;
  return cached + std::min<uint64_t>(ahead, channel_->capacity());
}

bool ChannelU32Reader::exhausted() {
  ConsumerGuard guard(busy_);
  check_usable();
  return closed_and_drained();
}

void ChannelU32Reader::set_wait_strategy(WaitStrategyKind kind) {
  ConsumerGuard guard(busy_);
  strategy_.set_kind(kind);
}


WaitResult ChannelU32Reader::wait(double timeout_s, const std::function<bool()>& interrupted,
                                  const CommandBuffer* until) {
  ConsumerGuard guard(busy_);  // one waiter: a second thread's read would race the cache refill
  // Ready only when an item is really there: filling the read-ahead cache validates the next
  // slot's tag (write_idx alone is a hint that can run ahead of the slots).
  return wait_loop(
      strategy_, *channel_->device(), timeout_s, interrupted, until, [&] { check_usable(); },
      [&] { return fill_cache() > 0; }, [&] { return closed_and_drained(); });
}

Pollable::Probe ChannelU32Reader::probe(bool first, IdlePlan& plan,
                                        std::exception_ptr& error) {
  return probe_once(
      busy_, strategy_, *channel_->device(), first, plan, error, [&] { check_usable(); },
      [&] { return fill_cache() > 0; }, [&] { return closed_and_drained(); });
}

}  // namespace fc
