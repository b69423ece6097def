// A stand-in for <metal_stdlib>, so that the MSL source the Metal backend assembles
// (fc::metal::msl_source()) can be compiled by a host C++ compiler on Linux. Used only by
// tests/test_metal_source.py, which puts a file named `metal_stdlib` that includes this one on
// the include path and runs `c++ -std=c++14 -fsyntax-only` over the exact source.
//
// What that checks: the syntax and the types of everything in the source - the prelude, the
// generated layout constants, every kernel body and every generated entry point (names,
// argument counts, calls, integer types, constness of the scalar block) - as C++14, the
// language MSL is based on. What it cannot check: the Metal-specific qualifiers, which expand
// to nothing or to plain C++ here (`device`, `coherent(system)` beyond its spelling, `kernel`, the [[buffer(n)]]
// and [[thread_position_in_grid]] attributes, the METAL pragma). Those need a Mac
// (docs/metal.md).
//
// Only what the prelude uses is declared, with the signatures the Metal Shading Language
// Specification gives them; a kernel body that calls anything else fails this check, which is
// the point: bodies use the portable subset only (csrc/kernels/README.md).
#pragma once

// Address spaces. With FC_SHIM_ADDRESS_SPACES (clang only), `device` and `constant` become
// distinct address spaces, so a pointer that silently drops its address space (in MSL an
// error: a `device uint*` is not a `uint*`) fails the check as it would on a Mac. Otherwise
// (g++) they have no meaning. `constant` data is read-only in MSL; `const` keeps writes to it a
// compile error here too.
#if defined(FC_SHIM_ADDRESS_SPACES)
#define device __attribute__((address_space(1)))
#define constant const __attribute__((address_space(2)))
#else
#define device
#define constant const
#endif
// The coherence qualifier, `coherent(system)` (or `coherent(device)`): no meaning on the host,
// but the scope must be spelt as MSL spells it (`coherent(sytem)` fails here). The `volatile`
// that goes with it (MLX's `volatile coherent(system) device uint*`, FC_CHANNEL in the prelude)
// is real C++: a channel pointer passed to a plain `device uint*` parameter drops it, which is
// an error here as in MSL.
#define coherent(scope) FC_SHIM_COHERENT_SCOPE_##scope
#define FC_SHIM_COHERENT_SCOPE_system
#define FC_SHIM_COHERENT_SCOPE_device
// A kernel is an ordinary function for the purpose of this check.
#define kernel

using uint = unsigned int;
using ulong = unsigned long long;  // MSL: 64-bit unsigned

namespace metal {

// MSL: enum class mem_flags (Specification, "Threadgroup and SIMD-group synchronization").
enum class mem_flags { mem_none = 0, mem_device = 1, mem_threadgroup = 2, mem_texture = 4 };

// MSL: memory_order (Specification, "Atomic Functions"). The prelude uses only seq_cst, in a
// fence, as MLX's fence.metal does.
enum memory_order {
  memory_order_relaxed,
  memory_order_acquire,
  memory_order_release,
  memory_order_acq_rel,
  memory_order_seq_cst,
};

// MSL: thread_scope. The system scope has no public name (see prelude_msl.inc); the prelude
// builds it by casting, so the enum must accept the cast.
enum thread_scope {
  thread_scope_thread,
  thread_scope_simdgroup,
  thread_scope_threadgroup,
  thread_scope_device,
};

void atomic_thread_fence(mem_flags flags, memory_order order, thread_scope scope);

// MSL: atomic_uint and atomic_fetch_add_explicit (Specification, "Atomic Functions"); the record
// kernels count their threads done with it.
struct atomic_uint {
  uint value;
};
uint atomic_fetch_add_explicit(device atomic_uint* object, uint operand, memory_order order);

}  // namespace metal
