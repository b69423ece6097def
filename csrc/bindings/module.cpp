// foundry_channels._core: the C++ core as a Python module. The Python package
// (python/foundry_channels) re-exports these names and adds the pure-Python layers.
#include "bindings/bind_common.hpp"
#include "channel/layout.hpp"
#include "device/device.hpp"

namespace fc::bind {

static py::dict header_layout() {
  py::dict table;
  FC_CHANNEL_HEADER_WORDS(FC_BIND_LAYOUT_ENTRY)
  return table;
}

}  // namespace fc::bind

PYBIND11_MODULE(_core, m) {
  using namespace fc;
  m.doc() = "foundry-channels C++ core: devices, command buffers, Channel<u32> and its reader";

  py::object base = py::module_::import("builtins").attr("RuntimeError");
  auto base_error = py::register_exception<fc::Error>(m, "FoundryChannelsError", base);
  py::register_exception<BackendUnavailableError>(m, "BackendUnavailableError", base_error);
  py::register_exception<DeviceClosedError>(m, "DeviceClosedError", base_error);
  py::register_exception<CommandBufferError>(m, "CommandBufferError", base_error);
  py::register_exception<DeviceError>(m, "DeviceError", base_error);
  py::register_exception<ChannelError>(m, "ChannelError", base_error);
  py::register_exception<ConcurrentUseError>(m, "ConcurrentUseError", base_error);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const fc::TimeoutError& e) {
      PyErr_SetString(PyExc_TimeoutError, e.what());
    } catch (const fc::InterruptedError&) {
      // A signal handler raised (KeyboardInterrupt): its exception is already set.
      if (!PyErr_Occurred()) PyErr_SetString(PyExc_KeyboardInterrupt, "interrupted");
    }
  });

  m.def("header_layout", &bind::header_layout,
        "The Channel<u32> header words: {name: {word, writer, meaning}}, from the C++ table.");
  m.attr("HEADER_WORDS") = layout::kHeaderWords;
  m.attr("MAX_CAPACITY") = layout::kMaxCapacity;
  m.attr("CHANNEL_MAGIC") = layout::kMagic;
  m.def("backend_unavailable_reason", &backend_unavailable_reason, py::arg("backend"),
        "'' when `backend` can open a device here, else the reason it cannot.");
  m.def(
      "kernel_signature",
      [](const std::string& name) {
        const KernelId id = kernel_by_name(name.c_str());
        if (id == KernelId::count_) {
          throw py::value_error("kernel_signature(): unknown kernel '" + name + "'");
        }
        const KernelSignature& sig = kernel_signature(id);
        py::list params;
        for (int i = 0; i < sig.count; ++i) {
          const KernelParam& p = sig.params[i];
          const char* kind = p.kind == ParamKind::Buffer    ? "buffer"
                             : p.kind == ParamKind::Channel ? "channel"
                             : p.kind == ParamKind::Shared  ? "shared"
                                                            : "u32";
          params.append(py::dict(py::arg("name") = p.name, py::arg("kind") = kind,
                                 py::arg("slot") = p.slot, py::arg("optional") = p.optional));
        }
        return params;
      },
      py::arg("name"),
      "A kernel's parameters from the kernel table, in order: [{name, kind ('buffer', "
      "'channel', 'shared' (a shared buffer the CPU writes while the kernel runs: a "
      "ControlBlock) or 'u32'), slot, optional}], what CommandBuffer.dispatch(name, grid, ...) "
      "takes.");
  m.def("kernel_names", [] {
    std::vector<std::string> names;
    for (int i = 0; i < kKernelCount; ++i) names.emplace_back(kernel_name(static_cast<KernelId>(i)));
    return names;
  });

  bind::bind_device(m);
  bind::bind_channel(m);
  bind::bind_record(m);
  bind::bind_serving(m);
  bind::bind_control(m);
#ifdef FC_WITH_BENCHMARKS
  bind::bind_benchmarks(m);  // the C++ benchmark instruments, not in a default build
#endif
  m.attr("HAS_BENCHMARKS") =
#ifdef FC_WITH_BENCHMARKS
      true;
#else
      false;
#endif
  bind::bind_cuda(m);
  bind::bind_metal_source(m);
}
