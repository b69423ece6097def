// The uniform kernel-body signature (eight buffers, the scalar block, the thread index) for the
// C++ and CUDA preludes, which define FC_FN, FC_GLOBAL and FC_CONSTANT first. The Metal
// prelude spells the same signature in MSL text (csrc/metal/prelude_msl.inc), since MSL
// source cannot include project headers.
#define FC_KERNEL_BODY(name)                                                                 \
  FC_FN void name##_body(                                                                    \
      [[maybe_unused]] FC_GLOBAL uint* b0, [[maybe_unused]] FC_GLOBAL uint* b1,              \
      [[maybe_unused]] FC_GLOBAL uint* b2, [[maybe_unused]] FC_GLOBAL uint* b3,              \
      [[maybe_unused]] FC_GLOBAL uint* b4, [[maybe_unused]] FC_GLOBAL uint* b5,              \
      [[maybe_unused]] FC_GLOBAL uint* b6, [[maybe_unused]] FC_GLOBAL uint* b7,              \
      [[maybe_unused]] FC_CONSTANT const uint* sc, uint gid)
