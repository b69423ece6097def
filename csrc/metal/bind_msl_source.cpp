#include "bindings/bind_common.hpp"

namespace fc::bind {
void bind_metal_source(py::module_&) {}
}  // namespace fc::bind
