// The CPU reader. Producer side: csrc/kernels/channel_kernels.inc; layout: layout.hpp.
//
// Self-validating slots (DESIGN.md option 2, the NCCL LL / MSCCL++ FIFO design): each slot
// holds (value, tag) written by one 8-byte store, item i's tag being i + 1. For the next index
// k the reader loads the slot's 8 bytes with one relaxed atomic load and
//   - tag == k + 1:                 the value is item k's, whole: deliver it;
//   - tag newer than k + 1:         the producer lapped the reader: item k is gone, count it
//                                   as dropped and go on with k + 1;
//   - tag older (or init's tag):    item k is not visible yet: stop, try again later.
// A torn read is impossible: value and tag come from one single-copy-atomic store, so a value
// is only ever taken together with the tag that proves which item it is. No fence is needed
// on either side for the items themselves; the memory orders used are:
//   write_idx  acquire load: only a hint of how far to look (and when the reader is lapped by
//              more than a ring, how many to skip at once: those items were overwritten).
//   magic      acquire load, pairs with init's release store: the header words are set.
//   flags      acquire load, pairs with close's release store: the write_idx loaded after it
//              is the final count.
//   read_idx   relaxed store: informational (drop-oldest never waits on the reader).
// We chose this over the write-intent counter (option 1) because the producer then needs no
// fence at all: on a GPU each system-scope fence costs ~0.6 us of the decode step.
#include "channel/reader.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define FC_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define FC_CPU_RELAX() asm volatile("yield" ::: "memory")
#else
#define FC_CPU_RELAX() ((void)0)
#endif

namespace fc {
namespace {

inline uint32_t load_relaxed(const uint32_t* p) {
  return std::atomic_ref<uint32_t>(*const_cast<uint32_t*>(p)).load(std::memory_order_relaxed);
}
inline uint32_t load_acquire(const uint32_t* p) {
  return std::atomic_ref<uint32_t>(*const_cast<uint32_t*>(p)).load(std::memory_order_acquire);
}
inline uint64_t load_slot(const uint32_t* p) {  // (value, tag) as one 8-byte atomic load
  return std::atomic_ref<uint64_t>(*reinterpret_cast<uint64_t*>(const_cast<uint32_t*>(p)))
      .load(std::memory_order_relaxed);
}
inline void store_relaxed(uint32_t* p, uint32_t v) {
  std::atomic_ref<uint32_t>(*p).store(v, std::memory_order_relaxed);
}

}  // namespace

class ChannelU32Reader::Exclusive {
 public:
  explicit Exclusive(std::atomic_flag& flag) : flag_(flag) {
    if (flag_.test_and_set(std::memory_order_acquire)) {
      throw std::runtime_error(
          "ChannelU32Reader used from two threads at once: a reader is single-consumer; "
          "give each thread its own channel or serialise the calls");
    }
  }
  ~Exclusive() { flag_.clear(std::memory_order_release); }

