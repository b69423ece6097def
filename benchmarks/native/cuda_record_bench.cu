// Record-channel instruments (benchmarks/bench_records.py): the payload rate of record pushes
// against cudaMemcpyAsync device -> pinned host in the same run, and the visibility latency of
// small records pushed from inside a kernel. Compiled only with -DFC_BUILD_BENCHMARKS=ON.
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "channel/record_channel.hpp"
#include "channel/record_reader.hpp"
#include "cuda/cuda_device.hpp"
#include "cuda/cuda_interop.hpp"
#include "cuda/cuda_kernels.hpp"
#include "cuda_bench.hpp"

namespace fc::cuda_record_bench_kernels {
#include "cuda/prelude_cuda.cuh"
#include "kernels/kernel_layout.hpp"
#include "fc_kernel_sources.inc"  // the record push body (record_kernels.inc)

using u64 = unsigned long long;

__device__ __forceinline__ u64 globaltimer() {
  u64 t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

// One small record per launch, pushed from inside the kernel that made it (one thread): spin
// `ns` (a decode step), stamp %globaltimer into words 0-1, the record's index into word 2, and
// commit with the shared record body.
__global__ void stamped_record(uint* header, uint* data, uint* cursor, uint capacity, uint stride,
                               uint words, uint ns) {
  u64 t0 = globaltimer();
  while (globaltimer() - t0 < ns) {
  }
  uint lo = cursor[0];
  uint hi = cursor[1];
  uint base = fc_record_payload_offset(capacity) + (lo & (capacity - 1u)) * stride;
  u64 now = globaltimer();
  fc_store_payload(&data[base], static_cast<uint>(now));
  fc_store_payload(&data[base + 1u], static_cast<uint>(now >> 32));
  fc_store_payload(&data[base + 2u], lo);
  for (uint w = 3u; w < words; ++w) fc_store_payload(&data[base + w], 0u);
  if (fc_record_thread_done(cursor, 1u)) fc_record_commit(header, data, cursor, capacity, lo, hi);
}
}  // namespace fc::cuda_record_bench_kernels

namespace fc::cuda {
namespace {

using clock_type = std::chrono::steady_clock;
int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now().time_since_epoch())
      .count();
}
void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw DeviceError(error_text(what, e));
}

std::shared_ptr<RecordChannel> ready_channel(const std::shared_ptr<Device>& device,
                                             uint32_t capacity, uint64_t record_bytes) {
  auto ch = std::make_shared<RecordChannel>(device, capacity, record_bytes);
  auto cb = device->new_queue()->command_buffer();
  ch->encode_init(*cb);
  cb->commit();
  cb->wait_until_completed(30.0);
  return ch;
}

// `enqueue()` captured once as a CUDA graph (as a decode window would hold its pushes), so the
// measurement is the GPU's work, not the CPU's launch rate.
struct CapturedGraph {
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  template <class Enqueue>
  CapturedGraph(cudaStream_t stream, Enqueue&& enqueue) {
    check(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), "begin capture");
    enqueue();
    check(cudaStreamEndCapture(stream, &graph), "end capture");
    check(cudaGraphInstantiate(&exec, graph, 0), "instantiate");
    check(cudaGraphUpload(exec, stream), "upload");
  }
  ~CapturedGraph() {
    if (exec) cudaGraphExecDestroy(exec);
    if (graph) cudaGraphDestroy(graph);
  }
};
constexpr uint32_t kPerGraph = 32;  // pushes (or copies) per graph

// GPU milliseconds of `enqueue()` on `stream`, between two events.
template <class Enqueue>
double gpu_ms(cudaStream_t stream, Enqueue&& enqueue) {
  cudaEvent_t e0, e1;
  check(cudaEventCreate(&e0), "event");
  check(cudaEventCreate(&e1), "event");
  check(cudaEventRecord(e0, stream), "event");
  enqueue();
  check(cudaEventRecord(e1, stream), "event");
  check(cudaEventSynchronize(e1), "event");
  float ms = 0;
  check(cudaEventElapsedTime(&ms, e0, e1), "elapsed");
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  return ms;
}

}  // namespace

