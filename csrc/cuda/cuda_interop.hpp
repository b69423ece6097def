// CUDA entry points beyond the device interface, for bind_cuda.cpp: pushing from a foreign
// framework's stream (torch). Declared without CUDA headers so the bindings compile
// everywhere; no_cuda.cpp implements them as "not available" stubs. (The benchmark
// instruments live in benchmarks/native/, outside the product.)
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "channel/channel.hpp"
#include "channel/record_channel.hpp"

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

// The same for a record channel: one record of record_bytes read at device address `source`
// (contiguous), pushed with record_push on `stream`.
void stream_push_record(RecordChannel& channel, uintptr_t stream, uintptr_t source);

}  // namespace fc::cuda
