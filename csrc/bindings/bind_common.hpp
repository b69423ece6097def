// Helpers shared by the binding files.
#pragma once

#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <cmath>
#include <functional>
#include <optional>
#include <string>
#include <thread>

#include "channel/reader.hpp"  // WaitResult

namespace py = pybind11;

namespace fc::bind {

void bind_device(py::module_& m);
void bind_channel(py::module_& m);
void bind_record(py::module_& m);         // csrc/bindings/bind_record.cpp: record channels
void bind_serving(py::module_& m);        // csrc/bindings/bind_serving.cpp: the serving engine
void bind_control(py::module_& m);        // csrc/bindings/bind_control.cpp: control blocks
void bind_benchmarks(py::module_& m);    // benchmarks/native/ (FC_BUILD_BENCHMARKS=ON only)
void bind_cuda(py::module_& m);          // csrc/bindings/bind_cuda.cpp: torch/DLPack interop
void bind_metal_source(py::module_& m);  // csrc/bindings/bind_msl_source.cpp: assembled MSL

// ---- the GIL and interpreter shutdown ---------------------------------------------------
// A thread that blocks with the GIL released (a daemon thread in reader.next(), say) may wake
// while the interpreter is finalising. Taking the GIL then makes CPython end the thread with a
// forced unwind, which std::terminate()s as soon as it meets a noexcept frame (every
// destructor, gil_scoped_release's included): the process aborted at exit. Such a thread
// instead never returns to Python: it parks until the process exits, as CPython 3.14 does.

inline bool interpreter_finalizing() {
#if PY_VERSION_HEX >= 0x030D0000
  return Py_IsFinalizing() != 0;
#else
  return _Py_IsFinalizing() != 0;
#endif
}

[[noreturn]] inline void park_until_exit() {
  for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
}

// py::gil_scoped_release that never re-takes the GIL while the interpreter is finalising.
class ReleaseGil {
 public:
  ReleaseGil() { release_.emplace(); }
  ~ReleaseGil() {
    if (interpreter_finalizing()) park_until_exit();
    release_.reset();
  }
  ReleaseGil(const ReleaseGil&) = delete;
  ReleaseGil& operator=(const ReleaseGil&) = delete;

 private:
  std::optional<py::gil_scoped_release> release_;
};

// Runs `fn` with the GIL held from a thread that does not hold it (a device or completion
// thread), unless the interpreter is finalising: then `fn` is skipped (returns false).
template <class Fn>
bool with_gil(Fn&& fn) {
  if (interpreter_finalizing()) return false;
  py::gil_scoped_acquire gil;
  fn();
  return true;
}

// A callable for blocking waits, run with the GIL released: it briefly takes the GIL to run
// Python's signal handlers, so Ctrl-C stops a wait. True means a handler raised (the Python
// error stays set for the caller to re-raise).
// Only the main thread runs signal handlers (PyErr_CheckSignals is a no-op elsewhere), so a
// wait on any other thread gets no check at all: it never takes the GIL while it waits (a
// reader thread must not contend for the GIL with a Python launch loop). Call with the GIL.
inline std::function<bool()> python_interrupt_check() {
  static const unsigned long main_ident =
      py::module_::import("threading").attr("main_thread")().attr("ident").cast<unsigned long>();
  if (PyThread_get_thread_ident() != main_ident) return {};
  return [] {
    if (interpreter_finalizing()) park_until_exit();
    py::gil_scoped_acquire gil;
    return PyErr_CheckSignals() != 0;
  };
}

// A read-only numpy view of `count` u32 words at `words`, every `stride` words, whose base
// keeps `owner` alive (a channel's header, a control block).
inline py::array raw_view(uint32_t* words, size_t count, py::handle owner, size_t stride = 1) {
  py::array view(py::dtype::of<uint32_t>(), {static_cast<py::ssize_t>(count)},
                 {static_cast<py::ssize_t>(stride * sizeof(uint32_t))}, words, owner);
  view.attr("flags").attr("writeable") = false;
  return view;
}

// One entry of an ABI word table (an X-macro of (name, word, writer, meaning)) as Python's
// {name: {word, writer, meaning}}: fc.header_layout(), fc.control_layout(), ... Used inside a
// function that has a py::dict named `table`.
#define FC_BIND_LAYOUT_ENTRY(name, index, writer, meaning)                    \
  table[#name] = py::dict(py::arg("word") = index, py::arg("writer") = writer, \
                          py::arg("meaning") = meaning);

// ---- argument checks: one clear line instead of pybind11's "incompatible arguments" -------


// Seconds from a Python timeout argument: None or +inf means wait forever (-1). Negative or
// NaN values are refused; huge ones wait forever too (fc::deadline_after clamps them).
inline double timeout_seconds(const py::object& timeout, const char* where) {
  if (timeout.is_none()) return -1.0;
  if (PyBool_Check(timeout.ptr()) ||
      !(PyFloat_Check(timeout.ptr()) || PyIndex_Check(timeout.ptr()))) {
    throw py::type_error(std::string(where) + ": timeout must be a number of seconds or None, "
                         "got " + std::string(py::str(py::type::of(timeout).attr("__name__"))));
  }
  const double t = timeout.cast<double>();
  if (!(t >= 0.0)) {  // also rejects NaN
    throw py::value_error(std::string(where) + ": timeout must be >= 0 seconds or None, got " +
                          std::string(py::str(py::repr(timeout))));
  }
  return std::isinf(t) ? -1.0 : t;
}

// An integer argument in [0, max]: TypeError for anything that is not an int (a float, a
// str, None, a bool), ValueError naming the argument and the range otherwise.
inline uint64_t checked_uint(const py::handle& value, const char* what, uint64_t max) {
  if (value.is_none() || PyBool_Check(value.ptr()) || !PyIndex_Check(value.ptr())) {
    throw py::type_error(std::string(what) + " must be an int, got " +
                         std::string(py::str(py::type::of(value).attr("__name__"))) + " " +
                         std::string(py::str(py::repr(value))));
  }
  py::int_ number = py::reinterpret_steal<py::int_>(PyNumber_Index(value.ptr()));
  if (!number) throw py::error_already_set();
  const bool negative = number < py::int_(0);
  if (negative || number > py::int_(max)) {
    throw py::value_error(std::string(what) + " must be between 0 and " + std::to_string(max) +
                          ", got " + std::string(py::str(number)));
  }
  return number.cast<uint64_t>();
}

inline uint32_t checked_u32(const py::handle& value, const char* what) {
  return static_cast<uint32_t>(checked_uint(value, what, 0xFFFFFFFFull));
}

// reader.wait(timeout, until) for every reader kind: the GIL released while waiting, the
// result as the string Python sees ('ready', 'closed', 'timeout', 'finished').
template <class Reader>
const char* wait_from_python(Reader& reader, const py::object& timeout,
                             const std::shared_ptr<CommandBuffer>& until) {
  const double t = timeout_seconds(timeout, "wait");
  auto check = python_interrupt_check();
  WaitResult res;
  {
    ReleaseGil nogil;
    res = reader.wait(t, check, until.get());
  }
  switch (res) {
    case WaitResult::Ready: return "ready";
    case WaitResult::Closed: return "closed";
    case WaitResult::Timeout: return "timeout";
    case WaitResult::Finished: return "finished";
  }
  return "timeout";
}

}  // namespace fc::bind
