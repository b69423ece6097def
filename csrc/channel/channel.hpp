// ChannelU32: the buffers of one channel and the encoders for its kernels.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>

#include "channel/channel_cursor.hpp"
#include "channel/single_consumer.hpp"
#include "channel/layout.hpp"
#include "device/device.hpp"
#include "device/kernel_args.hpp"

namespace fc {

class ChannelU32Reader;

class ChannelU32 : public std::enable_shared_from_this<ChannelU32> {
 public:
  // Allocates the header and ring (shared) and the producer cursor (device-local). The
  // channel is not usable until a channel_u32_init dispatch has run (encode_init).
  // Throws std::invalid_argument for a capacity that is 0, not a power of two, or above
  // layout::kMaxCapacity, or a slot protocol other than 0 (the device's default), 1 or 2.
  ChannelU32(std::shared_ptr<Device> device, uint64_t capacity, uint32_t slot_protocol = 0);

  uint32_t capacity() const { return capacity_; }
  // The slot protocol every init of this channel starts (docs/protocol.md): 1 (one 8-byte
  // store per slot) or 2 (32-bit stores with a tag checked before and after the value).
  uint32_t slot_protocol() const { return slot_protocol_; }
  const std::shared_ptr<Device>& device() const { return device_; }
  const std::shared_ptr<Buffer>& header_buffer() const { return header_; }
  const std::shared_ptr<Buffer>& data_buffer() const { return data_; }
  const std::shared_ptr<Buffer>& cursor_buffer() const { return cursor_; }
  // The three buffers as the one group a kernel's channel parameter takes.
  ChannelArg kernel_buffers() const { return {header_, data_, cursor_}; }
  uint32_t* header_words() const { return static_cast<uint32_t*>(header_->host_ptr()); }
  // The ring's slots: 2 * capacity words, slot s = (value, tag) at words 2s, 2s + 1.
  uint32_t* ring_words() const { return static_cast<uint32_t*>(data_->host_ptr()); }
  // How many inits were encoded so far. The device's EPOCH word reaches this number once they
  // all ran: a reader made now waits for that epoch instead of reading the previous run.
  uint32_t inits_encoded() const { return inits_encoded_.load(std::memory_order_acquire); }
  bool init_encoded() const { return inits_encoded() != 0; }

  // Resets the header and every slot and starts a new epoch.
  void encode_init(CommandBuffer& cb);
  void encode_push(CommandBuffer& cb, uint32_t value);
  // Pushes `count` values read on the device from `source` (written by an earlier kernel of
  // the same command buffer): word offset `offset_words`, then every `stride_words` words.
  // With `stop_flag`, the push is skipped on the device when stop_flag[0] != 0.
  void encode_push_from(CommandBuffer& cb, const std::shared_ptr<Buffer>& source, uint32_t count,
                        uint32_t stride_words, uint32_t offset_words,
                        const std::shared_ptr<Buffer>& stop_flag = nullptr);
  void encode_push_sequence(CommandBuffer& cb, uint32_t start, uint32_t count);
  void encode_close(CommandBuffer& cb);

  // The channel's one consumer: the live reader if there is one, else a new reader that
  // continues where the last one stopped (single consumer per channel, not per reader object).
  std::shared_ptr<ChannelU32Reader> reader();

  ConsumerPosition consumer_position() const;
  void save_consumer_position(const ConsumerPosition& position);
  // Called by a reader that closes, so that reader() makes a fresh one.
  void forget_reader(const ChannelU32Reader* reader);

 private:
  std::shared_ptr<Device> device_;
  uint32_t capacity_;
  uint32_t slot_protocol_;
  std::shared_ptr<Buffer> header_;
  std::shared_ptr<Buffer> data_;
  std::shared_ptr<Buffer> cursor_;
  std::atomic<uint32_t> inits_encoded_{0};
  ConsumerSlot<ChannelU32Reader> consumer_;
};

// Validates a capacity and returns it as u32 (std::invalid_argument naming the rule broken).
uint32_t checked_capacity(uint64_t capacity);
// Validates a slot protocol: 1 or 2 (0: `fallback`, the device's default).
uint32_t checked_slot_protocol(uint64_t protocol, uint32_t fallback);

}  // namespace fc
