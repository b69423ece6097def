// The CUDA backend's device: buffers (host-mapped pinned or device memory), queues (one
// stream each) and the completion thread that turns recorded events into command-buffer
// status. Internal to csrc/cuda; the rest of the core sees only fc::Device.
#pragma once

#include <cuda_runtime.h>

#include <atomic>
#include <mutex>
#include <string>
#include <vector>

#include "device/device.hpp"
#include "device/worker_thread.hpp"

namespace fc::cuda {

// "what: cudaErrorName (description)".
std::string error_text(const char* what, cudaError_t e);

// Makes `ordinal` the calling thread's current device (the runtime keeps it per thread);
// a no-op when it already is, so it is cheap on the launch path.
void make_current(int ordinal);

class CudaDevice final : public Device {
 public:
  CudaDevice(int ordinal, const cudaDeviceProp& prop);
  ~CudaDevice() override;

  std::string backend() const override { return "cuda"; }
  std::string name() const override { return name_; }
  std::shared_ptr<Buffer> new_buffer(size_t bytes, Storage storage) override;
  std::shared_ptr<Queue> new_queue() override;
  int ordinal() const { return ordinal_; }

  // Called by a queue after it launched `cb`'s work and recorded `event` behind it (or
  // failed to: `launch_error` non-empty, event null). The completion thread finishes command
  // buffers in this order.
  void track(std::shared_ptr<CommandBuffer> cb, cudaEvent_t event, std::string launch_error);
  cudaEvent_t acquire_event();  // from a pool: no cudaEventCreate per commit

 protected:
  void shutdown() override;

 private:
  struct Pending {
    std::shared_ptr<CommandBuffer> cb;
    cudaEvent_t event;
    std::string error;
  };
  void complete(Pending& p);
  void release_event(cudaEvent_t e);
  void stop_thread();

  const int ordinal_;
  const std::string name_;
  cudaStream_t util_stream_ = nullptr;  // zero-fills new Private buffers

  std::atomic<bool> abandon_{false};  // shutdown gave up waiting for the GPU
  std::mutex events_mutex_;
  std::vector<cudaEvent_t> free_events_;
  // The completion thread, in commit order. Last member: starts after the rest is constructed
  // and stops before it is destroyed.
  WorkerThread<Pending> completion_;
};

}  // namespace fc::cuda
