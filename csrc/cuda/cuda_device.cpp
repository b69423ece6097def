// The CUDA backend: device, buffers, queues, completion.
//
//   Shared buffer   cudaHostAlloc(mapped) pinned host memory + its device pointer: the CPU
//                   reads it while kernels write it (never write-combined: the CPU reads it)
//   Private buffer  cudaMalloc device memory (the channel's producer cursor lives here, so a
//                   push never reads host memory across the bus)
//   Queue           one non-blocking stream; commit launches the recorded dispatches (or the
//                   window's graph, cuda_graph.cpp) and records a pooled event behind them
//   Completion      one thread per device polls the events in commit order and marks each
//                   command buffer completed or failed, then runs its handlers. No
//                   cudaLaunchHostFunc (~100 us each) on the per-token path.
//   Errors          a failed launch or a fault the event reports is recorded on the device
//                   (sticky: every later call and every blocked reader raises) and fails the
//                   command buffer; nothing waits on a faulted context.
#include "cuda/cuda_device.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "cuda/cuda_graph.hpp"
#include "cuda/cuda_kernels.hpp"

namespace fc::cuda {

std::string error_text(const char* what, cudaError_t e) {
  return std::string(what) + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")";
}

void make_current(int ordinal) {
  int current = -1;
  if (cudaGetDevice(&current) != cudaSuccess || current != ordinal) cudaSetDevice(ordinal);
}

namespace {

class CudaBuffer final : public Buffer {
 public:
  CudaBuffer(std::shared_ptr<Device> device, int ordinal, size_t bytes, Storage storage,
             void* host, void* dev)
      : Buffer(std::move(device), bytes, storage, host, dev), ordinal_(ordinal) {}
  ~CudaBuffer() override {
    // May run on any thread (the last owner may be a completion handler): select the device.
    // Errors are ignored: a faulted context or process exit cannot be reported from here.
    make_current(ordinal_);
    if (storage() == Storage::Shared) {
      cudaFreeHost(host_ptr());
    } else {
      cudaFree(device_ptr());
    }
  }

 private:
  int ordinal_;
};

class CudaQueue final : public Queue {
 public:
  CudaQueue(std::shared_ptr<Device> device, CudaDevice* cuda) : Queue(std::move(device)), cuda_(cuda) {
    make_current(cuda_->ordinal());
    // Non-blocking: never serialised behind the legacy default stream (torch's default).
    cudaError_t e = cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking);
    if (e != cudaSuccess) throw DeviceError(error_text("creating a CUDA stream", e));
  }
  ~CudaQueue() override {
    make_current(cuda_->ordinal());
    cudaStreamDestroy(stream_);  // pending work still completes; the handle goes when idle
  }

  // Never throws: commit() has already moved the command buffer to Committed, so every
  // outcome must reach the completion thread, which finishes it in order.
  void submit(std::shared_ptr<CommandBuffer> cb) override {
    std::lock_guard lock(mutex_);  // one commit at a time: a multi-dispatch command buffer or
                                   // a graph capture is one contiguous unit on the stream
    make_current(cuda_->ordinal());
    std::string error;
    if (cuda_->faulted()) {
      error = "the device faulted earlier: " + cuda_->fault_message();
    } else if (cb->window()) {
      error = launch_window(*cb->window(), stream_);
    } else {
      for (const Dispatch& d : cb->dispatches()) {
        cudaError_t e = launch_dispatch(d, stream_);
        if (e != cudaSuccess) {
          error = error_text((std::string("launching ") + kernel_name(d.kernel)).c_str(), e);
          break;
        }
      }
    }
    cudaEvent_t event = nullptr;
    if (error.empty()) {
      event = cuda_->acquire_event();
      cudaError_t e = event ? cudaEventRecord(event, stream_) : cudaErrorMemoryAllocation;
      if (e != cudaSuccess) error = error_text("recording the completion event", e);
    }
    if (!error.empty()) cuda_->record_fault(error);
    cuda_->track(std::move(cb), error.empty() ? event : nullptr, error);
  }

