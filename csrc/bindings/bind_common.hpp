// Helpers shared by the binding files.
#pragma once

#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <functional>

namespace py = pybind11;

namespace fc::bind {

void bind_device(py::module_& m);
void bind_channel(py::module_& m);
void bind_bench(py::module_& m);         // csrc/bindings/bind_bench.cpp: C++-loop benchmarks
void bind_cuda(py::module_& m);          // csrc/bindings/bind_cuda.cpp: torch/DLPack interop
void bind_metal_source(py::module_& m);  // csrc/metal/bind_msl_source.cpp: assembled MSL

// A callable for blocking waits, run with the GIL released: it briefly takes the GIL to run
// Python's signal handlers, so Ctrl-C stops a wait. True means a handler raised (the Python
// error stays set for the caller to re-raise).
inline std::function<bool()> python_interrupt_check() {
  return [] {
    py::gil_scoped_acquire gil;
    return PyErr_CheckSignals() != 0;
  };
}

// Seconds from a Python timeout argument: None means wait forever (-1).
inline double timeout_seconds(const std::optional<double>& timeout, const char* where) {
  if (!timeout) return -1.0;
  if (!(*timeout >= 0.0)) {  // also rejects NaN
    throw py::value_error(std::string(where) + ": timeout must be >= 0 seconds or None, got " +
                          std::to_string(*timeout));
  }
  return *timeout;
}

}  // namespace fc::bind
