// H2DChannel: a host-to-device channel's buffers, its encoders and the checks around a pop
// (layout: h2d_layout.hpp; kernels: kernels/h2d_kernels.inc; protocol: docs/protocol.md
// "Host-to-device channels"). The CPU side, the single producer, is the channel's H2DWriter
// (h2d_writer.hpp).
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "channel/h2d_layout.hpp"
#include "channel/h2d_writer.hpp"
#include "device/device.hpp"
#include "device/kernel_args.hpp"

namespace fc {

class H2DChannel : public std::enable_shared_from_this<H2DChannel> {
 public:
  // Allocates the header and ring (shared) and the device's cursor (device-local). Usable once
  // an h2d_init has run (encode_init). std::invalid_argument for a capacity that is not a power
  // of two in 1 .. h2d::kMaxCapacity or a record of 0 or more than h2d::kMaxRecordWords words.
  H2DChannel(std::shared_ptr<Device> device, uint64_t capacity, uint64_t record_words = 1);

  uint32_t capacity() const { return capacity_; }
  uint32_t record_words() const { return record_words_; }
  uint32_t slot_words() const { return record_words_ + 1; }  // payload, then the tag
  const std::shared_ptr<Device>& device() const { return device_; }
  ChannelArg kernel_buffers() const { return {header_, data_, cursor_}; }
  uint32_t* header_words() const { return static_cast<uint32_t*>(header_->host_ptr()); }
  uint32_t* data_words() const { return static_cast<uint32_t*>(data_->host_ptr()); }
  // How many inits were encoded; the writer waits until the device's EPOCH reaches it.
  uint32_t inits_encoded() const { return inits_encoded_.load(std::memory_order_acquire); }

  // Where a pop puts its item and how it reports (h2d_try_pop's parameters).
  struct PopTarget {
    std::shared_ptr<Buffer> out;        // receives record_words words at word out_offset
    uint32_t out_offset = 0;
    std::shared_ptr<Buffer> got;        // u32[1]: 1 when an item was taken, else 0
    std::shared_ptr<Buffer> stop_flag;  // optional: predicated on it, and/or set to stop_code
    bool predicated = false;            // skip the pop while stop_flag[0] != 0
    uint32_t stop_code = 0;             // set stop_flag[0] when the stream ends (closed, failed)
  };

  void encode_init(CommandBuffer& cb);
  void encode_try_pop(CommandBuffer& cb, const PopTarget& target);
  // Waits at most timeout_us microseconds on the device. Refused on Metal (encode_rules.cpp).
  void encode_pop_wait(CommandBuffer& cb, const PopTarget& target, uint32_t timeout_us);

  // Every encoder of a kernel that takes this channel calls this (Python's named dispatch
  // too), before recording it: an h2d_init is counted once recorded (after()); any other
  // kernel is refused while no init is encoded and gets the completion check that reports the
  // device's error word.
  void before_encode(CommandBuffer& cb, KernelId kernel);
  void after_encode(KernelId kernel);

  // The device's error word as a message, cleared (an atomic exchange: each error is reported
  // once); "" when none. The completion check of every command buffer that pops calls it.
  std::string take_error();
  // The last error take_error() reported ("" when none).
  std::string last_error() const;
  // What a message names the channel by.
  std::string describe() const;

  // The single producer; it lives as long as the channel.
  H2DWriter& writer() { return writer_; }

 private:
  void check_pop_target(const PopTarget& target, const char* kernel) const;

  std::shared_ptr<Device> device_;
  uint32_t capacity_;
  uint32_t record_words_;
  std::shared_ptr<Buffer> header_;
  std::shared_ptr<Buffer> data_;
  std::shared_ptr<Buffer> cursor_;
  std::atomic<uint32_t> inits_encoded_{0};
  mutable std::mutex error_mutex_;
  std::string last_error_;
  H2DWriter writer_;  // last: it refers to the members above
};

}  // namespace fc