 private:
  CudaDevice* cuda_;  // the Queue base holds the owning shared_ptr
  cudaStream_t stream_ = nullptr;
  std::mutex mutex_;
};

}  // namespace

CudaDevice::CudaDevice(int ordinal, const cudaDeviceProp& prop)
    : ordinal_(ordinal),
      name_(std::string(prop.name) + " (cuda:" + std::to_string(ordinal) + ", sm_" +
            std::to_string(prop.major) + std::to_string(prop.minor) + ")"),
      completion_([this](Pending& p) { complete(p); }, [ordinal] { make_current(ordinal); }) {
  make_current(ordinal_);
  cudaError_t e = cudaStreamCreateWithFlags(&util_stream_, cudaStreamNonBlocking);
  if (e != cudaSuccess) {
    throw BackendUnavailableError(error_text("cuda device: creating a stream failed", e));
  }
}

CudaDevice::~CudaDevice() {
  stop_thread();
  make_current(ordinal_);
  for (cudaEvent_t e : free_events_) cudaEventDestroy(e);
  if (util_stream_) cudaStreamDestroy(util_stream_);
}

std::shared_ptr<Buffer> CudaDevice::new_buffer(size_t bytes, Storage storage) {
  check_usable("allocate a buffer");
  make_current(ordinal_);
  const size_t n = bytes ? bytes : 1;
  void* host = nullptr;
  void* dev = nullptr;
  cudaError_t e;
  if (storage == Storage::Shared) {
    // Mapped: kernels reach it through `dev`. Not cudaHostAllocWriteCombined: the CPU reads
    // this memory, and write-combined reads are uncached and slow.
    e = cudaHostAlloc(&host, n, cudaHostAllocMapped | cudaHostAllocPortable);
    if (e == cudaSuccess) {
      std::memset(host, 0, n);
      e = cudaHostGetDevicePointer(&dev, host, 0);
      if (e != cudaSuccess) cudaFreeHost(host);
    }
  } else {
    e = cudaMalloc(&dev, n);
    if (e == cudaSuccess) {
      // Zeroed like the host backend's buffers, on a side stream and waited for here, so the
      // zeroing is ordered before any later launch on any stream (allocation is off the hot
      // path; cudaDeviceSynchronize would also wait for unrelated running work).
      e = cudaMemsetAsync(dev, 0, n, util_stream_);
      if (e == cudaSuccess) e = cudaStreamSynchronize(util_stream_);
      if (e != cudaSuccess) cudaFree(dev);
    }
  }
  if (e != cudaSuccess) {
    if (e == cudaErrorMemoryAllocation) {
      throw std::bad_alloc();
    }
    std::string msg = error_text(("allocating a " + std::to_string(bytes) + "-byte " +
                                  (storage == Storage::Shared ? "shared" : "private") + " buffer")
                                     .c_str(),
                                 e);
    record_fault(msg);
    throw DeviceError(msg);
  }
  return std::make_shared<CudaBuffer>(shared_from_this(), ordinal_, bytes, storage, host, dev);
}

std::shared_ptr<Queue> CudaDevice::new_queue() {
  check_usable("create a queue");
  return std::make_shared<CudaQueue>(shared_from_this(), this);
}

cudaEvent_t CudaDevice::acquire_event() {
  {
    std::lock_guard lock(events_mutex_);
    if (!free_events_.empty()) {
      cudaEvent_t e = free_events_.back();
      free_events_.pop_back();
      return e;
    }
  }
  cudaEvent_t e = nullptr;
  // No timing: a timing event costs more to record and we only ask "done yet?".
  if (cudaEventCreateWithFlags(&e, cudaEventDisableTiming) != cudaSuccess) return nullptr;
  return e;
}

void CudaDevice::release_event(cudaEvent_t e) {
  std::lock_guard lock(events_mutex_);
  free_events_.push_back(e);
}

void CudaDevice::track(std::shared_ptr<CommandBuffer> cb, cudaEvent_t event, std::string error) {
  auto refused = completion_.push(Pending{std::move(cb), event, std::move(error)});
  if (!refused) return;
  // close() raced with this commit: the work may run, but nobody will watch it.
  if (event) release_event(event);
  refused->cb->mark_failed("the device was closed while this command buffer was being committed");
}