 private:
  std::atomic_flag& flag_;
};

ChannelU32Reader::ChannelU32Reader(std::shared_ptr<ChannelU32> channel)
    : channel_(std::move(channel)),
      header_(channel_->header_words()),
      ring_(channel_->ring_words()),
      capacity_(channel_->capacity()),
      mask_(channel_->capacity() - 1) {
  channel_->device()->check_usable("create a reader");
}

void ChannelU32Reader::check_usable() const { channel_->device()->check_usable("read a channel"); }

bool ChannelU32Reader::attach() {
  // Acquire pairs with init's release store of the magic: the other header words are set.
  if (load_acquire(&header_[layout::kMAGIC]) != layout::kMagic) {
    if (channel_->init_encoded()) return false;  // init is queued on the device: not yet
    throw ChannelError(
        "the channel was never initialised: encode channel_init (CommandBuffer.channel_init) "
        "and commit it before reading");
  }
  uint32_t header_capacity = load_relaxed(&header_[layout::kCAPACITY]);
  if (header_capacity != capacity_) {
    throw ChannelError("channel header says capacity " + std::to_string(header_capacity) +
                       " but the ring was allocated for " + std::to_string(capacity_) +
                       ": the header was overwritten by something other than channel_init");
  }
  cursor_ = load_relaxed(&header_[layout::kREAD_IDX]);
  attached_ = true;
  return true;
}

size_t ChannelU32Reader::copy_from_ring(uint32_t* out, size_t max, size_t& consumed) {
  consumed = 0;
  if (!attached_ && !attach()) return 0;
  const uint32_t w = load_acquire(&header_[layout::kWRITE_IDX]);
  uint32_t avail = w - cursor_;
  if (avail > (1u << 31)) {
    throw ChannelError("write_idx moved backwards (from at least " + std::to_string(cursor_) +
                       " to " + std::to_string(w) +
                       "): the channel was re-initialised while this reader was attached");
  }
  if (avail > capacity_) {  // lapped by more than a ring: those items were overwritten
    dropped_ += avail - capacity_;
    cursor_ = w - capacity_;
    avail = capacity_;
  }
  size_t kept = 0;
  size_t k = 0;
  for (; k < avail && kept < max; ++k) {
    const uint32_t index = cursor_ + static_cast<uint32_t>(k);
    const uint64_t slot = load_slot(&ring_[2 * (index & mask_)]);
    const uint32_t tag = static_cast<uint32_t>(slot >> 32);
    const uint32_t expected = index + 1;
    if (tag == expected) {
      out[kept++] = static_cast<uint32_t>(slot);
    } else if (static_cast<int32_t>(tag - expected) > 0) {
      ++dropped_;  // overwritten by a later item before we got to it
    } else {
      break;  // not visible yet
    }
  }
  cursor_ += static_cast<uint32_t>(k);
  consumed = k;
  if (k) store_relaxed(&header_[layout::kREAD_IDX], cursor_);
  return kept;
}

size_t ChannelU32Reader::drain_into(uint32_t* out, size_t capacity) {
  Exclusive guard(busy_);
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
  Exclusive guard(busy_);
  check_usable();
  if (cache_pos_ == cache_len_) {
    cache_pos_ = 0;
    size_t consumed = 0;
    do {
      cache_len_ = copy_from_ring(cache_.data(), kCacheItems, consumed);
    } while (cache_len_ == 0 && consumed != 0);  // a whole batch was overwritten: go again
    if (cache_len_ == 0) return std::nullopt;
  }
  ++delivered_;
  return cache_[cache_pos_++];
}

bool ChannelU32Reader::channel_closed() const {
  // Acquire pairs with the close kernel's release store: write_idx loaded after this is final.
  return (load_acquire(&header_[layout::kFLAGS]) & layout::kFlagClosed) != 0;
}

uint64_t ChannelU32Reader::available() {
  Exclusive guard(busy_);
  check_usable();
  uint64_t cached = cache_len_ - cache_pos_;
  if (!attached_ && !attach()) return cached;
  // A hint: counts published items whose slot may not be visible yet (try_next may still
  // return None right after), and items that will turn out to be dropped.
  uint32_t ahead = load_acquire(&header_[layout::kWRITE_IDX]) - cursor_;
  return cached + std::min(ahead, capacity_);
}

bool ChannelU32Reader::exhausted() {
  Exclusive guard(busy_);
  check_usable();
  if (cache_pos_ != cache_len_) return false;
  if (!attached_ && !attach()) return false;
  if (!channel_closed()) return false;
  return load_acquire(&header_[layout::kWRITE_IDX]) == cursor_;
}

WaitResult ChannelU32Reader::wait(double timeout_s, const std::function<bool()>& interrupted,
                                  const CommandBuffer* until) {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  const auto deadline =
      timeout_s < 0 ? clock::time_point::max()
                    : start + std::chrono::duration_cast<clock::duration>(
                                  std::chrono::duration<double>(timeout_s));
  // Back-off: ~2k pause spins (a few microseconds: catches a device that is about to push),
  // then yields for ~50 us, then sleeps doubling from 20 us to 1 ms. An idle reader then
  // wakes at most ~1000 times a second.
  int spins = 0;
  auto sleep = std::chrono::microseconds(20);
  auto last_interrupt_check = start;
  for (;;) {
    if (available() > 0) return WaitResult::Ready;
    if (exhausted()) return WaitResult::Closed;
    if (until) {
      auto s = until->status();
      if (s == CommandBufferStatus::Completed || s == CommandBufferStatus::Error) {
        return WaitResult::Finished;
      }
    }
    auto now = clock::now();
    if (now >= deadline) return WaitResult::Timeout;
    if (interrupted && now - last_interrupt_check > std::chrono::milliseconds(1)) {
      last_interrupt_check = now;
      if (interrupted()) throw InterruptedError();
    }
    if (spins < 2048) {
      ++spins;
      FC_CPU_RELAX();
    } else if (now - start < std::chrono::microseconds(50)) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(std::min<clock::duration>(sleep, deadline - now));
      sleep = std::min(sleep * 2, std::chrono::microseconds(1000));
    }
  }
}

}  // namespace fc
