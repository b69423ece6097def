// CUDA entry points beyond the device interface, for bind_cuda.cpp: pushing from a foreign
// framework's stream (torch) and the benchmark instruments. Declared without CUDA headers so
// the bindings compile everywhere; no_cuda.cpp implements them as "not available" stubs.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "channel/channel.hpp"

namespace fc::cuda {

// The CUDA ordinal of `device`, or -1 when it is not a CUDA device.
int device_ordinal(const Device& device);

// Enqueues on the raw CUDA stream `stream` (a cudaStream_t as an integer; 0 = legacy default)
// a push of `count` u32 words that the GPU reads at device address `source` (word 0, then
// every `stride_words`). Nothing is synchronised or allocated, so it can be recorded inside a
// stream capture (torch.cuda.graph). The caller keeps `source` alive until the push ran and
// orders the channel's pushes (one producer, in stream order). Throws on a failed launch.
void stream_push(ChannelU32& channel, uintptr_t stream, uintptr_t source, uint32_t count,
                 uint32_t stride_words);

// ---- benchmark instruments (benchmarks/bench_decode_cuda.py) ---------------------------

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

}  // namespace fc::cuda
