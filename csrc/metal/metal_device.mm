// The Metal backend ("metal"): the device interface of csrc/device/device.hpp on an Apple GPU.
// Objective-C++ with ARC (csrc/metal/backend.cmake), built only on Apple platforms.
//
//   Buffer         MTLBuffer, MTLResourceStorageModeShared (Private for Storage::Private)
//   Queue          one MTLCommandQueue
//   CommandBuffer  at commit: one MTLCommandBuffer, one serial compute encoder, the recorded
//                  dispatches encoded in order; completion and errors via addCompletedHandler
//   Window replay  the same: the window's dispatch list is re-encoded into a new command buffer
//   Kernels        the MSL that csrc/metal/msl_source.cpp assembles (prelude + layout + the
//                  shared bodies + entry points), compiled once per process with
//                  newLibraryWithSource (MSL 3.2), one cached pipeline per kernel
//
// Memory semantics (DESIGN.md, "Memory ordering per backend"): kernels publish to the CPU during
// execution through system-coherent stores and system-scope fences (prelude_msl.inc), the way
// MLX's fast GPU->CPU synchronisation does; Apple only promises visibility at completion, so
// completion stays the authoritative point: the completed handler marks the command buffer done
// (a release store the waiters acquire) and a failed command buffer fails the device, so readers
// and waiters raise instead of hanging. No kernel ever waits on a value the CPU writes while the
// command buffer runs, and windows are bounded by the caller (the GPU watchdog kills long
// command buffers; the kill arrives here as an error status).
#import <Foundation/Foundation.h>
#import <Metal/Metal.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <string>

#include "device/device.hpp"
#include "metal/msl_source.hpp"

#if !__has_feature(objc_arc)
#error "metal_device.mm needs ARC: compile it with -fobjc-arc (csrc/metal/backend.cmake)"
#endif

