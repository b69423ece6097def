// Stand-in for the Metal backend off Apple platforms.
#include "device/device.hpp"

namespace fc {

std::string metal_unavailable_reason() {
  return "Metal exists only on Apple platforms; this build is not for macOS";
}

std::shared_ptr<Device> make_metal_device() {
  throw BackendUnavailableError("metal backend not available: " + metal_unavailable_reason());
}

}  // namespace fc
