// Every kernel, with its named buffers and scalars, in one table. Everything that passes values
// to a kernel is generated from it:
//   - the kernel bodies' parameters (kernel_signature.hpp: `header[...]`, not `b0[...]`),
//   - the host, CUDA and MSL entry points (host_kernels.cpp, cuda_kernels.cu, msl_source.cpp),
//   - the typed C++ argument structs and their encoders (kernel_args.hpp),
//   - the run-time signatures behind Python's `CommandBuffer.dispatch(name, grid, **args)` and
//     `fc.kernel_signature(name)`.
// Adding a kernel: write its body once in a *.inc file under csrc/kernels/ and add two lines
// here (its name in FC_KERNELS and its FC_SIGNATURE_<name>).
//
// What the hardware receives does not change: a dispatch still carries kBufferSlots buffer
// slots and kScalarSlots u32 scalars (Dispatch in device.hpp); the table only names them. Each
// parameter is P(kind, slot, name):
//   BUF / BUF_OPT    a device buffer in buffer slot `slot` (required / may be absent)
//   CHAN / CHAN_OPT  a channel's three buffers (header, data, producer cursor) in slots
//                    slot .. slot + 2, one named group wherever a kernel takes a channel;
//                    the body sees them as name_header, name_data, name_cursor
//   SHARED / SHARED_OPT  a shared buffer the CPU writes while the kernel runs (a control
//                    block, fc.ControlBlock): on Metal declared like a channel's header
//                    (FC_CHANNEL, `volatile coherent(system) device`), elsewhere a plain
//                    pointer; read it with fc_load_*_sys. The buffer must be 'shared' storage.
//   U32 / U32_OPT    a u32 scalar in scalar slot `slot` (required / defaults to 0)
#pragma once

#define FC_KERNELS(X)          \
  X(channel_u32_init)          \
  X(channel_u32_push)          \
  X(channel_u32_push_sequence) \
  X(channel_u32_close)         \
  X(counter_u32)               \
  X(lm_prefill)                \
  X(lm_decode_step)            \
  X(lm_rollback)               \
  X(buffer_copy_u32)           \
  X(debug_trap)                \
  X(decode_collect_u32)        \
  X(bytes_push)                \
  X(detok_push)                \
  X(record_init)               \
  X(record_push)               \
  X(fill_pattern_u32)          \
  X(denoise_init)              \
  X(denoise_step)               \
  X(lm_lanes_admit)             \
  X(lm_lanes_step)

// ---- signatures (the meaning of each parameter is documented at the kernel's body) ----------
#define FC_SIGNATURE_channel_u32_init(P) \
  P(CHAN, 0, channel) P(U32, 0, capacity) P(U32_OPT, 1, slot_protocol)
#define FC_SIGNATURE_channel_u32_push(P)                                                    \
  P(CHAN, 0, channel) P(BUF_OPT, 3, source) P(BUF_OPT, 4, stop_flag) P(U32, 0, capacity)    \
  P(U32_OPT, 1, value) P(U32_OPT, 2, from_source) P(U32_OPT, 3, count) P(U32_OPT, 4, stride) \
  P(U32_OPT, 5, offset) P(U32_OPT, 6, predicated)
#define FC_SIGNATURE_channel_u32_push_sequence(P) \
  P(CHAN, 0, channel) P(U32, 0, capacity) P(U32, 1, start) P(U32, 2, count)
#define FC_SIGNATURE_channel_u32_close(P) P(CHAN, 0, channel)
#define FC_SIGNATURE_counter_u32(P) \
  P(BUF, 0, state) P(BUF, 1, out) P(U32, 0, multiplier) P(U32, 1, addend)
#define FC_SIGNATURE_lm_prefill(P)                                      \
  P(BUF, 0, state) P(BUF, 1, history) P(BUF, 2, prompt) P(BUF, 3, stop) \
  P(U32, 0, prompt_length) P(U32, 1, history_capacity)
#define FC_SIGNATURE_lm_decode_step(P)                                                       \
  P(BUF, 0, model) P(BUF, 1, state) P(BUF, 2, history) P(BUF, 3, out) P(BUF, 4, stop)        \
  P(CHAN_OPT, 5, stream) P(SHARED_OPT, 8, control) P(U32, 0, seed) P(U32, 1, eos)            \
  P(U32, 2, max_tokens) P(U32, 3, history_capacity) P(U32_OPT, 4, overshoot)                 \
  P(U32_OPT, 5, push) P(U32_OPT, 6, stream_capacity) P(U32_OPT, 7, use_control)
#define FC_SIGNATURE_lm_rollback(P) \
  P(BUF, 0, state) P(BUF, 1, history) P(BUF, 2, stop) P(U32, 0, history_capacity)
#define FC_SIGNATURE_buffer_copy_u32(P) P(BUF, 0, source) P(BUF, 1, destination) P(U32, 0, words)
#define FC_SIGNATURE_debug_trap(P)
#define FC_SIGNATURE_decode_collect_u32(P)                                   \
  P(BUF, 0, source) P(BUF, 1, list) P(BUF, 2, count) P(BUF_OPT, 3, stop)     \
  P(U32, 0, list_capacity) P(U32_OPT, 1, predicated)