namespace fc {
namespace {

// How long Device.close() waits for committed command buffers before it returns.
constexpr auto kCloseWait = std::chrono::seconds(30);
// Allocation granularity, as on the host backend (one cache line).
constexpr size_t kBufferAlignment = 64;

std::string to_std(NSString* s) { return s ? std::string([s UTF8String]) : std::string(); }

std::string describe(NSError* error) {
  if (!error) return "no error description";
  return to_std(error.localizedDescription) + " (" + to_std(error.domain) + " code " +
         std::to_string(static_cast<long>(error.code)) + ")";
}

// ---- availability -----------------------------------------------------------------------

// "" when `device` can run this backend, else why not. The conditions are the ones under which
// MLX enables its GPU->CPU fast synchronisation (mlx/backend/metal/fence.cpp): a Metal 3 GPU and
// macOS 15, which brings MSL 3.2 (coherent(system), the system thread scope). Without them a
// CPU reader could only trust a channel after completion, which is not what a channel is for.
std::string unavailable_reason_for(id<MTLDevice> device) {
  if (!device) return "no Metal device: MTLCreateSystemDefaultDevice() returned nil";
  if (@available(macOS 15.0, iOS 18.0, *)) {
  } else {
    return "the metal backend needs macOS 15 or later (MSL 3.2: system-coherent stores and "
           "system-scope fences let the CPU read a channel while the GPU runs)";
  }
  if (![device supportsFamily:MTLGPUFamilyMetal3]) {
    return "GPU '" + to_std(device.name) + "' is not in MTLGPUFamilyMetal3";
  }
  if (!device.hasUnifiedMemory) {
    return "GPU '" + to_std(device.name) +
           "' has no unified memory; the metal backend is built for Apple silicon";
  }
  return "";
}

// ---- pipelines: compiled once per process -----------------------------------------------

struct Pipelines {
  id<MTLDevice> device;
  std::array<id<MTLComputePipelineState>, kKernelCount> by_kernel;
  std::array<NSUInteger, kKernelCount> max_threads{};
};

MTLCompileOptions* compile_options() {
  MTLCompileOptions* options = [MTLCompileOptions new];
  if (@available(macOS 15.0, iOS 18.0, *)) {
    // Explicit, not "the newest the OS knows": the prelude is written for MSL 3.2.
    options.languageVersion = MTLLanguageVersion3_2;
    // IEEE arithmetic and precise math functions, so that a sampled token is the same on every
    // backend (the workflow tests compare them).
    options.mathMode = MTLMathModeSafe;
    options.mathFloatingPointFunctions = MTLMathFloatingPointFunctionsPrecise;
  } else {
    throw BackendUnavailableError("metal backend not available: needs macOS 15 (MSL 3.2)");
  }
  return options;
}

Pipelines* build_pipelines(id<MTLDevice> device) {
  auto* p = new Pipelines();
  p->device = device;
  NSString* source = [NSString stringWithUTF8String:metal::msl_source().c_str()];
  NSError* error = nil;
  id<MTLLibrary> library = [device newLibraryWithSource:source
                                                options:compile_options()
                                                  error:&error];
  // newLibraryWithSource may set `error` for warnings and still return a library: only a nil
  // library is a failure.
  if (!library) {
    delete p;
    throw DeviceError("metal: compiling the assembled MSL (MSL " +
                      std::string(metal::kMslLanguageVersion) + ") failed: " + describe(error));
  }
  for (int k = 0; k < kKernelCount; ++k) {
    const std::string name = metal::msl_entry_name(static_cast<KernelId>(k));
    id<MTLFunction> function = [library newFunctionWithName:@(name.c_str())];
    if (!function) {
      delete p;
      throw DeviceError("metal: the compiled MSL has no kernel function '" + name + "'");
    }
    error = nil;
    id<MTLComputePipelineState> pipeline = [device newComputePipelineStateWithFunction:function
                                                                                 error:&error];
    if (!pipeline) {
      delete p;
      throw DeviceError("metal: building the pipeline of '" + name + "' failed: " +
                        describe(error));
    }
    p->by_kernel[k] = pipeline;
    p->max_threads[k] = pipeline.maxTotalThreadsPerThreadgroup;
  }
  return p;
}

// The pipelines of `device`, compiled on first use. Never freed: pipelines live as long as the
// process (like MLX's kernel cache), and a device opened again reuses them at no cost.
const Pipelines& pipelines_for(id<MTLDevice> device) {
  static std::mutex mutex;
  static Pipelines* cached = nullptr;
  std::lock_guard lock(mutex);
  if (!cached || cached->device != device) cached = build_pipelines(device);
  return *cached;
}

// ---- buffers ---------------------------------------------------------------------------

// device_ptr() of a Metal buffer is the MTLBuffer object itself (an unretained address): that is
// what a Dispatch records and what encode() binds. This object holds the strong reference, and
// every command buffer or window that records the buffer keeps this object alive until the GPU
// is done with it (CommandBuffer / Window retain their Buffers).
class MetalBuffer final : public Buffer {
 public:
  MetalBuffer(std::shared_ptr<Device> device, size_t bytes, Storage storage, id<MTLBuffer> buffer)
      : Buffer(std::move(device), bytes, storage,
               storage == Storage::Shared ? buffer.contents : nullptr, (__bridge void*)buffer),
        buffer_(buffer) {}

 private:
  id<MTLBuffer> buffer_;
};

id<MTLBuffer> mtl_buffer(void* device_ptr) { return (__bridge id<MTLBuffer>)device_ptr; }

// ---- device ----------------------------------------------------------------------------

class MetalDevice final : public Device {
 public:
  explicit MetalDevice(id<MTLDevice> device)
      : device_(device),
        pipelines_(pipelines_for(device)),
        placeholder_([device newBufferWithLength:kBufferAlignment
                                         options:MTLResourceStorageModeShared]),
        fill_queue_([device newCommandQueue]) {
    if (!placeholder_ || !fill_queue_) {
      throw DeviceError("metal: could not create the device's placeholder buffer or queue");
    }
  }

  std::string backend() const override { return "metal"; }
  std::string name() const override { return to_std(device_.name); }
  std::shared_ptr<Buffer> new_buffer(size_t bytes, Storage storage) override;
  std::shared_ptr<Queue> new_queue() override;

