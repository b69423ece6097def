// ChannelU32: the buffers of one channel and the encoders for its kernels.
#pragma once

#include <atomic>
#include <memory>

#include "channel/layout.hpp"
#include "device/device.hpp"

namespace fc {

class ChannelU32 {
 public:
  // Allocates the header and ring (shared) and the producer cursor (device-local). The
  // channel is not usable until a channel_u32_init dispatch has run (encode_init).
  // Throws std::invalid_argument for a capacity that is 0, not a power of two, or above
  // layout::kMaxCapacity.
  ChannelU32(std::shared_ptr<Device> device, uint64_t capacity);

  uint32_t capacity() const { return capacity_; }
  const std::shared_ptr<Device>& device() const { return device_; }
  const std::shared_ptr<Buffer>& header_buffer() const { return header_; }
  const std::shared_ptr<Buffer>& data_buffer() const { return data_; }
  const std::shared_ptr<Buffer>& cursor_buffer() const { return cursor_; }
  uint32_t* header_words() const { return static_cast<uint32_t*>(header_->host_ptr()); }
  // The ring's slots: 2 * capacity words, slot s = (value, tag) at words 2s, 2s + 1.
  uint32_t* ring_words() const { return static_cast<uint32_t*>(data_->host_ptr()); }
  // True once encode_init was called: a reader that finds no magic yet then waits for the
  // device instead of reporting "never initialised".
  bool init_encoded() const { return init_encoded_.load(std::memory_order_acquire); }

  // Resets the header and every slot (the ring is always zeroed: `zero_data` is kept for
  // compatibility and has no effect).
  void encode_init(CommandBuffer& cb, bool zero_data);
  void encode_push(CommandBuffer& cb, uint32_t value);
  // Pushes `count` values read on the device from `source` (written by an earlier kernel of
  // the same command buffer): word offset `offset_words`, then every `stride_words` words.
  // With `stop_flag`, the push is skipped on the device when stop_flag[0] != 0.
  void encode_push_from(CommandBuffer& cb, const std::shared_ptr<Buffer>& source, uint32_t count,
                        uint32_t stride_words, uint32_t offset_words,
                        const std::shared_ptr<Buffer>& stop_flag = nullptr);
  void encode_push_sequence(CommandBuffer& cb, uint32_t start, uint32_t count);
  void encode_close(CommandBuffer& cb);

 private:
  std::shared_ptr<Device> device_;
  uint32_t capacity_;
  std::shared_ptr<Buffer> header_;
  std::shared_ptr<Buffer> data_;
  std::shared_ptr<Buffer> cursor_;
  std::atomic<bool> init_encoded_{false};
};

// Validates a capacity and returns it as u32 (std::invalid_argument naming the rule broken).
uint32_t checked_capacity(uint64_t capacity);

}  // namespace fc
