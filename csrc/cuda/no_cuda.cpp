// Stand-in for the CUDA backend when it was not built (no toolkit, or FC_ENABLE_CUDA=OFF).
#include "device/device.hpp"

#ifndef FC_CUDA_STATUS
#define FC_CUDA_STATUS "the package was built without the CUDA backend"
#endif

namespace fc {

std::string cuda_unavailable_reason() { return FC_CUDA_STATUS; }

std::shared_ptr<Device> make_cuda_device(int) {
  throw BackendUnavailableError("cuda backend not available: " + cuda_unavailable_reason());
}

}  // namespace fc
