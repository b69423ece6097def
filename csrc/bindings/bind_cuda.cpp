// CUDA-specific Python entry points: the raw-stream push behind
// foundry_channels.torch_interop.stream_write. Compiled in every build; without the CUDA
// backend it raises BackendUnavailableError (no_cuda.cpp).
#include "bindings/bind_common.hpp"
#include "cuda/cuda_interop.hpp"

namespace fc::bind {

void bind_cuda(py::module_& m) {
  m.def(
      "cuda_device_ordinal",
      [](const std::shared_ptr<Device>& device) {
        if (!device) throw py::type_error("cuda_device_ordinal(device): device is None");
        return cuda::device_ordinal(*device);
      },
      py::arg("device"), "The CUDA ordinal of a 'cuda' device; -1 for any other backend.");
  m.def(
      "cuda_stream_push",
      [](ChannelU32& channel, uintptr_t stream, uintptr_t source, uint32_t count,
         uint32_t stride_words) {
        // A launch only: never blocks, so the GIL stays held (releasing it costs more).
        cuda::stream_push(channel, stream, source, count, stride_words);
      },
      py::arg("channel"), py::arg("stream"), py::arg("source"), py::arg("count"),
      py::arg("stride_words"),
      "Low-level (use stream_write): enqueue on CUDA stream `stream` (an integer handle) a "
      "push of `count` u32 words read on the GPU at device address `source`, every "
      "`stride_words` words. Capturable in a CUDA graph.");
  m.def(
      "cuda_stream_push_record",
      [](RecordChannel& channel, uintptr_t stream, uintptr_t source) {
        cuda::stream_push_record(channel, stream, source);  // a launch only: keeps the GIL
      },
      py::arg("channel"), py::arg("stream"), py::arg("source"),
      "Low-level (use stream_write): enqueue on CUDA stream `stream` a push of one record "
      "read at device address `source` (contiguous). Capturable in a CUDA graph.");
}

}  // namespace fc::bind
