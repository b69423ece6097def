// Host prelude: the portable kernel subset as plain C++ (see README.md in this folder).
// Included inside namespace fc::host_kernels by csrc/host/host_kernels.cpp, after <atomic>.
//
// Memory orders: the CPU reader and the device thread are both CPU threads, so the C++
// memory model is the whole story. Every access to a shared word (header, ring slots) is an
// atomic (std::atomic_ref), which keeps the concurrent copy free of data races in the
// formal sense and lets ThreadSanitizer check the protocol.
#define FC_FN static inline
#define FC_GLOBAL
#define FC_CONSTANT
#define FC_LAYOUT_CONST(name, value) inline constexpr unsigned name = value;
#include "kernels/kernel_signature.hpp"

using uint = unsigned int;

inline void fc_publish_store(uint* p, uint v) {
  std::atomic_ref<uint>(*p).store(v, std::memory_order_relaxed);
}
// A ring slot: value (low word) and tag (high word) as one 8-byte atomic (little-endian: the
// value is word 0 of the slot). The reader loads the pair with one 8-byte atomic too.
inline void fc_publish_pair(uint* p, uint lo, uint hi) {
  std::atomic_ref<unsigned long long>(*reinterpret_cast<unsigned long long*>(p))
      .store((static_cast<unsigned long long>(hi) << 32) | lo, std::memory_order_relaxed);
}
inline void fc_release_fence() { std::atomic_thread_fence(std::memory_order_release); }
inline void fc_release_store(uint* p, uint v) {
  std::atomic_ref<uint>(*p).store(v, std::memory_order_release);
}
// A device fault: the host device catches it, fails the command buffer and faults the device.
[[noreturn]] inline void fc_trap() {
  throw std::runtime_error("device fault: debug_trap kernel executed");
}
