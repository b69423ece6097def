// The Metal backend: device, buffers, queues, completion. Objective-C++ with ARC
// (csrc/metal/backend.cmake), built only on Apple platforms. It follows csrc/cuda/cuda_device.cpp
// function for function (error_text, the buffer class, the queue's submit, the device's
// new_buffer / new_queue / track / complete / shutdown, probe and the two factories).
//
//   Shared buffer   MTLBuffer with MTLResourceStorageModeShared: the CPU reads it while kernels
//                   write it (Apple silicon: one physical memory)
//   Private buffer  MTLResourceStorageModePrivate (the channel's producer cursor lives here)
//   Queue           one MTLCommandQueue; commit encodes the recorded dispatches (a window's are
//                   re-encoded on every replay: Metal has no graph to relaunch for free) into one
//                   MTLCommandBuffer with one serial compute pass, then commits it
//   Completion      addCompletedHandler marks the command buffer completed or failed and runs
//                   its handlers on Metal's completion thread; no thread of our own
//   Errors          a command buffer in error (GPU fault, page fault, the watchdog's timeout) is
//                   recorded on the device (sticky: every later call and every blocked reader
//                   raises) and fails the command buffer; nothing waits on it forever
//
// Memory semantics (docs/protocol.md, "Per backend"): kernels publish to the CPU during
// execution through system-coherent stores and system-scope fences (prelude_msl.inc), the way
// MLX's fast GPU->CPU synchronisation does. Apple promises CPU visibility of a shared buffer only
// once the command buffer completed, so completion stays the authoritative point: the handler's
// mark_completed is a release store that waiters acquire. No kernel ever spins on a value the CPU
// writes during the same command buffer, and windows are bounded by the caller (the GPU watchdog
// kills long command buffers; the kill arrives here as an error status).
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <string>

#include "device/device.hpp"
#include "metal/autorelease_pool.hpp"
#include "metal/metal_kernels.hpp"
#include "metal/metal_sdk.hpp"

#if !__has_feature(objc_arc)
#error "metal_device.mm needs ARC: compile it with -fobjc-arc (csrc/metal/backend.cmake)"
#endif

namespace fc::metal {
namespace {

// How long Device.close() waits for committed command buffers.
constexpr auto kCloseWait = std::chrono::seconds(10);
// Allocation granularity, as on the host backend (one cache line).
constexpr size_t kBufferAlignment = 64;

// device_ptr() of a Metal buffer is the MTLBuffer object itself (an unretained address): that is
// what a Dispatch records and what encode_dispatch binds. This object holds the strong
// reference, and every command buffer or window that records the buffer keeps this object alive
// until the GPU is done with it (CommandBuffer and Window retain their Buffers).
class MetalBuffer final : public Buffer {
 public:
  MetalBuffer(std::shared_ptr<Device> device, size_t bytes, Storage storage, id<MTLBuffer> buffer)
      : Buffer(std::move(device), bytes, storage,
               storage == Storage::Shared ? buffer.contents : nullptr, (__bridge void*)buffer),
        buffer_(buffer) {}

 private:
  // Only owned, never read: the strong reference is what keeps device_ptr() valid; ARC
  // releases it with this object.
  [[maybe_unused]] id<MTLBuffer> buffer_;
};

class MetalDevice final : public Device {
 public:
  MetalDevice(id<MTLDevice> device, const Pipelines& pipelines);

  std::string backend() const override { return "metal"; }
  std::string name() const override { return to_std(device_.name); }
  std::shared_ptr<Buffer> new_buffer(size_t bytes, Storage storage) override;
  std::shared_ptr<Queue> new_queue() override;

  const Pipelines& pipelines() const { return pipelines_; }
  // Bound to every unused buffer slot of a dispatch.
  id<MTLBuffer> placeholder() const { return placeholder_; }

  // Called by a queue after it encoded `cb`'s work into `mtl_cb`, before the commit: the
  // completed handler will finish `cb` (complete below).
  void track(std::shared_ptr<CommandBuffer> cb, id<MTLCommandBuffer> mtl_cb);

 protected:
  void shutdown() override;
  // A Metal kernel must not wait for a value the CPU writes while its command buffer runs:
  // Apple does not promise such a write becomes visible before completion (DESIGN.md), so
  // h2d_pop_wait is refused when encoded (encode_rules.cpp); h2d_try_pop polls.
  bool backend_allows_cpu_waits() const override { return false; }

 private:
  void complete(CommandBuffer& cb, id<MTLCommandBuffer> done);
  void zero_private(id<MTLBuffer> buffer);

  id<MTLDevice> device_;
  const Pipelines& pipelines_;
  id<MTLBuffer> placeholder_;
  id<MTLCommandQueue> util_queue_;  // zero-fills new Private buffers
  std::mutex util_mutex_;