  id<MTLComputePipelineState> pipeline(KernelId k) const {
    return pipelines_.by_kernel[static_cast<int>(k)];
  }
  NSUInteger max_threads(KernelId k) const { return pipelines_.max_threads[static_cast<int>(k)]; }
  // Bound to every unused buffer slot, so that each entry point's six buffer arguments are
  // always bound (the bodies never touch a slot their kernel does not use).
  id<MTLBuffer> placeholder() const { return placeholder_; }

  // Counts committed, not yet completed command buffers, for close().
  void work_started() {
    std::lock_guard lock(work_mutex_);
    ++in_flight_;
  }
  void work_finished() {
    {
      std::lock_guard lock(work_mutex_);
      --in_flight_;
    }
    work_cv_.notify_all();
  }

 protected:
  // Metal cannot cancel a committed command buffer: close() waits for them (bounded), and every
  // one still running keeps its buffers alive through the CommandBuffer its handler holds.
  void shutdown() override { wait_for_work(kCloseWait); }

 private:
  void wait_for_work(std::chrono::seconds bound) {
    std::unique_lock lock(work_mutex_);
    work_cv_.wait_for(lock, bound, [&] { return in_flight_ == 0; });
  }
  void zero_private(id<MTLBuffer> buffer);

  id<MTLDevice> device_;
  const Pipelines& pipelines_;
  id<MTLBuffer> placeholder_;
  id<MTLCommandQueue> fill_queue_;  // zero-fills private buffers at allocation
  std::mutex fill_mutex_;
  std::mutex work_mutex_;
  std::condition_variable work_cv_;
  size_t in_flight_ = 0;
};

std::shared_ptr<Buffer> MetalDevice::new_buffer(size_t bytes, Storage storage) {
  check_usable("allocate a buffer");
  const size_t length = ((bytes ? bytes : 1) + kBufferAlignment - 1) / kBufferAlignment *
                        kBufferAlignment;
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
  @autoreleasepool {
    std::lock_guard lock(fill_mutex_);
    id<MTLCommandBuffer> cb = [fill_queue_ commandBuffer];
    id<MTLBlitCommandEncoder> blit = [cb blitCommandEncoder];
    [blit fillBuffer:buffer range:NSMakeRange(0, buffer.length) value:0];
    [blit endEncoding];
    [cb commit];
    // Allocation is not a hot path; waiting here orders the fill before any later use of the
    // buffer on any queue.
    [cb waitUntilCompleted];
    if (cb.status != MTLCommandBufferStatusCompleted) {
      throw DeviceError("metal: zero-filling a private buffer failed: " + describe(cb.error));
    }
  }
}

// ---- queue and command buffers ----------------------------------------------------------

class MetalQueue final : public Queue {
 public:
  MetalQueue(std::shared_ptr<Device> device, MetalDevice* metal, id<MTLCommandQueue> queue)
      : Queue(std::move(device)), metal_(metal), queue_(queue) {}
  void submit(std::shared_ptr<CommandBuffer> cb) override;

 private:
  void encode(id<MTLCommandBuffer> mtl_cb, const std::vector<Dispatch>& dispatches) const;

