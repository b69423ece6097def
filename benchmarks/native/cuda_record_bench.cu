// Record-channel instruments (benchmarks/bench_records.py): the payload rate of record pushes
// against cudaMemcpyAsync device -> pinned host in the same run, and the visibility latency of
// small records pushed from inside a kernel. Compiled only with -DFC_BUILD_BENCHMARKS=ON.
#include <atomic>
#include <functional>
#include <string>
#include <chrono>
#include <thread>
#include <vector>

#include "channel/record_channel.hpp"
#include "channel/record_reader.hpp"
#include "cuda/cuda_device.hpp"
#include "cuda/cuda_interop.hpp"
#include "cuda/cuda_kernels.hpp"
#include "cuda_bench.hpp"
#include "cuda_bench_host.cuh"

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

// Reference kernels (no protocol) and pieces of a push, each launched once per record: where a
// record's GPU time goes (bench_record_cost) and what plain kernel stores reach (the rate rows).
__global__ void empty_kernel() {}
__global__ void system_fence() { fc_fence_release_sys(); }
__global__ void system_fence_sc() { asm volatile("fence.sc.sys;" ::: "memory"); }
// The production commit alone (one thread): mark, system fence, end tag, publish.
__global__ void commit_only(uint* header, uint* data, uint* cursor, uint capacity) {
  fc_record_commit(header, data, cursor, capacity, cursor[0], cursor[1]);
}
// 16-byte stores of `vectors` vectors, strided over the grid.
__global__ void stores16(uint* dst, const uint* src, uint vectors, uint threads) {
  const uint gid = blockIdx.x * blockDim.x + threadIdx.x;
  for (uint v = gid; v < vectors; v += threads) fc_copy_payload4(&dst[4u * v], &src[4u * v]);
}
// 4-byte stores strided over the grid (16 words a thread: the record push before 2026-11-28).
__global__ void stores4(uint* dst, const uint* src, uint words, uint threads) {
  const uint gid = blockIdx.x * blockDim.x + threadIdx.x;
  for (uint w = gid; w < words; w += threads) dst[w] = src[w];
}
// A u32 channel's slots: (value, tag) as one 8-byte system-scope store per payload word.
__global__ void slot_pairs(uint* dst, const uint* src, uint words, uint threads) {
  const uint gid = blockIdx.x * blockDim.x + threadIdx.x;
  for (uint w = gid; w < words; w += threads) fc_store_pair_relaxed_sys(&dst[2u * w], src[w], w);
}
}  // namespace fc::cuda_record_bench_kernels

