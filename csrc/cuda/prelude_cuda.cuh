// CUDA prelude: the portable kernel subset (csrc/kernels/README.md) as CUDA device code.
// Included inside a namespace by cuda_kernels.cu and cuda_bench.cu, before the layout
// constants and the kernel bodies.
//
// Memory orders. The observer of a channel is a CPU thread reading host-mapped pinned memory
// (csrc/channel/reader.cpp: 8-byte relaxed loads of (value, tag) slots; acquire loads of
// the magic and the closed flag). A GPU-scope order (__threadfence, .gpu) says nothing about
// what a CPU sees, so every primitive below is system scope (.sys), the scope that includes
// host threads (PTX ISA, "Memory Consistency Model"; the CUDA Programming Guide's "Mapped
// Memory": aligned 4-byte stores are single accesses, __threadfence_system orders them for
// the host). The same instructions are used by NCCL (fence.acq_rel.sys, then a relaxed.sys
// store of the step) and MSCCL++ (st.release.sys) for host-visible flags.
#pragma once

#define FC_FN static __device__ __forceinline__
#define FC_GLOBAL
#define FC_CHANNEL  // a channel's header and ring: generic pointers (host-mapped memory)
#define FC_CONSTANT
#define FC_LAYOUT_CONST(name, value) static constexpr unsigned name = value;
#include "kernels/kernel_signature.hpp"

using uint = unsigned int;
// Two consecutive words as one 64-bit value (fc_pair_lo / fc_pair_hi take them apart).
using fc_pair = unsigned long long;

// A word the CPU reads while the kernel runs (write_idx, the header words at
// init). Relaxed at system scope: one naturally aligned 4-byte store that a CPU thread
// observes whole (never torn) and that is not held back in a GPU cache the CPU cannot see;
// it carries no ordering of its own, which comes from the fence / release below. Generic
// addressing because the pointer may be host-mapped or device memory.
FC_FN void fc_store_relaxed_sys(uint* p, uint v) {
  asm volatile("st.relaxed.sys.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}

// A ring slot: value (low word) and tag (high word) in one naturally aligned 8-byte store.
// A scalar .u64 store is one memory access for the host as well (the Programming Guide's
// "Mapped Memory": aligned 8-byte device stores are single accesses); a .v2.u32 vector store
// would not do, PTX models it as two element stores in unspecified order.
FC_FN void fc_store_pair_relaxed_sys(uint* p, uint lo, uint hi) {
  unsigned long long v = (static_cast<unsigned long long>(hi) << 32) | lo;
  asm volatile("st.relaxed.sys.u64 [%0], %1;" ::"l"(p), "l"(v) : "memory");
}

// fence.acq_rel.sys orders every earlier store of this thread before every later one for all
// observers in the system, including CPU threads. The push path needs none (self-validating
// slots); init and close use it, through fc_store_release_sys, so that the magic / closed flag is
// seen after the words they vouch for. (__threadfence_system() compiles to the stronger
// fence.sc.sys; acq_rel is what a release needs, as in NCCL's prims.)
FC_FN void fc_fence_release_sys() { asm volatile("fence.acq_rel.sys;" ::: "memory"); }

// After a push's publishing stores: nothing. st.relaxed.sys stores reach the host while the
// kernel runs without a fence (measured: 1.1 us p50 visibility, benchmarks/RESULTS.md), and a
// system fence would cost ~1 us per push. Metal fences here (prelude_msl.inc).
FC_FN void fc_fence_publish_sys() {}

// Publishing the magic at init and the closed flag (and write_idx at close): a release store at system
// scope. Every earlier store of this thread (the header words) becomes visible to a CPU thread
// before this value does, so the reader's acquire load that sees it also sees them. x86 CPUs
// give the acquire side for free; ARM hosts (Grace) need the acquire load the reader does.
FC_FN void fc_store_release_sys(uint* p, uint v) {
  asm volatile("st.release.sys.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}

// Loads of words the CPU writes while the kernel runs (a control block, a host-to-device ring),
// from host-mapped pinned memory. System scope, so the load is not answered from a GPU cache
// that the CPU's store never reaches (a plain or .gpu load may be served from L1/L2 and spin on
// a stale value forever); generic addressing, as for the stores. Acquire: later loads of this
// thread see everything the CPU stored before its release store of the loaded value (PTX
// "Memory Consistency Model": a release/acquire pattern at .sys scope synchronises with a host
// thread). The CPU side is an ordinary release store (x86 stores are release anyway).
#define FC_CUDA_LOAD_SYS(name, type, instruction, constraint)                       \
  FC_FN type name(const uint* p) {                                                   \
    type v;                                                                          \
    asm volatile(instruction " %0, [%1];" : "=" constraint(v) : "l"(p) : "memory"); \
    return v;                                                                        \
  }
FC_CUDA_LOAD_SYS(fc_load_relaxed_sys, uint, "ld.relaxed.sys.u32", "r")
FC_CUDA_LOAD_SYS(fc_load_acquire_sys, uint, "ld.acquire.sys.u32", "r")
// Two consecutive words (8-byte aligned) as one scalar .u64 load: one access, so the pair is
// seen whole when the CPU stored it with one 8-byte store (a (value, tag) slot).
FC_CUDA_LOAD_SYS(fc_load_pair_relaxed_sys, fc_pair, "ld.relaxed.sys.u64", "l")
FC_CUDA_LOAD_SYS(fc_load_pair_acquire_sys, fc_pair, "ld.acquire.sys.u64", "l")
#undef FC_CUDA_LOAD_SYS
// After relaxed loads: orders them before every later load and store of this thread.
FC_FN void fc_fence_acquire_sys() { asm volatile("fence.acq_rel.sys;" ::: "memory"); }

// A record's payload word: a plain store. The fence before the record's commit orders every
// payload store before the end tag for the CPU (record_kernels.inc), as NCCL orders its data
// before a flag; plain stores keep a warp's 32 words one coalesced transaction.
FC_FN void fc_store_payload(uint* p, uint v) { *p = v; }
// Device-scope atomic add (the threads of one record push counting themselves done).
FC_FN uint fc_atomic_add_device(uint* p, uint v) { return atomicAdd(p, v); }

// A running CUDA kernel cannot be cancelled from the host: long loops never stop early here.
FC_FN bool fc_cancel_requested() { return false; }

// A device fault on purpose (debug_trap): the launch fails with cudaErrorLaunchFailure and the
// context is lost, which the backend reports as a sticky device fault.
FC_FN void fc_trap() { __trap(); }
