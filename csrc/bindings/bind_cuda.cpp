// CUDA-specific Python entry points (framework interop). Filled in by the CUDA backend.
#include "bindings/bind_common.hpp"

namespace fc::bind {
void bind_cuda(py::module_&) {}
}  // namespace fc::bind
