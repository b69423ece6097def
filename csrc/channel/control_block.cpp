#include "channel/control_block.hpp"

#include <algorithm>

#include "common/atomic_word.hpp"

namespace fc {

ControlBlock::ControlBlock(std::shared_ptr<Device> device) : device_(std::move(device)) {
  device_->check_usable("create a control block");
  buffer_ = device_->new_buffer(control::kWords * sizeof(uint32_t), Storage::Shared);
  // No command buffer can reference the block yet: plain initialisation, ordered before any
  // kernel by the commit that hands it to the device.
  reset();
}

// Release stores: a step's acquire load that sees a request also sees everything this thread
// stored before it (docs/protocol.md "Control block"). The device never writes these two words.
void ControlBlock::cancel() { atomic_word::store_release(&words()[control::kCONTROL_CANCEL], 1u); }

void ControlBlock::stop_at(uint32_t limit) {
  atomic_word::store_release(&words()[control::kCONTROL_STOP_AT], limit);
}

uint32_t ControlBlock::stop_after(uint32_t more) {
  const uint64_t wanted = uint64_t{generated()} + more;
  const uint32_t limit = static_cast<uint32_t>(std::min<uint64_t>(wanted, control::kNoLimit - 1));
  uint32_t* word = &words()[control::kCONTROL_STOP_AT];
  uint32_t current = atomic_word::load_relaxed(word);
  // A compare-exchange so that two threads asking at once keep the smaller limit.
  while (limit < current && !atomic_word::compare_exchange_release(word, current, limit)) {
  }
  return std::min(limit, current);
}

void ControlBlock::reset() {
  uint32_t* w = words();
  atomic_word::store_relaxed(&w[control::kCONTROL_GENERATED], 0u);
  atomic_word::store_relaxed(&w[control::kCONTROL_STOPPED], 0u);
  atomic_word::store_release(&w[control::kCONTROL_STOP_AT], control::kNoLimit);
  atomic_word::store_release(&w[control::kCONTROL_CANCEL], 0u);
}

bool ControlBlock::cancel_requested() const {
  return atomic_word::load_relaxed(&words()[control::kCONTROL_CANCEL]) != 0;
}
uint32_t ControlBlock::stop_limit() const {
  return atomic_word::load_relaxed(&words()[control::kCONTROL_STOP_AT]);
}
// Relaxed: progress reports that publish nothing else.
uint32_t ControlBlock::generated() const {
  return atomic_word::load_relaxed(&words()[control::kCONTROL_GENERATED]);
}
uint32_t ControlBlock::stopped() const {
  return atomic_word::load_relaxed(&words()[control::kCONTROL_STOPPED]);
}

}  // namespace fc
