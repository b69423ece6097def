// The Metal kernel table: the assembled MSL (msl_source.cpp) compiled once per process into one
// compute pipeline per kernel, and the encoding of one recorded Dispatch. The Metal counterpart
// of csrc/cuda/cuda_kernels.hpp. Objective-C++ only (included by the .mm files of this folder).
#pragma once

#import <Foundation/Foundation.h>
#import <Metal/Metal.h>

#include <array>
#include <string>

#include "device/device.hpp"

namespace fc::metal {

// "what: description (domain code N)".
std::string error_text(const char* what, NSError* error);
std::string to_std(NSString* s);

struct Pipelines {
  id<MTLDevice> device;
  std::array<id<MTLComputePipelineState>, kKernelCount> by_kernel;
  std::array<NSUInteger, kKernelCount> max_threads{};
};

// The pipelines of `device`, compiled from msl_source() on first use (newLibraryWithSource,
// MSL 3.2) and kept for the life of the process. Throws DeviceError naming the kernel or the
// compiler's message.
const Pipelines& pipelines_for(id<MTLDevice> device);

// Encodes one dispatch into a serial compute pass: the pipeline, the eight buffer slots (the
// placeholder where a slot is unused), the scalar block and the grid bound as bytes, exactly
// `grid` threads. Never allocates, never waits (the counterpart of cuda::launch_dispatch).
void encode_dispatch(const Dispatch& d, const Pipelines& pipelines, id<MTLBuffer> placeholder,
                     id<MTLComputeCommandEncoder> encoder);

}  // namespace fc::metal
