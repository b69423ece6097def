// Every kernel the backends look up, by name, in one list. Each backend turns the list into
// its own entry points (host: a function table, CUDA: __global__ wrappers, Metal: `kernel`
// functions in the assembled MSL), so adding a kernel is: write its body once in a *.inc
// file under csrc/kernels/ and add its name here.
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
  X(decode_collect_u32)

// The uniform kernel signature: eight buffer slots, eight u32 scalars, the thread index.
// One signature keeps the entry-point generators trivial on all three backends.
#define FC_KERNEL_BUFFER_SLOTS 8
#define FC_KERNEL_SCALAR_SLOTS 8

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
// Returns kKernelCount when the name is unknown.
KernelId kernel_by_name(const char* name);

}  // namespace fc
