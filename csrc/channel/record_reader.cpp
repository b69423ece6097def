// The record reader. Producer side and slot layout: csrc/kernels/record_kernels.inc; protocol:
// docs/protocol.md ("Record channels").
//
// Record k lives in slot s = k & (capacity - 1); its tag is the low 32 bits of k + 1. For k:
//   end[s]   acquire load: == k + 1 means record k's payload is complete (the producer's commit
//            fenced every payload store before this store);
//   payload  copied;
//   fence    acquire: orders the copy's loads before the next load;
//   begin[s] == k + 1 means no producer has started on record k + capacity: its commit of
//            record k + capacity - 1 marks begin[s] := k + capacity + 1 and fences before any
//            payload store of record k + capacity, so a copy that saw any of those stores sees
//            the new mark here. A newer tag in either place: record k is gone (dropped); an older
//            end tag: not visible yet.
#include "channel/record_reader.hpp"

#include <cstring>

#include "channel/wait_loop.hpp"
#include "common/atomic_word.hpp"

#if defined(__SANITIZE_THREAD__)
#define FC_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FC_TSAN 1
#endif
#endif

namespace fc {

namespace aw = atomic_word;

namespace {

// The payload copy races with a producer by design: the tags decide afterwards whether the copy
// is kept. memcpy is what every seqlock reader does for bandwidth; under ThreadSanitizer the copy
// uses relaxed atomic loads instead, so the tool checks the protocol rather than reporting the
// intended race (the producer's payload stores are atomic on the host backend for the same
// reason: prelude_host.hpp).
void copy_payload(void* out, const uint8_t* src, uint64_t bytes) {
#ifdef FC_TSAN
  auto* dst = static_cast<uint32_t*>(out);
  const auto* words = reinterpret_cast<const uint32_t*>(src);
  for (uint64_t i = 0; i < bytes / 4; ++i) dst[i] = aw::load_relaxed(&words[i]);
#else
  std::memcpy(out, src, bytes);
#endif
}

}  // namespace


RecordReader::RecordReader(std::shared_ptr<RecordChannel> channel)
    : channel_(std::move(channel)),
      cursor_(channel_->header_words(), channel_->capacity(), channel_->inits_encoded()),
      tags_(channel_->data_words()),
      payload_(reinterpret_cast<const uint8_t*>(channel_->data_words() +
                                                channel_->payload_offset_words())),
      mask_(channel_->capacity() - 1),
      record_bytes_(channel_->record_bytes()),
      stride_bytes_(uint64_t{channel_->stride_words()} * 4) {
  channel_->device()->check_usable("create a reader");
}

RecordReader::~RecordReader() {
  if (!closed_) channel_->save_consumer_position(cursor_.position());
}

void RecordReader::close() {
  ConsumerGuard guard(busy_);
  if (closed_) return;
  closed_ = true;
  channel_->save_consumer_position(cursor_.position());
  channel_->forget_reader(this);
}

void RecordReader::check_usable() const {
  check_reader_usable(closed_, *channel_->device());
}

RecordReader::Slot RecordReader::copy_record(uint64_t index, void* out) {
  const uint64_t slot = index & mask_;
  const uint32_t expected = static_cast<uint32_t>(index + 1);
  const uint32_t end = aw::load_acquire(&tags_[2 * slot + 1]);
  if (end != expected) {
    return static_cast<int32_t>(end - expected) > 0 ? Slot::Dropped : Slot::NotYet;
  }
  copy_payload(out, payload_ + slot * stride_bytes_, record_bytes_);
  aw::fence_acquire();
  return aw::load_relaxed(&tags_[2 * slot]) == expected ? Slot::Record : Slot::Dropped;
}

size_t RecordReader::read(void* out, size_t max) {
  if (!cursor_.attached() && !cursor_.attach(channel_->consumer_position())) return 0;
  const ChannelCursor::Span span = cursor_.span(cursor_.write_count());
  auto* dst = static_cast<uint8_t*>(out);
  size_t kept = 0;
  uint64_t overwritten = 0;
  uint64_t k = 0;
  uint64_t last = last_index_;
  for (; k < span.avail && kept < max; ++k) {
    const uint64_t index = span.start + k;
    const Slot got = copy_record(index, dst + kept * record_bytes_);
    if (got == Slot::NotYet) break;
    if (got == Slot::Dropped) {
      ++overwritten;
      continue;
    }
    ++kept;
    last = index;
  }
  cursor_.check_epoch(channel_->inits_encoded());  // a re-init throws the copies away
  cursor_.advance(span.start + k);
  dropped_ += span.lapped + overwritten;
  delivered_ += kept;
  last_index_ = last;
  return kept;
}

bool RecordReader::try_read(void* out) {
  ConsumerGuard guard(busy_);
  check_usable();
  return read(out, 1) == 1;
}

size_t RecordReader::drain_into(void* out, size_t max_records) {
  ConsumerGuard guard(busy_);
  check_usable();
  size_t total = 0;
  // A lap can drop records and return fewer than are readable: loop until none is left.
  while (total < max_records) {
    const uint64_t before = cursor_.index();
    total += read(static_cast<uint8_t*>(out) + total * record_bytes_, max_records - total);
    if (cursor_.index() == before) break;
  }
  return total;
}

bool RecordReader::next_ready() {
  if (!cursor_.attached() && !cursor_.attach(channel_->consumer_position())) return false;
  const uint64_t w = cursor_.write_count();
  if (w <= cursor_.index()) return false;
  if (w - cursor_.index() > channel_->capacity()) return true;  // lapped: newer records are there
  const uint64_t index = cursor_.index();
  const uint32_t end = aw::load_acquire(&tags_[2 * (index & mask_) + 1]);
  return static_cast<int32_t>(end - static_cast<uint32_t>(index + 1)) >= 0;
}

bool RecordReader::closed_at_end() {
  return (cursor_.attached() || cursor_.attach(channel_->consumer_position())) &&
         cursor_.closed_at_end();
}

bool RecordReader::exhausted() {
  ConsumerGuard guard(busy_);
  check_usable();
  return closed_at_end();
}

void RecordReader::set_wait_strategy(WaitStrategyKind kind) {
  ConsumerGuard guard(busy_);
  strategy_.set_kind(kind);
}

WaitResult RecordReader::wait(double timeout_s, const std::function<bool()>& interrupted,
                              const CommandBuffer* until) {
  ConsumerGuard guard(busy_);
  return wait_loop(strategy_, *channel_->device(), timeout_s, interrupted, until,
                   [&] { check_usable(); }, [&] { return next_ready(); },
                   [&] { return closed_at_end(); });
}

Pollable::Probe RecordReader::probe(bool first, IdlePlan& plan, std::exception_ptr& error) {
  return probe_once(busy_, strategy_, *channel_->device(), first, plan, error,
                    [&] { check_usable(); }, [&] { return next_ready(); },
                    [&] { return closed_at_end(); });
}

}  // namespace fc
