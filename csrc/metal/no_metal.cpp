// Stand-in for the Metal backend off Apple platforms, or on a Mac whose toolchain could not
// build it (csrc/metal/backend.cmake passes FC_METAL_STATUS, the reason, then).
#include "device/device.hpp"

#ifndef FC_METAL_STATUS
#define FC_METAL_STATUS "Metal exists only on Apple platforms; this build is not for macOS"
#endif

namespace fc {

std::string metal_unavailable_reason() { return FC_METAL_STATUS; }

std::shared_ptr<Device> make_metal_device() {
  throw BackendUnavailableError("metal backend not available: " + metal_unavailable_reason());
}

}  // namespace fc
