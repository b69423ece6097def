// ChannelCursor: where a reader stands in a channel, and the header words it reads to know
// it: attaching to a run (magic, epoch), the producer's 64-bit count, laps, re-initialisation
// and close. Every reader kind (u32 items, records) is a cursor plus its own copy of the data.
// The memory orders and why they are enough: docs/protocol.md ("Reader").
#pragma once

#include <cstdint>
#include <string>

#include "channel/layout.hpp"
#include "common/atomic_word.hpp"
#include "device/errors.hpp"

namespace fc {

// Where the last reader of a channel stopped, so the next one continues there (same epoch).
struct ConsumerPosition {
  uint32_t epoch = 0;
  uint64_t index = 0;
  bool valid = false;
};

class ChannelCursor {
 public:
  ChannelCursor(uint32_t* header, uint32_t capacity, uint32_t target_epoch)
      : header_(header), capacity_(capacity), target_epoch_(target_epoch) {}

  bool attached() const { return attached_; }
  // The attached run's slot protocol (1 or 2, from FLAGS; docs/protocol.md).
  uint32_t slot_protocol() const { return slot_protocol_; }
  uint32_t epoch() const { return epoch_; }
  uint64_t index() const { return index_; }
  ConsumerPosition position() const { return {epoch_, index_, attached_}; }

  // Attaches to the current run once the init this reader waits for has run: false while it
  // has not (or, with no init ever encoded, throws ChannelError "never initialised"). `saved`:
  // where the channel's previous reader stopped.
  bool attach(const ConsumerPosition& saved) {
    namespace aw = atomic_word;
    if (aw::load_acquire(&header_[layout::kMAGIC]) != layout::kMagic) {
      if (target_epoch_ != 0) return false;  // init is queued on the device: not yet
      throw ChannelError(
          "the channel was never initialised: encode its init (CommandBuffer.channel_init, "
          "channel.encode_init) and commit it before reading");
    }
    const uint32_t epoch = aw::load_acquire(&header_[layout::kEPOCH]);
    if (static_cast<int32_t>(epoch - target_epoch_) < 0) return false;  // an earlier run
    const uint32_t header_capacity = aw::load_relaxed(&header_[layout::kCAPACITY]);
    if (header_capacity != capacity_) {
      throw ChannelError("channel header says capacity " + std::to_string(header_capacity) +
                         " but the ring was allocated for " + std::to_string(capacity_) +
                         ": the header was overwritten by something other than the init");
    }
    // FLAGS is at least as new as the epoch loaded with acquire above (init stores it first).
    slot_protocol_ = (aw::load_relaxed(&header_[layout::kFLAGS]) & layout::kFlagSlotProtocol2)
                         ? layout::kSlotProtocolTagged32
                         : layout::kSlotProtocolDefault;
    epoch_ = epoch;
    index_ = (saved.valid && saved.epoch == epoch) ? saved.index : 0;
    attached_ = true;
    return true;
  }

  // The producer's 64-bit count: one 8-byte acquire load; with slot protocol 2, which reads
  // only 32-bit words the producer stored whole, this reader's position plus how far the 32-bit
  // write_idx is ahead of its low word (exact while the reader is less than 2^31 items behind;
  // below the position only after a re-init or 2^31 behind: span() then reports it).
  uint64_t write_count() const {
    if (slot_protocol_ != layout::kSlotProtocolTagged32) {
      return atomic_word::load_pair_acquire(&header_[layout::kWRITE_COUNT_LO]);
    }
    const uint32_t lo = atomic_word::load_acquire(&header_[layout::kWRITE_IDX]);
    const int64_t ahead = static_cast<int32_t>(lo - static_cast<uint32_t>(index_));
    if (ahead < 0 && static_cast<uint64_t>(-ahead) > index_) return 0;
    return index_ + ahead;
  }

  // What a copy may look at given count `w`: from `start`, `avail` items; `lapped` items before
  // `start` were overwritten (the reader fell more than a ring behind).
  struct Span {
    uint64_t start, avail, lapped;
  };
  Span span(uint64_t w) const {
    if (w < index_) {
      throw ChannelError("the channel's write count went back from " + std::to_string(index_) +
                         " to " + std::to_string(w) + " within one epoch: the header was "
                         "overwritten by something other than the channel's kernels" +
                         std::string(slot_protocol_ == layout::kSlotProtocolTagged32
                                         ? " (or, with slot protocol 2, this reader fell 2^31 "
                                           "items behind: its count is 32-bit)"
                                         : ""));
    }
    const uint64_t avail = w - index_;
    if (avail <= capacity_) return {index_, avail, 0};
    return {w - capacity_, capacity_, avail - capacity_};
  }

  // After a copy, before anything it copied counts: throws ChannelError once if the channel was
  // re-initialised, detaching so that the next read follows the run of the newest init encoded
  // by then (`inits_encoded_now`). The acquire fence orders the copy's loads before the epoch
  // load: init's fence orders a new epoch before any data of the new run.
  void check_epoch(uint32_t inits_encoded_now) {
    namespace aw = atomic_word;
    aw::fence_acquire();
    const uint32_t now = aw::load_relaxed(&header_[layout::kEPOCH]);
    if (now == epoch_) return;
    const uint32_t was = epoch_;
    attached_ = false;
    target_epoch_ = inits_encoded_now;
    throw ChannelError("the channel was re-initialised (its init ran again: epoch " +
                       std::to_string(was) + " -> " + std::to_string(now) +
                       ") while this reader was reading it at item " + std::to_string(index_) +
                       "; the old run's unread items are gone. The next read follows the new run");
  }

  // Moves past indices below `to` (the reader consumed or dropped them).
  void advance(uint64_t to) {
    index_ = to;
    atomic_word::store_relaxed(&header_[layout::kREAD_IDX], static_cast<uint32_t>(to));
  }

  // The producer closed the channel and the reader is at its final count. Acquire pairs with
  // the close kernel's release store: the count loaded after it is final.
  bool closed_at_end() const {
    if ((atomic_word::load_acquire(&header_[layout::kFLAGS]) & layout::kFlagClosed) == 0) {
      return false;
    }
    return write_count() == index_;
  }

 private:
  uint32_t* header_;
  uint32_t capacity_;
  uint32_t target_epoch_;
  uint32_t epoch_ = 0;
  uint32_t slot_protocol_ = layout::kSlotProtocolDefault;
  bool attached_ = false;
  uint64_t index_ = 0;
};

}  // namespace fc
