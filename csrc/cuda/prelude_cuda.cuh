// CUDA prelude: the portable kernel subset (csrc/kernels/README.md) as CUDA device code.
// Included inside a namespace by cuda_kernels.cu and cuda_bench.cu, before the layout
// constants and the kernel bodies.
//
// Memory orders. The observer of a channel is a CPU thread reading host-mapped pinned memory
// (csrc/channel/reader.cpp: acquire load of write_idx, relaxed slot loads, acquire fence,
// relaxed load of write_intent). A GPU-scope order (__threadfence, .gpu) says nothing about
// what a CPU sees, so every primitive below is system scope (.sys), the scope that includes
// host threads (PTX ISA, "Memory Consistency Model"; the CUDA Programming Guide's "Mapped
// Memory": aligned 4-byte stores are single accesses, __threadfence_system orders them for
// the host). The same instructions are used by NCCL (fence.acq_rel.sys, then a relaxed.sys
// store of the step) and MSCCL++ (st.release.sys) for host-visible flags.
#pragma once

#define FC_FN static __device__ __forceinline__
#define FC_GLOBAL
#define FC_CONSTANT
#define FC_LAYOUT_CONST(name, value) static constexpr unsigned name = value;
#include "kernels/kernel_signature.hpp"

using uint = unsigned int;

// A word the CPU reads while the kernel runs (a slot, the write intent, header words at
// init). Relaxed at system scope: one naturally aligned 4-byte store that a CPU thread
// observes whole (never torn) and that is not held back in a GPU cache the CPU cannot see;
// it carries no ordering of its own, which comes from the fence / release below. Generic
// addressing because the pointer may be host-mapped or device memory.
FC_FN void fc_publish_store(uint* p, uint v) {
  asm volatile("st.relaxed.sys.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}

// Between raising write_intent and overwriting slots: fence.acq_rel.sys orders every earlier
// store of this thread (the intent) before every later one (the slots) for all observers in
// the system, including CPU threads. This is the producer half of the reader's step (C): a
// CPU that copied an overwritten slot then sees an intent large enough to discard it.
// (__threadfence_system() compiles to the stronger fence.sc.sys; acq_rel is what the
// protocol needs, as in NCCL's prims.)
FC_FN void fc_release_fence() { asm volatile("fence.acq_rel.sys;" ::: "memory"); }

// Publishing write_idx (and the magic at init, the closed flag): a release store at system
// scope. Every earlier store of this thread (the slots) becomes visible to a CPU thread before
// this value does, so the reader's acquire load of write_idx (step (A)) that sees it also
// sees the slots. x86 CPUs give the acquire side for free; ARM hosts (Grace) need the acquire
// load the reader already does.
FC_FN void fc_release_store(uint* p, uint v) {
  asm volatile("st.release.sys.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}

// A device fault on purpose (debug_trap): the launch fails with cudaErrorLaunchFailure and the
// context is lost, which the backend reports as a sticky device fault.
FC_FN void fc_trap() { __trap(); }