#define FC_SIGNATURE_bytes_push(P)                                                        \
  P(CHAN, 0, channel) P(BUF, 3, source) P(BUF_OPT, 4, stop_flag) P(U32, 0, capacity)      \
  P(U32_OPT, 1, offset) P(U32, 2, length) P(U32_OPT, 3, predicated)
#define FC_SIGNATURE_fill_pattern_u32(P) P(BUF, 0, out) P(U32, 0, seed) P(U32, 1, words)
#define FC_SIGNATURE_record_init(P) P(CHAN, 0, channel) P(U32, 0, capacity)
#define FC_SIGNATURE_record_push(P)                                                          \
  P(CHAN, 0, channel) P(BUF, 3, source) P(BUF_OPT, 4, stop_flag) P(U32, 0, capacity)          \
  P(U32, 1, record_words) P(U32, 2, stride) P(U32_OPT, 3, source_offset)                     \
  P(U32_OPT, 4, predicated) P(U32, 5, threads)
#define FC_SIGNATURE_detok_push(P)                                                        \
  P(CHAN, 0, channel) P(BUF, 3, vocab) P(BUF, 4, tokens) P(BUF_OPT, 5, stop_flag)         \
  P(U32, 0, capacity) P(U32_OPT, 1, predicated) P(U32_OPT, 2, index)
#define FC_SIGNATURE_denoise_init(P) P(BUF, 0, image) P(U32, 0, seed) P(U32, 1, words)
#define FC_SIGNATURE_denoise_step(P)                                                         \
  P(BUF, 0, image) P(CHAN_OPT, 1, preview) P(U32, 0, seed) P(U32, 1, step) P(U32, 2, steps)   \
  P(U32, 3, width) P(U32, 4, words) P(U32_OPT, 5, capacity) P(U32_OPT, 6, stride)            \
  P(U32, 7, threads)
#define FC_SIGNATURE_lm_lanes_admit(P)                                       \
  P(BUF, 0, lanes) P(BUF, 1, history) P(BUF, 2, staging) P(U32, 0, lane)    \
  P(U32, 1, history_capacity) P(U32, 2, threads)
#define FC_SIGNATURE_lm_lanes_step(P)                                                        \
  P(BUF, 0, model) P(BUF, 1, lanes) P(BUF, 2, history) P(BUF, 3, batch) P(CHAN, 4, stream)   \
  P(SHARED, 7, cancel) P(U32, 0, lane_count) P(U32, 1, history_capacity) P(U32, 2, stream_capacity)              \
  P(U32, 3, parity)

// The uniform dispatch the backends receive: twelve buffer slots, eight u32 scalars.
#define FC_KERNEL_BUFFER_SLOTS 12
#define FC_KERNEL_SCALAR_SLOTS 8

// ---- generators shared by the backends -------------------------------------------------------
#define FC_PP_CAT(a, b) FC_PP_CAT_(a, b)
#define FC_PP_CAT_(a, b) a##b
// The base kind of a parameter kind (optional or not is the same to the code that passes it).
#define FC_BASE_BUF BUF
#define FC_BASE_BUF_OPT BUF
#define FC_BASE_CHAN CHAN
#define FC_BASE_CHAN_OPT CHAN
#define FC_BASE_SHARED SHARED
#define FC_BASE_SHARED_OPT SHARED
#define FC_BASE_U32 U32
#define FC_BASE_U32_OPT U32

// The arguments of a call of `kname`_body from an entry point: the backend defines
// FC_SLOT_BUFFER(i) and FC_SLOT_SCALAR(i), how its entry point reads buffer slot i and scalar i.
#define FC_BODY_ARGS(kname) FC_SIGNATURE_##kname(FC_BODY_ARG)
#define FC_BODY_ARG(kind, slot, name) FC_PP_CAT(FC_BODY_ARG_, FC_BASE_##kind)(slot)
#define FC_BODY_ARG_BUF(i) FC_SLOT_BUFFER(i),
#define FC_BODY_ARG_CHAN(i) FC_SLOT_BUFFER(i), FC_SLOT_BUFFER(i + 1), FC_SLOT_BUFFER(i + 2),
#define FC_BODY_ARG_SHARED(i) FC_SLOT_BUFFER(i),
#define FC_BODY_ARG_U32(i) FC_SLOT_SCALAR(i),

#include <cstdint>

namespace fc {

enum class KernelId : int {
#define FC_KERNEL_ENUM(name) name,
  FC_KERNELS(FC_KERNEL_ENUM)
#undef FC_KERNEL_ENUM
  count_
};

inline constexpr int kKernelCount = static_cast<int>(KernelId::count_);
inline constexpr int kBufferSlots = FC_KERNEL_BUFFER_SLOTS;
inline constexpr int kScalarSlots = FC_KERNEL_SCALAR_SLOTS;

const char* kernel_name(KernelId id);
// Returns KernelId::count_ when the name is unknown.
KernelId kernel_by_name(const char* name);

// A kernel's parameters at run time (Python's dispatch, the MSL entry-point generator).
enum class ParamKind { Buffer, Channel, Shared, U32 };
struct KernelParam {
  const char* name;
  ParamKind kind;
  int slot;       // first buffer slot (Buffer, Shared; Channel: three slots) or scalar slot (U32)
  bool optional;  // a buffer may be absent, a scalar defaults to 0
};
struct KernelSignature {
  const char* name;
  const KernelParam* params;
  int count;
};
const KernelSignature& kernel_signature(KernelId id);

}  // namespace fc
