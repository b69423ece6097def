// The CUDA launch table: the shared kernel bodies as __global__ entry points (generated from
// FC_KERNELS in cuda_kernels.cu), launched from a recorded Dispatch.
#pragma once

#include <cuda_runtime.h>

#include "device/device.hpp"

namespace fc::cuda {

// Enqueues one dispatch on `stream` (also a stream in capture: the launch is then recorded
// into the graph). Returns the launch's error; never synchronises, never allocates.
cudaError_t launch_dispatch(const Dispatch& d, cudaStream_t stream);

// Threads per block of every entry point; a dispatch of `grid` threads gets ceil(grid / 256)
// blocks and the entry returns early for gid >= grid.
inline constexpr unsigned kThreadsPerBlock = 256;

}  // namespace fc::cuda