RecordRateResult bench_record_rate(const std::shared_ptr<Device>& device, uint64_t record_bytes,
                                   uint32_t count) {
  const int ordinal = device_ordinal(*device);
  if (ordinal < 0) throw std::invalid_argument("benchmark needs a 'cuda' device");
  make_current(ordinal);
  cudaStream_t stream;
  check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "stream");
  auto ch = ready_channel(device, 8, record_bytes);
  auto source = device->new_buffer(record_bytes, Storage::Private);
  const Dispatch push = ch->push_dispatch(source, 0);
  RecordRateResult r;
  // A reader drains while the GPU pushes: the delivered rate is what a CPU consumer gets.
  std::atomic<bool> stop{false};
  uint64_t delivered = 0;
  std::thread reader([&] {
    auto rd = ch->reader();
    std::vector<uint8_t> out(record_bytes);
    while (!stop.load(std::memory_order_relaxed)) {
      if (rd->try_read(out.data())) ++delivered;
    }
    while (rd->try_read(out.data())) ++delivered;
    r.dropped = rd->dropped();
  });
  CapturedGraph pushes(stream, [&] {
    for (uint32_t i = 0; i < kPerGraph; ++i) check(launch_dispatch(push, stream), "record push");
  });
  check(cudaGraphLaunch(pushes.exec, stream), "warm-up");
  check(cudaStreamSynchronize(stream), "warm-up");
  count = (count + kPerGraph - 1) / kPerGraph * kPerGraph;
  const int64_t t0 = now_ns();
  const double push_ms = gpu_ms(stream, [&] {
    for (uint32_t i = 0; i < count / kPerGraph; ++i) {
      check(cudaGraphLaunch(pushes.exec, stream), "record pushes");
    }
  });
  const int64_t t1 = now_ns();
  stop.store(true);
  reader.join();
  r.push_gbps = record_bytes * double(count) / (push_ms * 1e6);
  r.delivered = delivered;  // includes the warm-up graph's records
  r.delivered_gbps = record_bytes * double(delivered) / double(t1 - t0);
  // The baseline: the same bytes copied device -> pinned host by the copy engine.
  void* pinned = nullptr;
  check(cudaHostAlloc(&pinned, record_bytes * 8, cudaHostAllocDefault), "pinned buffer");
  CapturedGraph copies(stream, [&] {
    for (uint32_t i = 0; i < kPerGraph; ++i) {
      check(cudaMemcpyAsync(static_cast<uint8_t*>(pinned) + (i % 8) * record_bytes,
                            source->device_ptr(), record_bytes, cudaMemcpyDeviceToHost, stream),
            "memcpy");
    }
  });
  check(cudaGraphLaunch(copies.exec, stream), "warm-up");
  const double copy_ms = gpu_ms(stream, [&] {
    for (uint32_t i = 0; i < count / kPerGraph; ++i) {
      check(cudaGraphLaunch(copies.exec, stream), "memcpys");
    }
  });
  r.memcpy_gbps = record_bytes * double(count) / (copy_ms * 1e6);
  cudaFreeHost(pinned);
  cudaStreamDestroy(stream);
  return r;
}

RecordLatencyResult bench_record_latency(const std::shared_ptr<Device>& device,
                                         uint64_t record_bytes, uint32_t count, uint32_t gap_ns) {
  using namespace fc::cuda_record_bench_kernels;
  const int ordinal = device_ordinal(*device);
  if (ordinal < 0) throw std::invalid_argument("benchmark needs a 'cuda' device");
  if (record_bytes < 12) throw std::invalid_argument("latency records need at least 12 bytes");
  make_current(ordinal);
  cudaStream_t stream;
  check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "stream");
  auto ch = ready_channel(device, 1024, record_bytes);
  const auto bufs = ch->kernel_buffers();
  auto* header = static_cast<uint*>(bufs.header.device_ptr());
  auto* data = static_cast<uint*>(bufs.data.device_ptr());
  auto* cursor = static_cast<uint*>(bufs.cursor.device_ptr());
  const uint32_t words = static_cast<uint32_t>(record_bytes / 4);
  // The clock offset between %globaltimer and the CPU, from the decode benchmark's ping-pong.
  const ClockFitResult before = clock_fit(device);
  std::vector<int64_t> arrival(count, -1);
  std::vector<u64> written(count, 0);
  std::atomic<bool> ready{false};
  std::thread reader([&] {
    auto rd = ch->reader();
    std::vector<uint32_t> out(words);
    ready.store(true);
    const int64_t deadline = now_ns() + 20'000'000'000;
    for (uint32_t seen = 0; seen + rd->dropped() < count && now_ns() < deadline;) {
      if (!rd->try_read(out.data())) continue;
      const int64_t t = now_ns();
      const uint32_t k = out[2];
      if (k < count) {
        arrival[k] = t;
        written[k] = (u64{out[1]} << 32) | out[0];
      }
      ++seen;
    }
  });
  while (!ready.load()) std::this_thread::yield();
  for (uint32_t k = 0; k < count; ++k) {
    stamped_record<<<1, 1, 0, stream>>>(header, data, cursor, ch->capacity(), ch->stride_words(),
                                         words, gap_ns);
  }
  check(cudaGetLastError(), "launching stamped_record");
  check(cudaStreamSynchronize(stream), "stamped records");
  reader.join();
  const ClockFitResult after = clock_fit(device);
  RecordLatencyResult r;
  for (uint32_t k = 0; k < count; ++k) {
    if (arrival[k] < 0) continue;
    const double offset = 0.5 * (before.offset_ns + after.offset_ns);
    r.latency_us.push_back((double(arrival[k]) - (double(written[k]) - offset)) / 1000.0);
  }
  r.clock_error_us = std::max(before.error_ns, after.error_ns) / 1000.0;
  cudaStreamDestroy(stream);
  return r;
}

}  // namespace fc::cuda
