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
// csrc/kernels/kernel_layout.hpp (FC_<WORD>, FC_MAGIC_VALUE, FC_FLAG_CLOSED, ...). No struct and no
// #include of a project header reaches the MSL (csrc/kernels/README.md: one source, three
// preludes).
std::string msl_layout_constants() {
  std::ostringstream out;
  out << "// ---- layout: generated from csrc/channel/layout.hpp (FC_CHANNEL_HEADER_WORDS)\n";
#define FC_MSL_LAYOUT_WORD(name, index, writer, meaning) \
  out << "constant uint FC_" #name " = " << static_cast<uint32_t>(index) << "u;  // " meaning "\n";
  FC_CHANNEL_HEADER_WORDS(FC_MSL_LAYOUT_WORD)
#define FC_MSL_CONSTANT(name, constant) \
  out << "constant uint FC_" #name " = " << layout::constant << "u;\n";
  FC_KERNEL_CONSTANTS(FC_MSL_CONSTANT)
#undef FC_MSL_CONSTANT
  out << "// control block words: generated from csrc/channel/control_layout.hpp\n";
  FC_CONTROL_WORDS(FC_MSL_LAYOUT_WORD)
#define FC_MSL_CONTROL_CONSTANT(name, constant) \
  out << "constant uint FC_" #name " = " << control::constant << "u;\n";
  FC_CONTROL_CONSTANTS(FC_MSL_CONTROL_CONSTANT)
#undef FC_MSL_CONTROL_CONSTANT
#undef FC_MSL_LAYOUT_WORD
  return out.str();
}

namespace {

// The MSL type of a buffer parameter. A channel's header and ring are read by the CPU while
// the kernel runs: `volatile coherent(system) device uint*` on the entry point itself, as MLX
// declares the words its CPU spins on (kernels/fence.metal), and the same type on the body's
// parameter it is passed to (prelude_msl.inc: FC_CHANNEL). The cursor is producer-private.
constexpr const char* kPlainBuffer = "device uint*";
constexpr const char* kChannelBuffer = "volatile coherent(system) device uint*";

// Calls `emit(declared name, slot, MSL type)` for every buffer a kernel declares (a channel:
// three). A Shared buffer (a control block) is written by the CPU while the kernel runs: the
// kernel reads it through a coherent(system) pointer, as a channel's header.
template <class Emit>
void for_each_buffer(const KernelParam& p, Emit&& emit) {
  if (p.kind == ParamKind::Buffer) emit(std::string(p.name), p.slot, kPlainBuffer);
  if (p.kind == ParamKind::Shared) emit(std::string(p.name), p.slot, kChannelBuffer);
  if (p.kind == ParamKind::Channel) {
    emit(std::string(p.name) + "_header", p.slot, kChannelBuffer);
    emit(std::string(p.name) + "_data", p.slot + 1, kChannelBuffer);
    emit(std::string(p.name) + "_cursor", p.slot + 2, kPlainBuffer);
  }
}

}  // namespace

// `#define FC_PARAMS_<kernel> volatile coherent(system) device uint* channel_header, ...,
// uint capacity,` per kernel, from the
// kernel table: the MSL prelude's FC_KERNEL_BODY(name) declares a body with them.
std::string msl_kernel_signatures() {
  std::ostringstream out;
  out << "// ---- kernel signatures: generated from FC_SIGNATURE_* (csrc/kernels/kernel_list.hpp)\n";
  for (int k = 0; k < kKernelCount; ++k) {
    const KernelSignature& sig = kernel_signature(static_cast<KernelId>(k));
    out << "#define FC_PARAMS_" << sig.name;
    for (int i = 0; i < sig.count; ++i) {
      const KernelParam& p = sig.params[i];
      if (p.kind == ParamKind::U32) out << " uint " << p.name << ",";
      for_each_buffer(p, [&](const std::string& name, int, const char* type) {
        out << " " << type << " " << name << ",";
      });
    }
    out << "\n";
  }
  return out.str();
}

// One `kernel void NAME(...)` per kernel: its buffers bound to their slots' argument indices,
// the scalar block and the grid, then a call of the body with the named parameters. `grid` is
// the number of threads the dispatch asked for; the backend dispatches exactly that many with
// dispatchThreads, and the guard keeps a body from running for a thread beyond it should a
// dispatch ever be rounded up to whole threadgroups.
std::string msl_entry_points() {
  std::ostringstream out;
  out << "// ---- entry points: generated from FC_KERNELS (csrc/kernels/kernel_list.hpp)\n";
  for (int k = 0; k < kKernelCount; ++k) {
    const KernelSignature& sig = kernel_signature(static_cast<KernelId>(k));
    std::ostringstream call;
    out << "kernel void " << msl_entry_name(static_cast<KernelId>(k)) << "(\n";
    for (int i = 0; i < sig.count; ++i) {
      const KernelParam& p = sig.params[i];
      if (p.kind == ParamKind::U32) call << "sc[" << p.slot << "], ";
      for_each_buffer(p, [&](const std::string& name, int slot, const char* type) {
        out << "    " << type << " " << name << " [[buffer(" << slot << ")]],\n";
        call << name << ", ";
      });
    }
    out << "    constant uint* sc [[buffer(" << kScalarsArgumentIndex << ")]],\n"
        << "    constant uint& grid [[buffer(" << kGridArgumentIndex << ")]],\n"
        << "    uint gid [[thread_position_in_grid]]) {\n"
        << "  if (gid >= grid) {\n"
        << "    return;\n"
        << "  }\n"
        << "  " << sig.name << "_body(" << call.str() << "gid);\n"
        << "}\n";
  }
  return out.str();
}

const std::string& msl_source() {
  static const std::string source = msl_prelude() + "\n" + msl_layout_constants() + "\n" +
                                    msl_kernel_signatures() +
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
