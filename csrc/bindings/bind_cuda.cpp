// CUDA-specific Python entry points: the raw-stream push behind
// foundry_channels.torch_interop.stream_write, and the benchmark instruments. Compiled in
// every build; without the CUDA backend each raises BackendUnavailableError (no_cuda.cpp).
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
      "cuda_bench_decode",
      [](const std::shared_ptr<Device>& device, const std::string& variant, uint32_t steps,
         uint32_t step_ns, uint32_t window) {
        cuda::DecodeBenchResult r;
        {
          ReleaseGil nogil;
          r = cuda::bench_decode(device, variant, steps, step_ns, window);
        }
        py::dict d;
        d["us_per_token"] = r.us_per_token;
        d["delivered"] = r.delivered;
        d["dropped"] = r.dropped;
        d["tokens_ok"] = r.tokens_ok;
        d["latency_us"] = r.latency_us;
        d["clock_error_us"] = r.clock_error_us;
        return d;
      },
      py::arg("device"), py::arg("variant"), py::arg("steps"), py::arg("step_ns"),
      py::arg("window") = 64, "Benchmark: one decode-loop variant ('sync', 'stream', 'graph', 'fork', 'fused', 'none').");
  m.def(
      "cuda_bench_ping_pong",
      [](const std::shared_ptr<Device>& device, uint32_t iterations) {
        cuda::PingPongResult r;
        {
          ReleaseGil nogil;
          r = cuda::bench_ping_pong(device, iterations);
        }
        py::dict d;
        d["raw_us"] = r.raw_us;
        d["channel_us"] = r.channel_us;
        return d;
      },
      py::arg("device"), py::arg("iterations") = 2000,
      "Benchmark: GPU->CPU->GPU round trips, raw mapped words and through a channel.");
  m.def(
      "cuda_bench_push_cost",
      [](const std::shared_ptr<Device>& device, uint32_t pushes) {
        cuda::PushCostResult r;
        {
          ReleaseGil nogil;
          r = cuda::bench_push_cost(device, pushes);
        }
        py::dict d;
        d["in_kernel_ns"] = r.in_kernel_ns;
        d["graph_launch_us"] = r.graph_launch_us;
        d["timer_resolution_ns"] = r.timer_resolution_ns;
        return d;
      },
      py::arg("device"), py::arg("pushes") = 100000,
      "Benchmark: GPU-timeline cost of one push (inside a kernel; as a kernel in a graph).");
}

}  // namespace fc::bind
