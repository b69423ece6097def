// The portable kernel bodies (csrc/kernels/*.inc) compiled as C++ for the host backend.
#include <atomic>

#include "channel/layout.hpp"
#include "host/host_kernels.hpp"

namespace fc::host_kernels {
#include "kernels/prelude_host.hpp"
#include "kernels/kernel_layout.hpp"
#include "kernels/channel_kernels.inc"
}  // namespace fc::host_kernels

namespace fc::host {

static const KernelFn kTable[] = {
#define FC_HOST_ENTRY(name) &fc::host_kernels::name##_body,
    FC_KERNELS(FC_HOST_ENTRY)
#undef FC_HOST_ENTRY
};
static_assert(sizeof(kTable) / sizeof(kTable[0]) == kKernelCount);

KernelFn kernel_function(KernelId id) { return kTable[static_cast<int>(id)]; }

void run_dispatch(const Dispatch& d) {
  KernelFn fn = kernel_function(d.kernel);
  auto b = [&](int i) { return static_cast<unsigned*>(d.buffers[i]); };
  for (uint32_t gid = 0; gid < d.grid; ++gid) {
    fn(b(0), b(1), b(2), b(3), b(4), b(5), d.scalars.data(), gid);
  }
}

}  // namespace fc::host
