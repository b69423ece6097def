// Benchmark drivers that keep the whole measured loop in C++ (benchmarks/bench_channel.py),
// in _core only when built with -DFC_BUILD_BENCHMARKS=ON, as _core._bench_*.
#include <algorithm>
#include <chrono>
#include <thread>
#include <vector>

#include "bindings/bind_common.hpp"
#include "channel/channel.hpp"
#include "channel/reader.hpp"
#include "host/host_kernels.hpp"

namespace fc::bind {
namespace {

using clock_type = std::chrono::steady_clock;

std::shared_ptr<ChannelU32> initialised_channel(const std::shared_ptr<Device>& device,
                                                uint32_t capacity) {
  auto channel = std::make_shared<ChannelU32>(device, capacity);
  auto cb = device->new_queue()->command_buffer();
  channel->encode_init(*cb);
  cb->commit();
  cb->wait_until_completed(-1);
  return channel;
}

// The device pushes n_items (channel_u32_push_sequence) while this thread drains in batches.
py::dict push_drain(const std::shared_ptr<Device>& device, uint32_t capacity, uint32_t n_items,
                    size_t batch) {
  auto channel = initialised_channel(device, capacity);
  auto reader = channel->reader();
  std::vector<uint32_t> out(batch);
  auto cb = device->new_queue()->command_buffer();
  channel->encode_push_sequence(*cb, 0, n_items);
  channel->encode_close(*cb);
  uint64_t received = 0;
  double seconds;
  {
    ReleaseGil nogil;
    auto t0 = clock_type::now();
    cb->commit();
    for (;;) {
      size_t n = reader->drain_into(out.data(), out.size());
      received += n;
      if (n == 0 && reader->exhausted()) break;
    }
    seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
    cb->wait_until_completed(-1);
  }
  return py::dict(py::arg("seconds") = seconds, py::arg("received") = received,
                  py::arg("dropped") = reader->dropped());
}

// Visibility latency: a producer thread publishes one item every `gap_us` microseconds by
// running the push kernel directly; a spinning reader thread timestamps each arrival. The
// producer sleeps between pushes so that on a small machine only the reader occupies a core.
py::dict latency(uint32_t samples, double gap_us) {
  auto device = make_host_device();
  auto channel = initialised_channel(device, 1024);
  auto cb = device->new_queue()->command_buffer();
  channel->encode_push(*cb, 0);
  const Dispatch push = cb->dispatches()[0];  // run by hand below, never committed
  std::vector<clock_type::time_point> pushed(samples), seen(samples);
  {
    ReleaseGil nogil;
    std::thread consumer([&] {
      auto reader = channel->reader();
      for (uint32_t i = 0; i < samples;) {
        if (reader->try_next()) seen[i++] = clock_type::now();
      }
    });
    auto gap = std::chrono::duration<double, std::micro>(gap_us);
    for (uint32_t i = 0; i < samples; ++i) {
      std::this_thread::sleep_for(gap);
      pushed[i] = clock_type::now();
      host::run_dispatch(push);
    }
    consumer.join();
  }
  device->close();
  std::vector<double> ns(samples);
  for (uint32_t i = 0; i < samples; ++i) {
    ns[i] = std::chrono::duration<double, std::nano>(seen[i] - pushed[i]).count();
  }
  return py::dict(py::arg("latency_ns") = ns);
}

}  // namespace

void bind_cuda_bench(py::module_& m);  // bind_cuda_bench.cpp
void bind_h2d_bench(py::module_& m);   // bench_h2d.cpp

void bind_benchmarks(py::module_& m) {
  bind_cuda_bench(m);
  bind_h2d_bench(m);
  m.def("_bench_push_drain", &push_drain, py::arg("device"), py::arg("capacity"),
        py::arg("n_items"), py::arg("batch"));
  m.def("_bench_latency", &latency, py::arg("samples"), py::arg("gap_us") = 20.0);
}

}  // namespace fc::bind