  std::mutex mutex_;
  std::condition_variable cv_;
  size_t in_flight_ = 0;  // committed command buffers whose handler has not run yet
};

class MetalQueue final : public Queue {
 public:
  MetalQueue(std::shared_ptr<Device> device, MetalDevice* metal, id<MTLCommandQueue> queue)
      : Queue(std::move(device)), metal_(metal), queue_(queue) {}

  // Never throws: commit() has already moved the command buffer to Committed, so every outcome
  // must end in mark_completed or mark_failed.
  void submit(std::shared_ptr<CommandBuffer> cb) override {
    if (metal_->faulted()) {
      cb->mark_failed("the device faulted earlier: " + metal_->fault_message());
      return;
    }
    in_autorelease_pool([&] {
      std::lock_guard lock(mutex_);  // one commit at a time: the MTLCommandQueue's order is
                                     // the order in which command buffers were committed
      // Unretained references: the CommandBuffer (or its Window) already keeps every Buffer,
      // and so every MTLBuffer, alive until the completed handler has run.
      id<MTLCommandBuffer> mtl_cb = [queue_ commandBufferWithUnretainedReferences];
      id<MTLComputeCommandEncoder> encoder =
          mtl_cb ? [mtl_cb computeCommandEncoderWithDispatchType:MTLDispatchTypeSerial] : nil;
      if (!encoder) {
        const std::string error = "metal: could not create a command buffer or compute encoder";
        metal_->record_fault(error);
        cb->mark_failed(error);
        return;
      }
      // A serial pass: each dispatch sees the writes of those before it (a push reading a value
      // an earlier kernel of this command buffer produced). A replayed window's dispatches are
      // cb->dispatches() too.
      for (const Dispatch& d : cb->dispatches()) {
        encode_dispatch(d, metal_->pipelines(), metal_->placeholder(), encoder);
      }
      [encoder endEncoding];
      metal_->track(std::move(cb), mtl_cb);
      [mtl_cb commit];
    });
  }

