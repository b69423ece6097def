// The channel layout as kernel-visible constants for the C++ and CUDA preludes, generated
// from the one table in csrc/channel/layout.hpp. (The Metal backend generates the same names
// as MSL `constant` declarations from the same table: csrc/metal/msl_source.cpp.)
// Included inside a prelude namespace; FC_LAYOUT_CONST is defined by the prelude.
#define FC_KERNEL_LAYOUT_WORD_OF_TABLE(name, index, writer, meaning) \
  FC_LAYOUT_CONST(FC_##name, index)
FC_CHANNEL_HEADER_WORDS(FC_KERNEL_LAYOUT_WORD_OF_TABLE)
#define FC_KERNEL_LAYOUT_CONSTANT(name, constant) FC_LAYOUT_CONST(FC_##name, fc::layout::constant)
FC_KERNEL_CONSTANTS(FC_KERNEL_LAYOUT_CONSTANT)
#undef FC_KERNEL_LAYOUT_CONSTANT
// The control block (csrc/channel/control_layout.hpp).
FC_CONTROL_WORDS(FC_KERNEL_LAYOUT_WORD_OF_TABLE)
#define FC_KERNEL_CONTROL_CONSTANT(name, constant) FC_LAYOUT_CONST(FC_##name, fc::control::constant)
FC_CONTROL_CONSTANTS(FC_KERNEL_CONTROL_CONSTANT)
#undef FC_KERNEL_CONTROL_CONSTANT
#undef FC_KERNEL_LAYOUT_WORD_OF_TABLE
