// Python access to the MSL the Metal backend compiles, so that it can be checked on any
// platform (tests/test_metal_source.py compiles it with the host C++ compiler).
#include "bindings/bind_common.hpp"
#include "metal/msl_source.hpp"

namespace fc::bind {

void bind_metal_source(py::module_& m) {
  m.def(
      "metal_source", [] { return metal::msl_source(); },
      "The complete MSL source the Metal backend compiles with newLibraryWithSource: prelude, "
      "layout constants, kernel bodies, entry points. Available on every platform.");
  m.def("metal_kernel_entry_names", &metal::msl_entry_names,
        "The Metal function names the backend looks up in the compiled library, in KernelId "
        "order.");
  m.attr("METAL_LANGUAGE_VERSION") = metal::kMslLanguageVersion;
}

}  // namespace fc::bind
