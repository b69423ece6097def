// What a command buffer refuses to record, decided from the kernel table alone (so every
// encoder, C++ or Python's named dispatch, gets the same checks and the same words):
//   * a SHARED parameter (a buffer the CPU writes while the kernel runs) must be 'shared'
//     storage: the CPU has no pointer to a private buffer.
// CommandBuffer::dispatch calls it before recording anything.
#pragma once

#include <array>
#include <memory>

#include "device/device.hpp"

namespace fc {

// Throws std::invalid_argument naming the kernel and the parameter.
void check_encodable(KernelId kernel,
                     const std::array<std::shared_ptr<Buffer>, kBufferSlots>& buffers);

}  // namespace fc
