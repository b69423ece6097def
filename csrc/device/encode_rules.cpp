#include "device/encode_rules.hpp"

#include <stdexcept>
#include <string>

namespace fc {

std::string cpu_wait_refusal(KernelId kernel, const std::string& backend, bool waits_allowed) {
  if (waits_allowed || !kernel_waits_on_cpu(kernel)) return "";
  return "cannot encode '" + std::string(kernel_name(kernel)) + "' on the " + backend +
         " device: it waits for a value the CPU writes while the command buffer runs, and this "
         "backend does not promise that such a write becomes visible before the command buffer "
         "completes (a GPU spinning on it can hang; on Metal it has wedged GPUs). Poll with "
         "h2d_try_pop instead, which never waits (docs/protocol.md, host-to-device channels)";
}

void check_encodable(const Device& device, KernelId kernel,
                     const std::array<std::shared_ptr<Buffer>, kBufferSlots>& buffers) {
  const std::string refusal =
      cpu_wait_refusal(kernel, device.backend(), device.kernels_may_wait_on_cpu());
  if (!refusal.empty()) throw CommandBufferError(refusal);
  const KernelSignature& sig = kernel_signature(kernel);
  for (int i = 0; i < sig.count; ++i) {
    const KernelParam& p = sig.params[i];
    if (p.kind != ParamKind::Shared) continue;
    const auto& buffer = buffers[p.slot];
    if (buffer && buffer->storage() != Storage::Shared) {
      throw std::invalid_argument("dispatch of '" + std::string(sig.name) + "': argument '" +
                                  p.name + "' must be a 'shared' buffer: the CPU writes it while "
                                  "the kernel runs, and a 'private' buffer has no CPU address");
    }
  }
}

}  // namespace fc
