// Host-side helpers shared by the CUDA benchmark instruments (cuda_bench.cu,
// cuda_record_bench.cu): the clock they time with, CUDA error checks, and channels made ready
// (initialised on the device) before a measurement starts.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <utility>

#include "cuda/cuda_device.hpp"
#include "device/device.hpp"

// Internal linkage, as when each file had its own copy: nothing here may become an exported
// symbol of _core (test_reliability_core checks the module exports only its entry point).
namespace fc::cuda::bench {
namespace {

using clock_type = std::chrono::steady_clock;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now().time_since_epoch())
      .count();
}

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw DeviceError(error_text(what, e));
}

// A channel of type `Channel` (ChannelU32, RecordChannel) on `device`, its init kernel run and
// finished, so the measurement that follows does not include the first init.
template <class Channel, class... Args>
std::shared_ptr<Channel> ready_channel(const std::shared_ptr<Device>& device, Args&&... args) {
  auto ch = std::make_shared<Channel>(device, std::forward<Args>(args)...);
  auto cb = device->new_queue()->command_buffer();
  ch->encode_init(*cb);
  cb->commit();
  cb->wait_until_completed(30.0);
  return ch;
}

}  // namespace
}  // namespace fc::cuda::bench
