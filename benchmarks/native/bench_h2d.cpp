// Host-to-device visibility latency (benchmarks/bench_h2d.py), in _core only when built with
// -DFC_BUILD_BENCHMARKS=ON, as _core._bench_h2d_latency. Backend-agnostic: one h2d_relay_u32
// kernel waits in pop_wait while this thread pushes an item every gap; the kernel stamps the
// device clock (fc_time_ns: the steady clock on the host backend, %globaltimer on CUDA) when it
// takes each item, and this thread records the steady clock just before each push's store.
// Python subtracts the clock offset (0 on the host; a fit on CUDA).
#include <chrono>
#include <vector>

#include "bindings/bind_common.hpp"
#include "channel/channel.hpp"
#include "channel/h2d_channel.hpp"

namespace fc::bind {
namespace {

int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

py::dict h2d_latency(const std::shared_ptr<Device>& device, uint32_t count, uint32_t gap_ns) {
  std::vector<int64_t> written(count), seen(count);
  bool completed = false;
  {
    ReleaseGil nogil;
    auto ch = std::make_shared<H2DChannel>(device, 64);
    uint32_t sink_capacity = 1;
    while (sink_capacity < count) sink_capacity <<= 1;
    auto sink = std::make_shared<ChannelU32>(device, sink_capacity);
    auto stamps = device->new_buffer(uint64_t{count} * 8, Storage::Shared);
    auto taken = device->new_buffer(8, Storage::Shared);
    auto queue = device->new_queue();
    auto cb = queue->command_buffer();
    ch->encode_init(*cb);
    sink->encode_init(*cb);
    kernel_args::h2d_relay_u32 relay;
    relay.source = ch->kernel_buffers();
    relay.sink = sink->kernel_buffers();
    relay.taken = taken;
    relay.stamps = stamps;
    relay.stamp = 1;
    relay.count = count;
    relay.timeout_us = 10'000'000;
    relay.sink_capacity = sink_capacity;
    ch->before_encode(*cb, relay.id);
    encode(*cb, 1, relay);
    cb->commit();
    H2DWriter& writer = ch->writer();
    int64_t next = steady_ns();
    uint32_t pushed = 0;
    for (; pushed < count; ++pushed) {
      // The kernel is waiting for item k: it took item k - 1 at least `gap_ns` ago.
      const int64_t give_up = steady_ns() + 10'000'000'000;
      while ((writer.taken() < pushed || steady_ns() < next) && steady_ns() < give_up) {
      }
      if (writer.taken() < pushed) break;  // the kernel stopped taking: report what ran
      written[pushed] = steady_ns();
      writer.push(&pushed, 10.0, {});
      next = written[pushed] + gap_ns;
    }
    completed = cb->wait_until_completed(30.0) && pushed == count;
    written.resize(pushed);
    seen.resize(pushed);
    const auto* words = static_cast<const uint32_t*>(stamps->host_ptr());
    for (uint32_t k = 0; k < pushed; ++k) {
      seen[k] = static_cast<int64_t>((uint64_t{words[2 * k + 1]} << 32) | words[2 * k]);
    }
  }
  return py::dict(py::arg("written_ns") = written, py::arg("device_ns") = seen,
                  py::arg("completed") = completed);
}

}  // namespace

void bind_h2d_bench(py::module_& m) {
  m.def("_bench_h2d_latency", &h2d_latency, py::arg("device"), py::arg("count"),
        py::arg("gap_ns") = 20'000,
        "Benchmark: CPU push -> the device's pop_wait sees it; steady-clock write times and "
        "device-clock take times, per item.");
}

}  // namespace fc::bind
