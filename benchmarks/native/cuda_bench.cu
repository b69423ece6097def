// Benchmark instruments for benchmarks/bench_decode_cuda.py: a %globaltimer spin standing
// in for a decode step, ping-pong kernels, and drivers that time the decode-loop variants
// with the library's own channel, reader and push kernel. Nothing here is on a product path:
// it is compiled only with -DFC_BUILD_BENCHMARKS=ON. The kernels are CUDA-only (no portable
// clock exists), so they are not in csrc/kernels.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <optional>
#include <thread>

#include "channel/layout.hpp"
#include "channel/reader.hpp"
#include "cuda/cuda_device.hpp"
#include "cuda/cuda_interop.hpp"
#include "cuda_bench.hpp"
#include "cuda_bench_host.cuh"
#include "cuda/cuda_kernels.hpp"

namespace fc::cuda_bench_kernels {
#include "cuda/prelude_cuda.cuh"
#include "kernels/kernel_layout.hpp"
#include "fc_kernel_sources.inc"  // the push protocol (fc_channel_begin/end) for the ping-pong

using u64 = unsigned long long;
constexpr u64 kSpinTimeoutNs = 2000000000ull;  // a CPU that never answers: give up after 2 s

__device__ __forceinline__ u64 globaltimer() {
  u64 t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}
// A word the CPU writes while the kernel runs: a system-scope load, never cached stale.
__device__ __forceinline__ uint load_sys(const uint* p) {
  uint v;
  asm volatile("ld.relaxed.sys.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}

// One decode step: spin `ns`, then write the step's token (its index) into
// token[k % token_slots] (a token history, as a decode loop keeps one) and the time of the
// write. state[0] is the step counter, so a graph of steps needs no per-launch arguments.
__global__ void spin_step(uint ns, uint* state, uint* token, uint token_slots, u64* stamps,
                          uint stamps_len) {
  u64 t0 = globaltimer();
  while (globaltimer() - t0 < ns) {
  }
  uint k = state[0];
  state[0] = k + 1u;
  if (k < stamps_len) stamps[k] = globaltimer();
  token[k % token_slots] = k;
}

// The same step with the push fused in: the decode kernel itself publishes its token through
// the shared push body (immediate value), the way an engine's sampler kernel would. With
// fence-free slots this adds one 8-byte store and one 4-byte store to the step.
__global__ void spin_step_push(uint ns, uint* state, uint* token, u64* stamps, uint stamps_len,
                               uint* header, uint* data, uint* cursor, uint capacity) {
  u64 t0 = globaltimer();
  while (globaltimer() - t0 < ns) {
  }
  uint k = state[0];
  state[0] = k + 1u;
  if (k < stamps_len) stamps[k] = globaltimer();
  token[0] = k;
  fc_channel_push_value(header, data, cursor, capacity, k);
}

// Smallest non-zero step of %globaltimer (its resolution on this GPU).
__global__ void timer_resolution(u64* out) {
  u64 best = ~0ull;
  u64 prev = globaltimer();
  for (int i = 0; i < 100000; ++i) {
    u64 t = globaltimer();
    if (t != prev) {
      best = t - prev < best ? t - prev : best;
      prev = t;
    }
  }
  out[0] = best;
}

// Raw round trip: d2h = i (release, system scope), wait for the CPU's h2d = i, stamp, repeat.
__global__ void ping_pong_raw(uint* d2h, const uint* h2d, uint n, u64* seen, uint* failed) {
  for (uint i = 1u; i <= n; ++i) {
    fc_store_release_sys(d2h, i);
    u64 t0 = globaltimer();
    while (load_sys(h2d) != i) {
      if (globaltimer() - t0 > kSpinTimeoutNs) {
        failed[0] = 1u;
        return;
      }
    }
    seen[i - 1u] = globaltimer();
  }
  fc_store_release_sys(d2h, n + 1u);
}

// Through a channel: push i with the channel protocol, wait for the reader's answer h2d = i+1.
__global__ void ping_pong_channel(uint* header, uint* data, uint* cursor, uint capacity,
                                  const uint* h2d, uint n, uint* failed) {
  for (uint i = 0u; i < n; ++i) {
    fc_channel_push_value(header, data, cursor, capacity, i);  // the shared push body
    u64 t0 = globaltimer();
    while (load_sys(h2d) != i + 1u) {
      if (globaltimer() - t0 > kSpinTimeoutNs) {
        failed[0] = 1u;
        return;
      }
    }
  }
}

}  // namespace fc::cuda_bench_kernels

namespace fc::cuda {
namespace {

using namespace fc::cuda_bench_kernels;
using bench::check;
using bench::now_ns;

inline uint32_t cpu_load(const uint32_t* p) {
  return std::atomic_ref<uint32_t>(*const_cast<uint32_t*>(p)).load(std::memory_order_acquire);
}
inline void cpu_store(uint32_t* p, uint32_t v) {
  std::atomic_ref<uint32_t>(*p).store(v, std::memory_order_release);
}

// Everything a benchmark needs on one device, released in the destructor.
struct Bench {
  std::shared_ptr<Device> device;
  int ordinal;
  cudaStream_t stream = nullptr;
  explicit Bench(const std::shared_ptr<Device>& d) : device(d), ordinal(device_ordinal(*d)) {
    if (ordinal < 0) throw std::invalid_argument("benchmark needs a 'cuda' device");
    device->check_usable("run a benchmark");
    make_current(ordinal);
    check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "bench stream");
  }
  ~Bench() {
    if (stream) cudaStreamDestroy(stream);
  }
  std::shared_ptr<Buffer> shared(size_t bytes) { return device->new_buffer(bytes, Storage::Shared); }
  std::shared_ptr<Buffer> priv(size_t bytes) { return device->new_buffer(bytes, Storage::Private); }
  std::shared_ptr<ChannelU32> channel(uint32_t capacity) {
    return bench::ready_channel<ChannelU32>(device, capacity);
  }
};

// Offset of %globaltimer against the CPU's steady clock, from raw ping-pong round trips:
// the GPU stamps when it sees the CPU's write, assumed halfway through the shortest trip.
struct ClockFit {
  double offset_ns;    // gpu - cpu
  double error_ns;     // half the shortest round trip: the bound on the offset's error
  double rtt_ns;       // mean round trip
};

ClockFit calibrate(Bench& b, uint32_t n) {
  auto flags = b.shared(64);
  auto seen = b.priv(sizeof(u64) * n);
  auto failed = b.shared(4);
  auto* d2h = static_cast<uint32_t*>(flags->host_ptr());
  auto* h2d = d2h + 16;  // another cache line
  ping_pong_raw<<<1, 1, 0, b.stream>>>(static_cast<uint*>(flags->device_ptr()),
                                       static_cast<uint*>(flags->device_ptr()) + 16, n,
                                       static_cast<u64*>(seen->device_ptr()),
                                       static_cast<uint*>(failed->device_ptr()));
  check(cudaGetLastError(), "launching ping_pong_raw");
  std::vector<int64_t> sent(n), back(n);
  const int64_t deadline = now_ns() + 5'000'000'000;
  bool ok = true;
  for (uint32_t i = 1; i <= n && ok; ++i) {
    while (cpu_load(d2h) != i) {
      if (now_ns() > deadline) { ok = false; break; }
    }
    sent[i - 1] = now_ns();
    cpu_store(h2d, i);
    while (ok && cpu_load(d2h) != i + 1) {
      if (now_ns() > deadline) { ok = false; break; }
    }
    back[i - 1] = now_ns();
  }
  check(cudaStreamSynchronize(b.stream), "ping_pong_raw");
  if (!ok || static_cast<uint32_t*>(failed->host_ptr())[0]) {
    throw DeviceError("ping-pong: the GPU and the CPU lost each other (timed out)");
  }
  std::vector<u64> gpu(n);
  check(cudaMemcpy(gpu.data(), seen->device_ptr(), sizeof(u64) * n, cudaMemcpyDeviceToHost),
        "copying ping-pong stamps");
  size_t best = 0;
  double total = 0;
  for (size_t i = 0; i < n; ++i) {
    total += static_cast<double>(back[i] - sent[i]);
    if (back[i] - sent[i] < back[best] - sent[best]) best = i;
  }
  double mid = 0.5 * static_cast<double>(sent[best] + back[best]);
  return {static_cast<double>(gpu[best]) - mid, 0.5 * static_cast<double>(back[best] - sent[best]),
          total / n};
}

// Drains `channel` on its own thread until `steps` items were delivered or dropped, stamping
// each item's arrival (items are step indices).
struct DrainThread {
  std::shared_ptr<ChannelU32Reader> reader;
  std::vector<int64_t> arrival;
  bool in_order = true;
  std::atomic<bool> stop{false};
  std::thread thread;
  DrainThread(std::shared_ptr<ChannelU32> ch, uint32_t steps)
      : reader(ch->reader()), arrival(steps, -1), thread([this, steps] { run(steps); }) {}
  void run(uint32_t steps) {
    std::vector<uint32_t> buf(4096);
    int64_t expect = 0;
    while (reader->delivered() + reader->dropped() < steps && !stop.load(std::memory_order_relaxed)) {
      size_t n = reader->drain_into(buf.data(), buf.size());
      if (n == 0) continue;
      int64_t t = now_ns();
      for (size_t j = 0; j < n; ++j) {
        uint32_t v = buf[j];
        if (v < steps) arrival[v] = t;
        if (v != expect) in_order = false;
        expect = int64_t{v} + 1;
      }
    }
  }
  void join(int64_t deadline) {
    while (thread.joinable() && reader->delivered() + reader->dropped() < arrival.size() &&
           now_ns() < deadline) {
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    stop.store(true);
    thread.join();
  }
};

struct GraphExec {
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  ~GraphExec() {
    if (exec) cudaGraphExecDestroy(exec);
    if (graph) cudaGraphDestroy(graph);
  }
};

}  // namespace

DecodeBenchResult bench_decode(const std::shared_ptr<Device>& device, const std::string& variant,
                               uint32_t steps, uint32_t step_ns, uint32_t window) {
  if (variant != "sync" && variant != "stream" && variant != "graph" && variant != "fork" &&
      variant != "fused" && variant != "none") {
    throw std::invalid_argument("variant must be 'sync', 'stream', 'graph', 'fork', 'fused' or "
                                "'none', got '" + variant + "'");
  }
  if (steps == 0 || window == 0 || steps % window != 0) {
    throw std::invalid_argument("steps must be a positive multiple of window");
  }
  Bench b(device);
  auto state = b.priv(4);
  const bool fork = variant == "fork";
  const uint32_t token_slots = fork ? window : 1;
  auto token_dev = b.priv(4 * token_slots);
  auto token_host = b.shared(4);
  auto stamps = b.priv(sizeof(u64) * steps);
  const bool fused = variant == "fused";
  const bool streams = variant == "stream" || variant == "graph" || fork || fused;
  uint32_t capacity = 1;
  while (capacity < steps) capacity <<= 1;  // no drops: every token is checked
  auto ch = b.channel(capacity);
  auto* st = static_cast<uint*>(state->device_ptr());
  auto* tok = static_cast<uint*>((variant == "sync" ? token_host : token_dev)->device_ptr());
  auto* stm = static_cast<u64*>(stamps->device_ptr());
  kernel_args::channel_u32_push push_args;
  push_args.channel = ch->kernel_buffers();
  push_args.capacity = capacity;
  push_args.from_source = 1;
  push_args.source = BufferArg::raw(tok);
  push_args.count = 1;
  push_args.stride = 1;
  const Dispatch push = make_dispatch(1, push_args);
  auto launch_step = [&] {
    if (fused) {
      spin_step_push<<<1, 1, 0, b.stream>>>(
          step_ns, st, tok, stm, steps, static_cast<uint*>(ch->header_buffer()->device_ptr()),
          static_cast<uint*>(ch->data_buffer()->device_ptr()),
          static_cast<uint*>(ch->cursor_buffer()->device_ptr()), capacity);
      return;
    }
    spin_step<<<1, 1, 0, b.stream>>>(step_ns, st, tok, 1u, stm, steps);
    if (streams) check(launch_dispatch(push, b.stream), "launching the push");
  };
  // "fork": the push of step i is a side branch of the graph (after step i and push i-1);
  // step i+1 depends on step i only, so the pushes run beside the next steps instead of
  // between them. Step i's token has its own slot, so step i+1 never overwrites what push i
  // reads. Graph launches on one stream still run whole windows in order.
  cudaStream_t side = nullptr;
  std::vector<cudaEvent_t> events;
  auto capture_fork = [&] {
    for (uint32_t i = 0; i < window; ++i) {
      spin_step<<<1, 1, 0, b.stream>>>(step_ns, st, tok, token_slots, stm, steps);
      check(cudaEventRecord(events[i], b.stream), "fork: record");
      check(cudaStreamWaitEvent(side, events[i], 0), "fork: wait");
      Dispatch p = push;
      p.scalars[5] = i;  // word offset: this step's token slot
      check(launch_dispatch(p, side), "fork: push");
    }
    check(cudaEventRecord(events[window], side), "fork: join");
    check(cudaStreamWaitEvent(b.stream, events[window], 0), "fork: join");
  };
  if (fork) {
    check(cudaStreamCreateWithFlags(&side, cudaStreamNonBlocking), "fork: side stream");
    events.resize(window + 1);
    for (auto& e : events) check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "event");
  }

  ClockFit before{};
  if (streams) before = calibrate(b, 200);
  GraphExec g;
  if (variant == "graph" || variant == "none" || fork || fused) {
    check(cudaStreamBeginCapture(b.stream, cudaStreamCaptureModeThreadLocal), "begin capture");
    if (fork) {
      capture_fork();
    } else {
      for (uint32_t i = 0; i < window; ++i) launch_step();
    }
    check(cudaStreamEndCapture(b.stream, &g.graph), "end capture");
    check(cudaGraphInstantiate(&g.exec, g.graph, 0), "instantiate");
    check(cudaGraphUpload(g.exec, b.stream), "upload");
    check(cudaStreamSynchronize(b.stream), "upload");
  }

  DecodeBenchResult r;
  std::unique_ptr<DrainThread> drain;
  if (streams) drain = std::make_unique<DrainThread>(ch, steps);
  bool tokens_ok = true;
  const int64_t t0 = now_ns();
  if (variant == "sync") {
    const auto* host = static_cast<const uint32_t*>(token_host->host_ptr());
    for (uint32_t k = 0; k < steps; ++k) {
      spin_step<<<1, 1, 0, b.stream>>>(step_ns, st, tok, 1u, stm, steps);
      check(cudaStreamSynchronize(b.stream), "per-step synchronize");
      if (cpu_load(host) != k) tokens_ok = false;
    }
  } else if (variant == "stream") {
    for (uint32_t k = 0; k < steps; ++k) launch_step();
  } else {
    for (uint32_t k = 0; k < steps / window; ++k) check(cudaGraphLaunch(g.exec, b.stream), "graph");
  }
  check(cudaStreamSynchronize(b.stream), "final synchronize");
  if (drain) drain->join(now_ns() + 10'000'000'000);
  const int64_t t1 = now_ns();
  r.us_per_token = (t1 - t0) / 1000.0 / steps;

  if (streams) {
    ClockFit after = calibrate(b, 200);
    r.delivered = drain->reader->delivered();
    r.dropped = drain->reader->dropped();
    tokens_ok = drain->in_order && r.delivered == steps && r.dropped == 0;
    std::vector<u64> gpu(steps);
    check(cudaMemcpy(gpu.data(), stm, sizeof(u64) * steps, cudaMemcpyDeviceToHost), "stamps");
    // The offset drifts a little (two oscillators): interpolate between the two fits by the
    // GPU stamp's position in the run.
    const double g0 = static_cast<double>(gpu.front()), g1 = static_cast<double>(gpu.back());
    r.latency_us.reserve(steps);
    for (uint32_t k = 0; k < steps; ++k) {
      if (drain->arrival[k] < 0) continue;
      double f = g1 > g0 ? (static_cast<double>(gpu[k]) - g0) / (g1 - g0) : 0.0;
      double offset = before.offset_ns + f * (after.offset_ns - before.offset_ns);
      double written_cpu = static_cast<double>(gpu[k]) - offset;
      r.latency_us.push_back((static_cast<double>(drain->arrival[k]) - written_cpu) / 1000.0);
    }
    r.clock_error_us = std::max(before.error_ns, after.error_ns) / 1000.0;
  } else {
    r.delivered = steps;
  }
  r.tokens_ok = tokens_ok;
  for (auto e : events) cudaEventDestroy(e);
  if (side) cudaStreamDestroy(side);
  return r;
}

PingPongResult bench_ping_pong(const std::shared_ptr<Device>& device, uint32_t iterations) {
  Bench b(device);
  PingPongResult r;
  r.raw_us = calibrate(b, iterations).rtt_ns / 1000.0;

  auto ch = b.channel(1024);
  auto reply = b.shared(64);
  auto failed = b.shared(4);
  auto* h2d = static_cast<uint32_t*>(reply->host_ptr());
  ping_pong_channel<<<1, 1, 0, b.stream>>>(
      static_cast<uint*>(ch->header_buffer()->device_ptr()),
      static_cast<uint*>(ch->data_buffer()->device_ptr()),
      static_cast<uint*>(ch->cursor_buffer()->device_ptr()), ch->capacity(),
      static_cast<uint*>(reply->device_ptr()), iterations, static_cast<uint*>(failed->device_ptr()));
  check(cudaGetLastError(), "launching ping_pong_channel");
  auto reader = ch->reader();
  const int64_t deadline = now_ns() + 10'000'000'000;
  int64_t first = 0;
  bool ok = true;
  for (uint32_t i = 0; i < iterations && ok; ++i) {
    std::optional<uint32_t> v;
    while (!(v = reader->try_next())) {
      if (now_ns() > deadline) { ok = false; break; }
    }
    if (!ok) break;
    if (*v != i) throw DeviceError("ping-pong through the channel returned the wrong item");
    if (i == 0) first = now_ns();
    cpu_store(h2d, i + 1);
  }
  const int64_t last = now_ns();
  check(cudaStreamSynchronize(b.stream), "ping_pong_channel");
  if (!ok || static_cast<uint32_t*>(failed->host_ptr())[0]) {
    throw DeviceError("channel ping-pong: the GPU and the CPU lost each other (timed out)");
  }
  r.channel_us = iterations > 1 ? (last - first) / 1000.0 / (iterations - 1) : 0.0;
  return r;
}

PushCostResult bench_push_cost(const std::shared_ptr<Device>& device, uint32_t pushes) {
  Bench b(device);
  PushCostResult r;
  auto ch = b.channel(1u << 16);
  cudaEvent_t e0, e1;
  check(cudaEventCreate(&e0), "event");
  check(cudaEventCreate(&e1), "event");
  auto elapsed_ms = [&] {
    float ms = 0;
    check(cudaEventSynchronize(e1), "event");
    check(cudaEventElapsedTime(&ms, e0, e1), "elapsed");
    return static_cast<double>(ms);
  };
  // (1) inside one kernel: push_sequence publishes each item on its own.
  kernel_args::channel_u32_push_sequence seq_args;
  seq_args.channel = ch->kernel_buffers();
  seq_args.capacity = ch->capacity();
  seq_args.count = pushes;
  const Dispatch seq = make_dispatch(1, seq_args);
  check(launch_dispatch(seq, b.stream), "warm-up");
  check(cudaEventRecord(e0, b.stream), "event");
  check(launch_dispatch(seq, b.stream), "push_sequence");
  check(cudaEventRecord(e1, b.stream), "event");
  r.in_kernel_ns = elapsed_ms() * 1e6 / pushes;

  // (2) one push kernel per step in a graph of 64, against a graph of 64 empty-ish steps.
  auto state = b.priv(4);
  auto tok = b.priv(4);
  kernel_args::channel_u32_push push_args;
  push_args.channel = ch->kernel_buffers();
  push_args.capacity = ch->capacity();
  push_args.value = 7;
  const Dispatch push = make_dispatch(1, push_args);
  auto graph_us = [&](bool with_push) {
    GraphExec g;
    check(cudaStreamBeginCapture(b.stream, cudaStreamCaptureModeThreadLocal), "capture");
    for (int i = 0; i < 64; ++i) {
      spin_step<<<1, 1, 0, b.stream>>>(0u, static_cast<uint*>(state->device_ptr()),
                                       static_cast<uint*>(tok->device_ptr()), 1u, nullptr, 0u);
      if (with_push) check(launch_dispatch(push, b.stream), "push");
    }
    check(cudaStreamEndCapture(b.stream, &g.graph), "capture");
    check(cudaGraphInstantiate(&g.exec, g.graph, 0), "instantiate");
    check(cudaGraphLaunch(g.exec, b.stream), "warm-up");
    check(cudaEventRecord(e0, b.stream), "event");
    for (int rep = 0; rep < 20; ++rep) check(cudaGraphLaunch(g.exec, b.stream), "graph");
    check(cudaEventRecord(e1, b.stream), "event");
    return elapsed_ms() * 1000.0 / (20 * 64);
  };
  r.graph_launch_us = graph_us(true) - graph_us(false);

  auto res = b.priv(8);
  timer_resolution<<<1, 1, 0, b.stream>>>(static_cast<u64*>(res->device_ptr()));
  check(cudaGetLastError(), "timer_resolution");
  // cudaMemcpy runs on the legacy stream, which does not wait for our non-blocking stream.
  check(cudaStreamSynchronize(b.stream), "timer_resolution");
  u64 resolution = 0;
  check(cudaMemcpy(&resolution, res->device_ptr(), 8, cudaMemcpyDeviceToHost), "resolution");
  r.timer_resolution_ns = static_cast<double>(resolution);
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  return r;
}

ClockFitResult clock_fit(const std::shared_ptr<Device>& device) {
  Bench b(device);
  const ClockFit fit = calibrate(b, 200);
  return {fit.offset_ns, fit.error_ns};
}

}  // namespace fc::cuda