namespace fc::cuda {
namespace {

using bench::check;
using bench::now_ns;

std::shared_ptr<RecordChannel> ready_channel(const std::shared_ptr<Device>& device,
                                             uint32_t capacity, uint64_t record_bytes) {
  return bench::ready_channel<RecordChannel>(device, capacity, record_bytes);
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

// `enqueue(i)` for i < kPerGraph captured as one graph, one record each.
template <class Enqueue>
std::unique_ptr<CapturedGraph> per_record_graph(cudaStream_t stream, Enqueue&& enqueue) {
  auto graph = std::make_unique<CapturedGraph>(stream, [&] {
    for (uint32_t i = 0; i < kPerGraph; ++i) enqueue(i);
    check(cudaGetLastError(), "launch while capturing");
  });
  check(cudaGraphLaunch(graph->exec, stream), "warm-up");
  check(cudaStreamSynchronize(stream), "warm-up");
  return graph;
}

// GPU microseconds per record: `count` records (a multiple of kPerGraph) through `graph`.
double us_per_record(cudaStream_t stream, const CapturedGraph& graph, uint32_t count) {
  const double ms = gpu_ms(stream, [&] {
    for (uint32_t i = 0; i < count / kPerGraph; ++i) {
      check(cudaGraphLaunch(graph.exec, stream), "graph launch");
    }
  });
  return ms * 1e3 / count;
}

// What the rate and cost benchmarks share: a channel of 8 records, a device source, and 8
// records of pinned host memory (mapped: kernels store into it too).
struct RecordBench {
  std::shared_ptr<RecordChannel> channel;
  std::shared_ptr<Buffer> source;
  cudaStream_t stream = nullptr;
  uint8_t* pinned = nullptr;
  uint* pinned_device = nullptr;
  uint32_t words = 0;

  RecordBench(const std::shared_ptr<Device>& device, uint64_t record_bytes) {
    const int ordinal = device_ordinal(*device);
    if (ordinal < 0) throw std::invalid_argument("benchmark needs a 'cuda' device");
    if (record_bytes % 16 != 0) {
      throw std::invalid_argument("benchmark records are a multiple of 16 bytes");
    }
    make_current(ordinal);
    channel = ready_channel(device, 8, record_bytes);
    source = device->new_buffer(record_bytes, Storage::Private);
    words = static_cast<uint32_t>(record_bytes / 4);
    check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "stream");
    check(cudaHostAlloc(reinterpret_cast<void**>(&pinned), record_bytes * 8, cudaHostAllocMapped),
          "pinned buffer");
    check(cudaHostGetDevicePointer(reinterpret_cast<void**>(&pinned_device), pinned, 0), "mapped");
  }
  ~RecordBench() {
    cudaFreeHost(pinned);
    cudaStreamDestroy(stream);
  }
  RecordBench(const RecordBench&) = delete;
  RecordBench& operator=(const RecordBench&) = delete;
  const uint* src() const { return static_cast<const uint*>(source->device_ptr()); }
  uint* slot(uint32_t i) const {
    auto* data = static_cast<uint*>(channel->kernel_buffers().data.device_ptr());
    return data + channel->payload_offset_words() + (i % 8) * channel->stride_words();
  }
  // The threads of a production push of this record (record_channel.cpp's rule).
  uint32_t push_threads() const { return channel->push_dispatch(source, 0).grid; }
};

uint32_t blocks_for(uint32_t threads) { return (threads + 255) / 256; }
uint32_t block_size(uint32_t threads) { return threads < 256 ? threads : 256; }

}  // namespace

RecordRateResult bench_record_rate(const std::shared_ptr<Device>& device, uint64_t record_bytes,
                                   uint32_t count) {
  using namespace fc::cuda_record_bench_kernels;
  RecordBench b(device, record_bytes);
  count = (count + kPerGraph - 1) / kPerGraph * kPerGraph;
  const Dispatch push = b.channel->push_dispatch(b.source, 0);
  RecordRateResult r;
  // A reader drains while the GPU pushes: the delivered rate is what a CPU consumer gets.
  std::atomic<bool> stop{false};
  uint64_t delivered = 0;
  std::thread reader([&] {
    auto rd = b.channel->reader();
    std::vector<uint8_t> out(record_bytes);
    while (!stop.load(std::memory_order_relaxed)) {
      if (rd->try_read(out.data())) ++delivered;
    }
    while (rd->try_read(out.data())) ++delivered;
    r.dropped = rd->dropped();
  });
  auto pushes = per_record_graph(b.stream, [&](uint32_t) {
    check(launch_dispatch(push, b.stream), "record push");
  });
  const int64_t t0 = now_ns();
  const double push_us = us_per_record(b.stream, *pushes, count);
  const int64_t t1 = now_ns();
  stop.store(true);
  reader.join();
  auto gbps = [&](double us) { return record_bytes / (us * 1e3); };
  r.push_gbps = gbps(push_us);
  r.delivered = delivered;  // includes the warm-up graph's records
  r.delivered_gbps = record_bytes * double(delivered) / double(t1 - t0);
  // The baseline: the same bytes copied device -> pinned host by the copy engine, one
  // cudaMemcpyAsync per record, on the same stream, in graphs of 32.
  auto copies = per_record_graph(b.stream, [&](uint32_t i) {
    check(cudaMemcpyAsync(b.pinned + (i % 8) * record_bytes, b.src(), record_bytes,
                          cudaMemcpyDeviceToHost, b.stream), "memcpy");
  });
  r.memcpy_gbps = gbps(us_per_record(b.stream, *copies, count));
  // References, one kernel per record with the push's threads and no protocol: 16-byte stores
  // into mapped host memory, and a u32 channel's (value, tag) 8-byte slots (payload bytes/s).
  const uint32_t threads = b.push_threads();
  auto wide = per_record_graph(b.stream, [&](uint32_t i) {
    stores16<<<blocks_for(threads), block_size(threads), 0, b.stream>>>(
        b.pinned_device + (i % 8) * b.words, b.src(), b.words / 4, threads);
  });
  r.stores16_gbps = gbps(us_per_record(b.stream, *wide, count));
  auto pairs = per_record_graph(b.stream, [&](uint32_t i) {
    slot_pairs<<<blocks_for(threads), block_size(threads), 0, b.stream>>>(
        b.pinned_device + (i % 4) * 2 * b.words, b.src(), b.words, threads);
  });
  r.pairs_gbps = gbps(us_per_record(b.stream, *pairs, count));
  return r;
}

std::vector<std::pair<std::string, double>> bench_record_cost(const std::shared_ptr<Device>& device,
                                                              uint64_t record_bytes,
                                                              uint32_t count) {
  using namespace fc::cuda_record_bench_kernels;
  RecordBench b(device, record_bytes);
  count = (count + kPerGraph - 1) / kPerGraph * kPerGraph;
  const Dispatch push = b.channel->push_dispatch(b.source, 0);
  const auto bufs = b.channel->kernel_buffers();
  auto* header = static_cast<uint*>(bufs.header.device_ptr());
  auto* data = static_cast<uint*>(bufs.data.device_ptr());
  auto* cursor = static_cast<uint*>(bufs.cursor.device_ptr());
  const uint capacity = b.channel->capacity();
  const uint32_t threads = b.push_threads();
  const uint32_t before_threads = std::max(1u, std::min(b.words / 16, 4096u));
  std::vector<std::pair<std::string, std::function<void(uint32_t)>>> parts = {
      {"push (record_push)", [&](uint32_t) { check(launch_dispatch(push, b.stream), "push"); }},
      {"cudaMemcpyAsync", [&](uint32_t i) {
         check(cudaMemcpyAsync(b.slot(i), b.src(), record_bytes, cudaMemcpyDeviceToHost, b.stream),
               "memcpy");
       }},
      {"empty kernel", [&](uint32_t) { empty_kernel<<<1, 1, 0, b.stream>>>(); }},
      {"system fence (1 thread)", [&](uint32_t) { system_fence<<<1, 1, 0, b.stream>>>(); }},
      {"system fence, fence.sc (1 thread)",
       [&](uint32_t) { system_fence_sc<<<1, 1, 0, b.stream>>>(); }},
      {"commit (1 thread)",
       [&](uint32_t) { commit_only<<<1, 1, 0, b.stream>>>(header, data, cursor, capacity); }},
      {"payload: 16-byte stores, push's grid", [&](uint32_t i) {
         stores16<<<blocks_for(threads), block_size(threads), 0, b.stream>>>(b.slot(i), b.src(),
                                                                           b.words / 4, threads);
       }},
      {"payload: 4-byte stores, 16 words a thread", [&](uint32_t i) {
         stores4<<<blocks_for(before_threads), block_size(before_threads), 0, b.stream>>>(
             b.slot(i), b.src(), b.words, before_threads);
       }},
      {"cudaMemcpyAsync + commit kernel", [&](uint32_t i) {
         check(cudaMemcpyAsync(b.slot(i), b.src(), record_bytes, cudaMemcpyDeviceToHost, b.stream),
               "memcpy");
         commit_only<<<1, 1, 0, b.stream>>>(header, data, cursor, capacity);
       }},
  };
  std::vector<std::pair<std::string, double>> out;
  for (auto& [name, enqueue] : parts) {
    auto graph = per_record_graph(b.stream, enqueue);
    out.emplace_back(name, us_per_record(b.stream, *graph, count));
  }
  return out;
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