void CudaDevice::complete(Pending& p) {
  if (!p.event) {
    p.cb->mark_failed(p.error);
    return;
  }
  // Poll rather than block in cudaEventSynchronize: a blocked thread could not be stopped by
  // close() if a kernel never finished. Spin ~50 us (a short command buffer completes within
  // it), then sleep with a back-off capped at 200 us.
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  auto sleep = std::chrono::microseconds(10);
  cudaError_t e;
  while ((e = cudaEventQuery(p.event)) == cudaErrorNotReady) {
    if (abandon_.load(std::memory_order_acquire)) {
      // The event stays owned by the GPU's queue; leak it rather than destroy it in flight.
      p.cb->mark_failed("the device was closed while this command buffer was still running");
      return;
    }
    if (clock::now() - start < std::chrono::microseconds(50)) continue;
    std::this_thread::sleep_for(sleep);
    sleep = std::min(sleep * 2, std::chrono::microseconds(200));
  }
  release_event(p.event);
  if (e == cudaSuccess) {
    p.cb->mark_completed();
    return;
  }
  std::string msg = error_text("the GPU reported an error while running this command buffer", e);
  record_fault(msg);
  p.cb->mark_failed(msg);
}

void CudaDevice::stop_thread() {
  // Give in-flight work a bounded time to finish, then abandon it (complete() stops polling)
  // and fail what is left instead of hanging. On the completion thread itself (the last
  // reference was dropped by a completion handler) nothing is pending: it just detaches.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  auto left = completion_.drain_then_stop([&] {
    if (std::chrono::steady_clock::now() < deadline) return false;
    abandon_.store(true, std::memory_order_release);
    return true;
  });
  for (auto& p : left) {
    p.cb->mark_failed("the device was closed while this command buffer was pending");
  }
}

void CudaDevice::shutdown() { stop_thread(); }

// ---- factory --------------------------------------------------------------------------

namespace {

// Returns "" and fills `prop` when `ordinal` can run this backend, else the reason.
std::string probe(int ordinal, cudaDeviceProp* prop) {
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e == cudaErrorNoDevice) return "no CUDA-capable GPU was found";
  if (e == cudaErrorInsufficientDriver) {
    int runtime = 0;
    cudaRuntimeGetVersion(&runtime);
    return "no NVIDIA driver was found, or it is older than this build's CUDA runtime " +
           std::to_string(runtime / 1000) + "." + std::to_string(runtime % 1000 / 10) + " needs";
  }
  if (e != cudaSuccess) return error_text("the CUDA runtime could not start", e);
  if (count == 0) return "no CUDA-capable GPU was found";
  if (ordinal >= count) {
    return "cuda:" + std::to_string(ordinal) + " does not exist: this machine has " +
           std::to_string(count) + " CUDA device(s), cuda:0..cuda:" + std::to_string(count - 1);
  }
  e = cudaGetDeviceProperties(prop, ordinal);
  if (e != cudaSuccess) return error_text("reading the GPU's properties", e);
  if (prop->major * 10 + prop->minor < 75) {
    return std::string(prop->name) + " has compute capability " + std::to_string(prop->major) +
           "." + std::to_string(prop->minor) +
           "; this build carries code for 7.5 and newer (sm_90 binary + compute_75 PTX)";
  }
  if (!prop->canMapHostMemory || !prop->unifiedAddressing) {
    return std::string(prop->name) + " cannot map host memory into its address space";
  }
  return "";
}

}  // namespace
}  // namespace fc::cuda

namespace fc {

std::string cuda_unavailable_reason() {
  cudaDeviceProp prop{};
  return cuda::probe(0, &prop);
}

std::shared_ptr<Device> make_cuda_device(int ordinal) {
  cudaDeviceProp prop{};
  std::string reason = cuda::probe(ordinal, &prop);
  if (!reason.empty()) throw BackendUnavailableError("cuda backend not available: " + reason);
  return std::make_shared<cuda::CudaDevice>(ordinal, prop);
}

}  // namespace fc
