#include <cstring>

#include "device/device.hpp"

namespace fc {

void Device::close() {
  bool expected = false;
  if (!closed_.compare_exchange_strong(expected, true, std::memory_order_acq_rel)) return;
  shutdown();
  wake_signal().notify();  // sleeping readers and the poller see the close now
}

void Device::check_usable(const char* what) const {
  if (closed()) {
    throw DeviceClosedError(std::string("cannot ") + what + ": the " + backend() +
                            " device was closed");
  }
  if (faulted()) {
    throw DeviceError(std::string("cannot ") + what + ": the " + backend() +
                      " device faulted earlier: " + fault_message());
  }
}

void Device::record_fault(const std::string& message) {
  {
    std::lock_guard lock(fault_mutex_);
    if (faulted_.load(std::memory_order_relaxed)) return;  // keep the first cause
    fault_ = message;
  }
  faulted_.store(true, std::memory_order_release);
  wake_signal().notify();  // sleeping readers and the poller fail now
}

std::string Device::fault_message() const {
  std::lock_guard lock(fault_mutex_);
  return fault_;
}

std::shared_ptr<Device> open_device(const std::string& spec) {
  if (spec == "cpu" || spec == "host") return make_host_device();
  if (spec == "metal") return make_metal_device();
  if (spec == "cuda" || spec.rfind("cuda:", 0) == 0) {
    int ordinal = 0;
    if (spec.size() > 5) {
      try {
        size_t used = 0;
        ordinal = std::stoi(spec.substr(5), &used);
        if (used != spec.size() - 5 || ordinal < 0) throw std::invalid_argument("");
      } catch (const std::exception&) {
        throw std::invalid_argument("device '" + spec +
                                    "': expected 'cuda' or 'cuda:N' with N >= 0");
      }
    }
    return make_cuda_device(ordinal);
  }
  throw std::invalid_argument("unknown device '" + spec +
                              "': expected 'cpu', 'cuda', 'cuda:N' or 'metal'");
}

std::string backend_unavailable_reason(const std::string& backend) {
  if (backend == "cpu") return "";
  if (backend == "cuda") return cuda_unavailable_reason();
  if (backend == "metal") return metal_unavailable_reason();
  return "unknown backend '" + backend + "'";
}

}  // namespace fc
