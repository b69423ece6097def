// Python entry points of the CUDA benchmark instruments (cuda_bench.hpp), in _core only when
// built with -DFC_BUILD_BENCHMARKS=ON.
#include "bindings/bind_common.hpp"
#include "cuda_bench.hpp"

namespace fc::bind {

void bind_cuda_bench(py::module_& m) {
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
  m.def(
      "cuda_bench_clock_fit",
      [](const std::shared_ptr<Device>& device) {
        cuda::ClockFitResult r;
        {
          ReleaseGil nogil;
          r = cuda::clock_fit(device);
        }
        return py::dict(py::arg("offset_ns") = r.offset_ns, py::arg("error_ns") = r.error_ns);
      },
      py::arg("device"),
      "Benchmark: %globaltimer minus the CPU's steady clock, from GPU<->CPU ping-pong round "
      "trips; error_ns bounds the offset's error.");
  m.def(
      "cuda_bench_record_rate",
      [](const std::shared_ptr<Device>& device, uint64_t record_bytes, uint32_t count) {
        cuda::RecordRateResult r;
        {
          ReleaseGil nogil;
          r = cuda::bench_record_rate(device, record_bytes, count);
        }
        return py::dict(py::arg("push_gbps") = r.push_gbps, py::arg("memcpy_gbps") = r.memcpy_gbps,
                        py::arg("delivered_gbps") = r.delivered_gbps,
                        py::arg("delivered") = r.delivered, py::arg("dropped") = r.dropped);
      },
      py::arg("device"), py::arg("record_bytes"), py::arg("count"),
      "Benchmark: record push payload rate vs cudaMemcpyAsync device -> pinned host.");
  m.def(
      "cuda_bench_record_latency",
      [](const std::shared_ptr<Device>& device, uint64_t record_bytes, uint32_t count,
         uint32_t gap_ns) {
        cuda::RecordLatencyResult r;
        {
          ReleaseGil nogil;
          r = cuda::bench_record_latency(device, record_bytes, count, gap_ns);
        }
        return py::dict(py::arg("latency_us") = r.latency_us,
                        py::arg("clock_error_us") = r.clock_error_us);
      },
      py::arg("device"), py::arg("record_bytes"), py::arg("count"), py::arg("gap_ns") = 20000,
      "Benchmark: GPU write -> CPU reader latency of small records pushed inside a kernel.");
}

}  // namespace fc::bind
