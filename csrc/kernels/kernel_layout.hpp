// The shared-word layouts as kernel-visible constants for the C++ and CUDA preludes, generated
// from their one tables: the channel header (csrc/channel/layout.hpp), the control block
// (control_layout.hpp) and the host-to-device channel (h2d_layout.hpp). (The Metal backend
// generates the same names as MSL `constant` declarations from the same tables:
// csrc/metal/msl_source.cpp.)
// Included inside a prelude namespace; FC_LAYOUT_CONST is defined by the prelude.
#define FC_KERNEL_LAYOUT_WORD(name, index, writer, meaning) FC_LAYOUT_CONST(FC_##name, index)
#define FC_KERNEL_LAYOUT_CONSTANT(name, constant) FC_LAYOUT_CONST(FC_##name, fc::constant)
FC_CHANNEL_HEADER_WORDS(FC_KERNEL_LAYOUT_WORD)
FC_KERNEL_CONSTANTS(FC_KERNEL_LAYOUT_CONSTANT)
FC_CONTROL_WORDS(FC_KERNEL_LAYOUT_WORD)
FC_CONTROL_CONSTANTS(FC_KERNEL_LAYOUT_CONSTANT)
FC_H2D_HEADER_WORDS(FC_KERNEL_LAYOUT_WORD)
FC_H2D_CONSTANTS(FC_KERNEL_LAYOUT_CONSTANT)
#undef FC_KERNEL_LAYOUT_WORD
#undef FC_KERNEL_LAYOUT_CONSTANT