 private:
  MetalDevice* metal_;  // the Queue base holds the owning shared_ptr
  id<MTLCommandQueue> queue_;
  std::mutex mutex_;
};

}  // namespace

MetalDevice::MetalDevice(id<MTLDevice> device, const Pipelines& pipelines)
    : device_(device),
      pipelines_(pipelines),
      placeholder_([device newBufferWithLength:kBufferAlignment
                                       options:MTLResourceStorageModeShared]),
      util_queue_([device newCommandQueue]) {
  if (!placeholder_ || !util_queue_) {
    throw DeviceError("metal: could not create the device's placeholder buffer or utility queue");
  }
}

std::shared_ptr<Buffer> MetalDevice::new_buffer(size_t bytes, Storage storage) {
  check_usable("allocate a buffer");
  const size_t length =
      ((bytes ? bytes : 1) + kBufferAlignment - 1) / kBufferAlignment * kBufferAlignment;
  const MTLResourceOptions options = storage == Storage::Shared ? MTLResourceStorageModeShared
                                                                : MTLResourceStorageModePrivate;
  id<MTLBuffer> buffer = [device_ newBufferWithLength:length options:options];
  if (!buffer) {
    throw DeviceError("metal: could not allocate a buffer of " + std::to_string(bytes) +
                      " bytes on '" + name() + "'");
  }
  // Zeroed like the host backend's buffers, so that results never depend on stale memory.
  if (storage == Storage::Shared) {
    std::memset(buffer.contents, 0, length);
  } else {
    zero_private(buffer);
  }
  return std::make_shared<MetalBuffer>(shared_from_this(), bytes, storage, buffer);
}

void MetalDevice::zero_private(id<MTLBuffer> buffer) {
  // The pool must be drained even when the fill failed and this throws.
  in_autorelease_pool([&] {
    std::lock_guard lock(util_mutex_);
    id<MTLCommandBuffer> cb = [util_queue_ commandBuffer];
    id<MTLBlitCommandEncoder> blit = [cb blitCommandEncoder];
    [blit fillBuffer:buffer range:NSMakeRange(0, buffer.length) value:0];
    [blit endEncoding];
    [cb commit];
    // Allocation is not a hot path; waiting orders the fill before any use on any queue.
    [cb waitUntilCompleted];
    if (cb.status != MTLCommandBufferStatusCompleted) {
      throw DeviceError(error_text("metal: zero-filling a private buffer failed", cb.error));
    }
  });
}

std::shared_ptr<Queue> MetalDevice::new_queue() {
  check_usable("create a queue");
  id<MTLCommandQueue> queue = [device_ newCommandQueue];
  if (!queue) throw DeviceError("metal: could not create a command queue on '" + name() + "'");
  return std::make_shared<MetalQueue>(shared_from_this(), this, queue);
}

void MetalDevice::track(std::shared_ptr<CommandBuffer> cb, id<MTLCommandBuffer> mtl_cb) {
  {
    std::lock_guard lock(mutex_);
    ++in_flight_;
  }
  // The block keeps `cb` (and through it its queue, this device and every buffer it uses) alive
  // until the GPU is done. Metal requires handlers to be added before commit.
  MetalDevice* self = this;
  [mtl_cb addCompletedHandler:^(id<MTLCommandBuffer> done) {
    self->complete(*cb, done);
  }];
}

// Runs on a Metal completion thread. Nothing may escape it (an exception through the block would
// terminate the process), and the in-flight count drops whatever happens.
void MetalDevice::complete(CommandBuffer& cb, id<MTLCommandBuffer> done) {
  try {
    if (done.status == MTLCommandBufferStatusCompleted) {
      cb.mark_completed();
    } else {
      // Fault the device first, so that a reader woken by the failed command buffer already
      // sees the cause.
      const std::string msg =
          error_text("the GPU reported an error while running this command buffer", done.error);
      record_fault(msg);
      cb.mark_failed(msg);
    }
  } catch (const std::exception& e) {
    record_fault(std::string("metal: a completion handler threw: ") + e.what());
  } catch (...) {
    record_fault("metal: a completion handler threw a non-standard exception");
  }
  {
    std::lock_guard lock(mutex_);
    --in_flight_;
  }
  cv_.notify_all();
}

// Metal cannot cancel a committed command buffer: close() waits for them (bounded). One still
// running after that keeps its buffers alive through the CommandBuffer its handler holds, and its
// handler still finishes it.
void MetalDevice::shutdown() {
  std::unique_lock lock(mutex_);
  cv_.wait_for(lock, kCloseWait, [&] { return in_flight_ == 0; });
}

// ---- factory --------------------------------------------------------------------------

namespace {

// Returns "" when `device` can run this backend, else the reason. The conditions are those
// under which MLX enables its GPU->CPU fast synchronisation (mlx/backend/metal/fence.cpp): a
// Metal 3 GPU and macOS 15, which brings MSL 3.2 (coherent(system), the system thread scope).
// Without them a CPU reader could trust a channel only after completion.
std::string probe(id<MTLDevice> device) {
#if !FC_METAL_SDK_HAS_MSL_3_2
  (void)device;
  return kMetalSdkTooOldReason;
#else
  if (!device) return "no Metal device was found (MTLCreateSystemDefaultDevice returned nil)";
  if (@available(macOS 15.0, iOS 18.0, *)) {
  } else {
    return "the metal backend needs macOS 15 or later (MSL 3.2: system-coherent stores and "
           "system-scope fences let the CPU read a channel while the GPU runs)";
  }
  // An Apple-designed GPU, Apple7 (M1, A14) or later. Intel Macs would pass the Metal 3 test
  // below (their AMD and Intel GPUs are Metal 3 too, and an Intel iGPU even reports unified
  // memory), but the protocol was designed and reviewed only for Apple silicon: a
  // coherent(system) store seen by the CPU during execution relies on its one cache-coherent
  // memory shared by CPU and GPU, not on PCIe or Intel's iGPU caches. Apple7 is the oldest
  // family of Apple-silicon Macs and the floor MLX documents; it implies unified memory and
  // non-uniform threadgroups (encode_dispatch).
  if (![device supportsFamily:MTLGPUFamilyApple7]) {
    return "GPU '" + to_std(device.name) +
           "' is not an Apple GPU of family Apple7 (M1) or later; the metal backend needs "
           "Apple silicon (an Intel Mac's GPU does not qualify)";
  }
  if (![device supportsFamily:MTLGPUFamilyMetal3]) {
    return "GPU '" + to_std(device.name) + "' is not in MTLGPUFamilyMetal3";
  }
  return "";
#endif
}

}  // namespace
}  // namespace fc::metal

namespace fc {

std::string metal_unavailable_reason() {
  return metal::in_autorelease_pool([] { return metal::probe(MTLCreateSystemDefaultDevice()); });
}

// Every failure here is an exception (unavailable, MSL compile error): the pool helper drains
// what the attempt autoreleased before the exception leaves.
std::shared_ptr<Device> make_metal_device() {
  return metal::in_autorelease_pool([]() -> std::shared_ptr<Device> {
    id<MTLDevice> mtl_device = MTLCreateSystemDefaultDevice();
    std::string reason = metal::probe(mtl_device);
    if (!reason.empty()) throw BackendUnavailableError("metal backend not available: " + reason);
    return std::make_shared<metal::MetalDevice>(mtl_device, metal::pipelines_for(mtl_device));
  });
}

}  // namespace fc
