// What a command buffer refuses to record, decided from the kernel table alone (so every
// encoder, C++ or Python's named dispatch, gets the same checks and the same words):
//   * a SHARED parameter (a buffer the CPU writes while the kernel runs) must be 'shared'
//     storage: the CPU has no pointer to a private buffer (std::invalid_argument);
//   * a kernel that waits for a value the CPU writes while its command buffer runs
//     (FC_KERNELS_WAITING_ON_CPU: h2d_pop_wait) is refused on a device that cannot promise the
//     write becomes visible (Device::kernels_may_wait_on_cpu: Metal) (CommandBufferError).
// CommandBuffer::dispatch calls it before recording anything.
#pragma once

#include <array>
#include <memory>
#include <string>

#include "device/device.hpp"

namespace fc {

// Throws naming the kernel and the parameter or the reason.
void check_encodable(const Device& device, KernelId kernel,
                     const std::array<std::shared_ptr<Buffer>, kBufferSlots>& buffers);

// Why `kernel` may not be encoded on a device of `backend` that allows waits on CPU writes or
// not; "" when it may. The pure rule behind check_encodable (bound for tests).
std::string cpu_wait_refusal(KernelId kernel, const std::string& backend, bool waits_allowed);

}  // namespace fc
