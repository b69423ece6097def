// Host prelude: the portable kernel subset as plain C++ (see README.md in this folder).
// Included inside namespace fc::host_kernels by csrc/host/host_kernels.cpp.
//
// Memory orders: the CPU reader and the device thread are both CPU threads, so the C++
// memory model is the whole story. Every access to a shared word (header, ring slots) is an
// atomic (csrc/common/atomic_word.hpp), which keeps the concurrent copy free of data races in
// the formal sense and lets ThreadSanitizer check the protocol (docs/protocol.md).
#define FC_FN static inline
#define FC_GLOBAL
#define FC_CHANNEL  // a channel's header and ring (shared words): plain pointers here
#define FC_CONSTANT
#define FC_LAYOUT_CONST(name, value) inline constexpr unsigned name = value;
#include "kernels/kernel_signature.hpp"

using uint = unsigned int;
// Two consecutive words as one 64-bit value (fc_pair_lo / fc_pair_hi take them apart).
using fc_pair = unsigned long long;

inline void fc_store_relaxed_sys(uint* p, uint v) { fc::atomic_word::store_relaxed(p, v); }
// A ring slot: value (low word) and tag (high word) as one 8-byte atomic store. The reader
// loads the pair with one 8-byte atomic load too.
inline void fc_store_pair_relaxed_sys(uint* p, uint lo, uint hi) {
  fc::atomic_word::store_pair_relaxed(p, lo, hi);
}
inline void fc_fence_release_sys() { fc::atomic_word::fence_release(); }
// After a push's publishing stores: nothing on the host (atomic stores reach the reader without
// a fence; the push path of protocol 1 stays fence-free). Metal fences here (prelude_msl.inc).
inline void fc_fence_publish_sys() {}
inline void fc_store_release_sys(uint* p, uint v) { fc::atomic_word::store_release(p, v); }
// Loads of words the CPU writes while the kernel runs (control blocks, host-to-device rings):
// atomic loads, so the device thread's read of a word the writer thread stores is race-free in
// the C++ model and TSan checks the protocol. Acquire pairs with the writer's release store.
inline uint fc_load_relaxed_sys(const uint* p) { return fc::atomic_word::load_relaxed(p); }
inline uint fc_load_acquire_sys(const uint* p) { return fc::atomic_word::load_acquire(p); }
// Two consecutive words (8-byte aligned) as one single-copy-atomic 8-byte load.
inline fc_pair fc_load_pair_relaxed_sys(const uint* p) {
  return fc::atomic_word::load_pair_relaxed(p);
}
inline fc_pair fc_load_pair_acquire_sys(const uint* p) {
  return fc::atomic_word::load_pair_acquire(p);
}
inline void fc_fence_acquire_sys() { fc::atomic_word::fence_acquire(); }
// True once the host device running this dispatch is being closed: long loops in kernel bodies
// return early so that Device.close() never waits for a long command buffer (host_device.cpp
// then fails it). The flag belongs to the device thread that runs the dispatch.
inline bool fc_cancel_requested() { return fc::host::cancel_requested(); }
// A record's payload word (record_kernels.inc): the CPU reader copies payloads while the device
// thread may be writing them; atomic accesses keep that formally race-free (and TSan-checkable).
inline void fc_store_payload(uint* p, uint v) { fc::atomic_word::store_relaxed(p, v); }
// A device-scope atomic add (the threads of one dispatch counting themselves done); returns the
// value before. Host dispatches run their threads one after another on the device thread.
inline uint fc_atomic_add_device(uint* p, uint v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
// A device fault: the host device catches it, fails the command buffer and faults the device.
[[noreturn]] inline void fc_trap() {
  throw std::runtime_error("device fault: debug_trap kernel executed");
}
