#include "device/encode_rules.hpp"

#include <stdexcept>
#include <string>

namespace fc {

void check_encodable(KernelId kernel,
                     const std::array<std::shared_ptr<Buffer>, kBufferSlots>& buffers) {
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
