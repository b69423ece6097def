// FC_KERNEL_BODY(name) for the C++ and CUDA preludes, which define FC_FN, FC_GLOBAL and
// FC_CONSTANT first: a body's parameters are its named buffers and scalars from the kernel
// table (kernel_list.hpp), then the thread index `gid`. The Metal prelude declares the same
// parameters from MSL text that msl_source.cpp generates from the same table, since MSL source
// cannot include project headers.
#include "kernels/kernel_list.hpp"

#define FC_BODY_PARAM(kind, slot, name) FC_PP_CAT(FC_BODY_PARAM_, FC_BASE_##kind)(name)
#define FC_BODY_PARAM_BUF(name) [[maybe_unused]] FC_GLOBAL uint* name,
// A channel's header and ring are FC_CHANNEL (on Metal `volatile coherent(system) device`: the
// CPU reads them while the kernel runs); its cursor is producer-private, a plain FC_GLOBAL.
#define FC_BODY_PARAM_CHAN(name)                                                          \
  [[maybe_unused]] FC_CHANNEL uint* name##_header, [[maybe_unused]] FC_CHANNEL uint* name##_data, \
      [[maybe_unused]] FC_GLOBAL uint* name##_cursor,
// A buffer the CPU writes while the kernel runs (a control block): FC_CHANNEL like a channel's
// header, so that on Metal its loads go through a coherent(system) pointer.
#define FC_BODY_PARAM_SHARED(name) [[maybe_unused]] FC_CHANNEL uint* name,
#define FC_BODY_PARAM_U32(name) [[maybe_unused]] uint name,

#define FC_KERNEL_BODY(kname) \
  FC_FN void kname##_body(FC_SIGNATURE_##kname(FC_BODY_PARAM)[[maybe_unused]] uint gid)
