// The shared kernel bodies as Metal compute pipelines, from the MSL that msl_source.cpp
// assembles at run time (prelude + layout + csrc/kernels/*.inc + generated entry points): there
// is no Metal copy of any kernel's logic. The counterpart of csrc/cuda/cuda_kernels.cu.
#include "metal/metal_kernels.hpp"

#include <algorithm>
#include <mutex>

#include "metal/autorelease_pool.hpp"
#include "metal/metal_sdk.hpp"
#include "metal/msl_source.hpp"

#if !__has_feature(objc_arc)
#error "metal_kernels.mm needs ARC: compile it with -fobjc-arc (csrc/metal/backend.cmake)"
#endif

namespace fc::metal {

std::string to_std(NSString* s) { return s ? std::string([s UTF8String]) : std::string(); }

std::string error_text(const char* what, NSError* error) {
  if (!error) return std::string(what) + ": no error description";
  return std::string(what) + ": " + to_std(error.localizedDescription) + " (" +
         to_std(error.domain) + " code " + std::to_string(static_cast<long>(error.code)) + ")";
}

namespace {

MTLCompileOptions* compile_options() {
#if FC_METAL_SDK_HAS_MSL_3_2
  if (@available(macOS 15.0, iOS 18.0, *)) {
    MTLCompileOptions* options = [MTLCompileOptions new];
    // Explicit, not "the newest the OS knows" (the default): the prelude is written for MSL 3.2
    // (coherent(system), the system thread scope) and for the C++14 base of that version.
    options.languageVersion = MTLLanguageVersion3_2;
    // IEEE arithmetic and precise math functions (both properties macOS 15+; mathMode replaces
    // fastMathEnabled, whose default is fast), so that a sampled token is the same on every
    // backend.
    options.mathMode = MTLMathModeSafe;
    options.mathFloatingPointFunctions = MTLMathFloatingPointFunctionsPrecise;
    return options;
  }
  // metal_device.mm's probe() refuses older systems before anything is compiled.
  throw BackendUnavailableError("metal backend not available: needs macOS 15 (MSL 3.2)");
#else
  // Built with a pre-macOS 15 SDK: MSL 3.2 cannot be named (metal_sdk.hpp); probe() already
  // refused, this only keeps a direct call from compiling MSL with the wrong version.
  throw BackendUnavailableError(std::string("metal backend not available: ") +
                                kMetalSdkTooOldReason);
#endif
}

Pipelines* build_pipelines(id<MTLDevice> device) {
  NSString* source = [NSString stringWithUTF8String:msl_source().c_str()];
  NSError* error = nil;
  id<MTLLibrary> library = [device newLibraryWithSource:source
                                                options:compile_options()
                                                  error:&error];
  // newLibraryWithSource may set `error` for mere warnings and still return a library: only a
  // nil library is a failure.
  if (!library) {
    throw DeviceError(error_text(("metal: compiling the assembled MSL (MSL " +
                                  std::string(kMslLanguageVersion) + ") failed")
                                     .c_str(),
                                 error));
  }
  auto p = std::make_unique<Pipelines>();
  p->device = device;
  for (int k = 0; k < kKernelCount; ++k) {
    const std::string name = msl_entry_name(static_cast<KernelId>(k));
    id<MTLFunction> function = [library newFunctionWithName:@(name.c_str())];
    if (!function) {
      throw DeviceError("metal: the compiled MSL has no kernel function '" + name + "'");
    }
    error = nil;
    id<MTLComputePipelineState> pipeline = [device newComputePipelineStateWithFunction:function
                                                                                 error:&error];
    if (!pipeline) {
      throw DeviceError(error_text(("metal: building the pipeline of '" + name + "'").c_str(),
                                   error));
    }
    p->by_kernel[k] = pipeline;
    p->max_threads[k] = pipeline.maxTotalThreadsPerThreadgroup;
  }
  return p.release();
}

}  // namespace

// Never freed: pipelines live as long as the process (like MLX's kernel cache), so a device
// opened again (every test opens one) reuses them, and no MetalDevice can outlive its table.
const Pipelines& pipelines_for(id<MTLDevice> device) {
  static std::mutex mutex;
  static Pipelines* cached = nullptr;
  std::lock_guard lock(mutex);
  if (!cached || cached->device != device) {
    cached = in_autorelease_pool([&] { return build_pipelines(device); });
  }
  return *cached;
}

// A Dispatch's buffer slots hold device_ptr() of MetalBuffers, which is the MTLBuffer object
// itself (metal_device.mm); the Buffer that owns it is retained by the command buffer or window.
// Non-uniform threadgroups (dispatchThreads with a grid that is not a multiple of the width) are
// supported by every GPU of MTLGPUFamilyApple4 and later; probe() requires MTLGPUFamilyApple7.
void encode_dispatch(const Dispatch& d, const Pipelines& pipelines, id<MTLBuffer> placeholder,
                     id<MTLComputeCommandEncoder> encoder) {
  const int k = static_cast<int>(d.kernel);
  [encoder setComputePipelineState:pipelines.by_kernel[k]];
  for (int i = 0; i < kBufferSlots; ++i) {
    // Every entry point declares every buffer slot; an unused slot gets the placeholder so that
    // no argument is ever unbound (the bodies never touch a slot their kernel does not use).
    id<MTLBuffer> buffer = d.buffers[i] ? (__bridge id<MTLBuffer>)d.buffers[i] : placeholder;
    [encoder setBuffer:buffer offset:0 atIndex:static_cast<NSUInteger>(i)];
  }
  [encoder setBytes:d.scalars.data() length:sizeof(d.scalars) atIndex:kScalarsArgumentIndex];
  [encoder setBytes:&d.grid length:sizeof(d.grid) atIndex:kGridArgumentIndex];
  const NSUInteger width = std::min<NSUInteger>(d.grid, pipelines.max_threads[k]);
  [encoder dispatchThreads:MTLSizeMake(d.grid, 1, 1)
      threadsPerThreadgroup:MTLSizeMake(width, 1, 1)];
}

}  // namespace fc::metal