  MetalDevice* metal_;  // the Queue base holds the owning reference
  id<MTLCommandQueue> queue_;
  std::mutex submit_mutex_;  // commit order on the MTLCommandQueue == CommandBuffer commit order
};

std::shared_ptr<Queue> MetalDevice::new_queue() {
  check_usable("create a queue");
  id<MTLCommandQueue> queue = [device_ newCommandQueue];
  if (!queue) throw DeviceError("metal: could not create a command queue on '" + name() + "'");
  return std::make_shared<MetalQueue>(shared_from_this(), this, queue);
}

// The completed handler's work: status -> CommandBuffer, errors -> a sticky device fault.
// Runs on a Metal completion thread; nothing may escape it (an exception through the block
// would terminate the process), and work_finished() runs whatever happens.
void finish_command_buffer(CommandBuffer& cb, id<MTLCommandBuffer> done, MetalDevice& device) {
  try {
    if (done.status == MTLCommandBufferStatusCompleted) {
      cb.mark_completed();
    } else {
      // MTLCommandBufferStatusError: a GPU fault, the watchdog (MTLCommandBufferErrorTimeout),
      // a page fault on a bad buffer. Fault the device first, so that a reader woken by the
      // failed command buffer already sees the cause.
      const std::string message = "metal command buffer failed: " + describe(done.error);
      device.record_fault(message);
      cb.mark_failed(message);
    }
  } catch (const std::exception& e) {
    device.record_fault(std::string("metal: a completion handler threw: ") + e.what());
  } catch (...) {
    device.record_fault("metal: a completion handler threw a non-standard exception");
  }
  device.work_finished();
}

void MetalQueue::submit(std::shared_ptr<CommandBuffer> cb) {
  MetalDevice& device = *metal_;
  if (device.faulted()) {
    cb->mark_failed("the device faulted earlier: " + device.fault_message());
    return;
  }
  @autoreleasepool {
    std::lock_guard lock(submit_mutex_);
    // Unretained references: the CommandBuffer (or its Window) already keeps every Buffer, and
    // so every MTLBuffer, alive until the handler below has run.
    id<MTLCommandBuffer> mtl_cb = [queue_ commandBufferWithUnretainedReferences];
    if (!mtl_cb) {
      cb->mark_failed("metal: could not create a command buffer");
      return;
    }
    encode(mtl_cb, cb->dispatches());
    device.work_started();
    // The block keeps `cb` (and through it the queue, the device and the buffers) alive until
    // the GPU is done. Handlers must be added before commit.
    std::shared_ptr<CommandBuffer> held = cb;
    MetalDevice* dev = &device;
    [mtl_cb addCompletedHandler:^(id<MTLCommandBuffer> done) {
      finish_command_buffer(*held, done, *dev);
    }];
    [mtl_cb commit];
  }
}

// One serial compute pass: each dispatch sees the writes of the dispatches before it (a push
// that reads a value an earlier kernel produced, DESIGN.md). Per dispatch: the pipeline, the six
// buffer slots (placeholder where unused), the scalar block and the grid bound as bytes, then
// exactly `grid` threads with dispatchThreads (non-uniform threadgroups: every Apple GPU of
// MTLGPUFamilyMetal3 has them).
void MetalQueue::encode(id<MTLCommandBuffer> mtl_cb,
                        const std::vector<Dispatch>& dispatches) const {
  MetalDevice& device = *metal_;
  id<MTLComputeCommandEncoder> encoder =
      [mtl_cb computeCommandEncoderWithDispatchType:MTLDispatchTypeSerial];
  for (const Dispatch& d : dispatches) {
    [encoder setComputePipelineState:device.pipeline(d.kernel)];
    for (int i = 0; i < kBufferSlots; ++i) {
      id<MTLBuffer> buffer = d.buffers[i] ? mtl_buffer(d.buffers[i]) : device.placeholder();
      [encoder setBuffer:buffer offset:0 atIndex:static_cast<NSUInteger>(i)];
    }
    [encoder setBytes:d.scalars.data()
               length:sizeof(d.scalars)
              atIndex:metal::kScalarsArgumentIndex];
    [encoder setBytes:&d.grid length:sizeof(d.grid) atIndex:metal::kGridArgumentIndex];
    const NSUInteger width = std::min<NSUInteger>(d.grid, device.max_threads(d.kernel));
    [encoder dispatchThreads:MTLSizeMake(d.grid, 1, 1)
        threadsPerThreadgroup:MTLSizeMake(width, 1, 1)];
  }
  [encoder endEncoding];
}

std::string cached_unavailable_reason() {
  // The hardware and OS do not change while the process runs.
  static const std::string reason = [] {
    std::string why;
    @autoreleasepool {
      why = unavailable_reason_for(MTLCreateSystemDefaultDevice());
    }
    return why;
  }();
  return reason;
}

}  // namespace

std::string metal_unavailable_reason() { return cached_unavailable_reason(); }

std::shared_ptr<Device> make_metal_device() {
  const std::string reason = cached_unavailable_reason();
  if (!reason.empty()) throw BackendUnavailableError("metal backend not available: " + reason);
  std::shared_ptr<Device> device;
  @autoreleasepool {
    device = std::make_shared<MetalDevice>(MTLCreateSystemDefaultDevice());
  }
  return device;
}

}  // namespace fc
