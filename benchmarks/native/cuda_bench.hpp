// The CUDA benchmark instruments (benchmarks/bench_decode_cuda.py), compiled into _core only
// with -DFC_BUILD_BENCHMARKS=ON: cuda_bench.cu with the CUDA backend, no_cuda_bench.cpp
// without it. Declared without CUDA headers so the bindings compile everywhere.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "device/device.hpp"

namespace fc::cuda {

struct DecodeBenchResult {
  double us_per_token = 0;
  uint64_t delivered = 0;
  uint64_t dropped = 0;
  bool tokens_ok = false;          // every token read equals its step index, in order
  std::vector<double> latency_us;  // device token write -> reader arrival, per token (b, c)
  double clock_error_us = 0;       // bound on the clock-offset error of latency_us
};

// A decode-like loop of `steps` steps, each a %globaltimer spin of `step_ns` writing the
// step's token. Variants: "sync" (launch, synchronise, read: per-step sync), "stream"
// (step + push launched per step, a reader thread drains concurrently), "graph" (windows of
// `window` steps+pushes as CUDA graphs, reader draining), "none" (graphs of steps only, no
// streaming: the upper bound).
DecodeBenchResult bench_decode(const std::shared_ptr<Device>& device, const std::string& variant,
                               uint32_t steps, uint32_t step_ns, uint32_t window);

struct PingPongResult {
  double raw_us = 0;      // GPU->CPU->GPU round trip through two mapped words
  double channel_us = 0;  // GPU pushes into a channel, the CPU reader answers in a mapped word
};
PingPongResult bench_ping_pong(const std::shared_ptr<Device>& device, uint32_t iterations);

struct PushCostResult {
  double in_kernel_ns = 0;     // one push inside a long-running kernel (push_sequence)
  double graph_launch_us = 0;  // one push kernel per step inside a graph (what a window pays)
  double timer_resolution_ns = 0;  // smallest %globaltimer step seen
};
PushCostResult bench_push_cost(const std::shared_ptr<Device>& device, uint32_t pushes);

// %globaltimer minus the CPU's steady clock, from GPU<->CPU ping-pong round trips; error_ns
// bounds the offset's error (half the shortest trip).
struct ClockFitResult {
  double offset_ns = 0;
  double error_ns = 0;
};
ClockFitResult clock_fit(const std::shared_ptr<Device>& device);

// Record channels (cuda_record_bench.cu): `count` pushes of `record_bytes` (GPU time) against
// cudaMemcpyAsync device -> pinned host of the same bytes, a reader draining meanwhile; each one
// launch (or one copy) per record in CUDA graphs of 32, on one stream.
struct RecordRateResult {
  double push_gbps = 0;       // payload bytes pushed per second of GPU time
  double memcpy_gbps = 0;     // the copy engine, device -> pinned host, same run
  double stores16_gbps = 0;   // reference: a kernel's 16-byte stores into mapped host memory
  double pairs_gbps = 0;      // reference: u32 (value, tag) 8-byte slots, payload bytes per second
  double delivered_gbps = 0;  // what the CPU reader copied out per wall-clock second
  uint64_t delivered = 0;
  uint64_t dropped = 0;
};
RecordRateResult bench_record_rate(const std::shared_ptr<Device>& device, uint64_t record_bytes,
                                   uint32_t count);

// Small records pushed from inside the kernel that made them, one every `gap_ns`: the time from
// the GPU's write (%globaltimer) to a spinning CPU reader's copy.
struct RecordLatencyResult {
  std::vector<double> latency_us;
  double clock_error_us = 0;
};
RecordLatencyResult bench_record_latency(const std::shared_ptr<Device>& device,
                                         uint64_t record_bytes, uint32_t count, uint32_t gap_ns);

// Where a record's GPU time goes: the push, the memcpy, and pieces of a push (an empty kernel,
// a lone system fence, the commit, the payload stores alone, a copy-engine payload with a commit
// kernel), each once per record in graphs of 32: (what, microseconds per record).
std::vector<std::pair<std::string, double>> bench_record_cost(const std::shared_ptr<Device>& device,
                                                              uint64_t record_bytes,
                                                              uint32_t count);

}  // namespace fc::cuda
