// Windows on CUDA: the window's dispatches are captured into a CUDA graph once (on the first
// replay) and the instantiated graph is relaunched on every later replay.
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "device/device.hpp"

namespace fc::cuda {

// Launches `window` on `stream`, capturing and instantiating its graph first if this is its
// first replay. Returns "" or the error. The caller serialises launches on `stream`.
std::string launch_window(Window& window, cudaStream_t stream);

}  // namespace fc::cuda
