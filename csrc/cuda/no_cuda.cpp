// Stand-in for the CUDA backend when it was not built (no toolkit, or FC_ENABLE_CUDA=OFF):
// every entry point of device.hpp and cuda_interop.hpp reports why.
#include "cuda/cuda_interop.hpp"
#include "device/device.hpp"

#ifndef FC_CUDA_STATUS
#define FC_CUDA_STATUS "the package was built without the CUDA backend"
#endif

namespace fc {

std::string cuda_unavailable_reason() { return FC_CUDA_STATUS; }

std::shared_ptr<Device> make_cuda_device(int) {
  throw BackendUnavailableError("cuda backend not available: " + cuda_unavailable_reason());
}

namespace cuda {
namespace {
[[noreturn]] void unavailable(const char* what) {
  throw BackendUnavailableError(std::string(what) + ": cuda backend not available: " +
                                cuda_unavailable_reason());
}
}  // namespace

int device_ordinal(const Device&) { return -1; }
void stream_push(ChannelU32&, uintptr_t, uintptr_t, uint32_t, uint32_t) {
  unavailable("stream_write");
}
void stream_push_record(RecordChannel&, uintptr_t, uintptr_t) { unavailable("stream_write"); }
}  // namespace cuda
}  // namespace fc
