// Assembles the MSL source of the Metal backend (see msl_source.hpp for the parts and order).
#include "metal/msl_source.hpp"

#include <sstream>

#include "channel/layout.hpp"

namespace fc::metal {

std::string msl_prelude() {
  return
#include "metal/prelude_msl.inc"
      ;
}

// The header words as MSL program-scope constants, generated from the one table in
// csrc/channel/layout.hpp, with the names the C++ and CUDA preludes get from
// csrc/kernels/kernel_layout.hpp (FC_<WORD>, FC_MAGIC_VALUE, FC_FLAG_CLOSED). No struct and no
// #include of a project header reaches the MSL (DESIGN.md, "one source, three preludes").
std::string msl_layout_constants() {
  std::ostringstream out;
  out << "// ---- layout: generated from csrc/channel/layout.hpp (FC_CHANNEL_HEADER_WORDS)\n";
#define FC_MSL_LAYOUT_WORD(name, index, writer, meaning) \
  out << "constant uint FC_" #name " = " << static_cast<uint32_t>(index) << "u;  // " meaning "\n";
  FC_CHANNEL_HEADER_WORDS(FC_MSL_LAYOUT_WORD)
#undef FC_MSL_LAYOUT_WORD
  out << "constant uint FC_MAGIC_VALUE = " << layout::kMagic << "u;\n";
  out << "constant uint FC_FLAG_CLOSED = " << layout::kFlagClosed << "u;\n";
  return out.str();
}

// One `kernel void NAME(...)` per kernel: the uniform signature bound to argument indices,
// then a call of the body. `grid` is the number of threads the dispatch asked for; the
// backend dispatches exactly that many with dispatchThreads, and the guard keeps a body from
// running for a thread beyond it should a dispatch ever be rounded up to whole threadgroups.
std::string msl_entry_points() {
  std::ostringstream out;
  out << "// ---- entry points: generated from FC_KERNELS (csrc/kernels/kernel_list.hpp)\n";
  for (int k = 0; k < kKernelCount; ++k) {
    const std::string name = msl_entry_name(static_cast<KernelId>(k));
    out << "kernel void " << name << "(\n";
    for (int i = 0; i < kBufferSlots; ++i) {
      out << "    device uint* b" << i << " [[buffer(" << i << ")]],\n";
    }
    out << "    constant uint* sc [[buffer(" << kScalarsArgumentIndex << ")]],\n"
        << "    constant uint& grid [[buffer(" << kGridArgumentIndex << ")]],\n"
        << "    uint gid [[thread_position_in_grid]]) {\n"
        << "  if (gid >= grid) {\n"
        << "    return;\n"
        << "  }\n"
        << "  " << name << "_body(";
    for (int i = 0; i < kBufferSlots; ++i) out << "b" << i << ", ";
    out << "sc, gid);\n"
        << "}\n";
  }
  return out.str();
}

const std::string& msl_source() {
  static const std::string source = msl_prelude() + "\n" + msl_layout_constants() +
                                    "\n// ---- kernel bodies: csrc/kernels/*.inc (FC_KERNEL_SOURCES)\n" +
                                    embedded_kernel_source() + "\n" + msl_entry_points();
  return source;
}

std::string msl_entry_name(KernelId id) { return kernel_name(id); }

std::vector<std::string> msl_entry_names() {
  std::vector<std::string> names;
  for (int k = 0; k < kKernelCount; ++k) names.push_back(msl_entry_name(static_cast<KernelId>(k)));
  return names;
}

}  // namespace fc::metal
