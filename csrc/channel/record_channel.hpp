// RecordChannel: a device-to-host ring of fixed-size records (tensors), drop-oldest like a u32
// channel. Header and producer cursor are a u32 channel's (csrc/channel/layout.hpp); the data
// buffer holds per-slot tags and the payload slots (csrc/kernels/record_kernels.inc; protocol:
// docs/protocol.md, "Record channels").
#pragma once

#include <atomic>
#include <memory>
#include <mutex>

#include "channel/channel_cursor.hpp"
#include "channel/layout.hpp"
#include "channel/single_consumer.hpp"
#include "device/device.hpp"
#include "device/kernel_args.hpp"

namespace fc {

class RecordReader;

class RecordChannel : public std::enable_shared_from_this<RecordChannel> {
 public:
  // Largest record: 64 MiB (records of at least 4 MiB are the design point).
  static constexpr uint64_t kMaxRecordBytes = uint64_t{64} << 20;
  // Largest ring: 4 GiB of payload.
  static constexpr uint64_t kMaxDataBytes = uint64_t{4} << 30;

  // std::invalid_argument for a capacity that is not a power of two in 2..2^20, a record size
  // that is 0, not a multiple of 4 bytes or above kMaxRecordBytes, or a ring above
  // kMaxDataBytes.
  RecordChannel(std::shared_ptr<Device> device, uint64_t capacity, uint64_t record_bytes);

  uint32_t capacity() const { return capacity_; }
  uint64_t record_bytes() const { return record_bytes_; }
  uint32_t record_words() const { return static_cast<uint32_t>(record_bytes_ / 4); }
  uint32_t stride_words() const { return stride_words_; }
  uint32_t payload_offset_words() const { return payload_offset_words_; }
  const std::shared_ptr<Device>& device() const { return device_; }
  ChannelArg kernel_buffers() const { return {header_, data_, cursor_}; }
  const std::shared_ptr<Buffer>& header_buffer() const { return header_; }
  uint32_t* header_words() const { return static_cast<uint32_t*>(header_->host_ptr()); }
  const uint32_t* data_words() const { return static_cast<const uint32_t*>(data_->host_ptr()); }
  uint32_t inits_encoded() const { return inits_encoded_.load(std::memory_order_acquire); }

  void encode_init(CommandBuffer& cb);
  // Pushes one record read on the device from `source` at byte `offset_bytes` (a multiple of
  // 4), written by an earlier kernel; with `stop_flag`, skipped once stop_flag[0] != 0.
  void encode_push(CommandBuffer& cb, const BufferArg& source, uint64_t offset_bytes,
                   const std::shared_ptr<Buffer>& stop_flag = nullptr);
  // The same dispatch as a raw launch (a foreign CUDA stream: torch interop).
  Dispatch push_dispatch(const BufferArg& source, uint64_t offset_bytes) const;
  void encode_close(CommandBuffer& cb);

  // The channel's one consumer (see ChannelU32::reader()).
  std::shared_ptr<RecordReader> reader();
  void forget_reader(const RecordReader* reader);
  // Where the last reader stopped (the next one continues there, same epoch only).
  ConsumerPosition consumer_position() const;
  void save_consumer_position(const ConsumerPosition& position);

 private:
  kernel_args::record_push push_args(const BufferArg& source, uint64_t offset_bytes) const;

  std::shared_ptr<Device> device_;
  uint32_t capacity_;
  uint64_t record_bytes_;
  uint32_t stride_words_;
  uint32_t payload_offset_words_;
  std::shared_ptr<Buffer> header_;
  std::shared_ptr<Buffer> data_;
  std::shared_ptr<Buffer> cursor_;
  std::atomic<uint32_t> inits_encoded_{0};
  ConsumerSlot<RecordReader> consumer_;
};

}  // namespace fc
