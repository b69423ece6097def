// Atomic loads and stores of words in memory the device also writes (channel headers and
// slots), on the CPU. The name of each says its memory order; the scope is always the whole
// system (a CPU access is seen by every agent that is coherent with the CPU's caches).
//
// The compiler's __atomic builtins rather than std::atomic_ref: atomic_ref came to Apple's
// libc++ only with LLVM 19 (Xcode 16.3), and a shared word is plain memory that the device also
// writes, not a std::atomic object. GCC and Clang implement these builtins as the same
// instructions std::atomic uses, and ThreadSanitizer understands them.
#pragma once

#include <cstdint>

namespace fc::atomic_word {

static_assert(__atomic_always_lock_free(sizeof(uint64_t), 0),
              "an 8-byte ring slot must be loaded with one single-copy-atomic access");

inline uint32_t load_relaxed(const uint32_t* p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
inline uint32_t load_acquire(const uint32_t* p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
// Two consecutive words as one 8-byte load (a ring slot, the 64-bit write count); `p` is
// 8-byte aligned. Word p[0] is the low half (every supported CPU is little-endian).
inline uint64_t load_pair_relaxed(const uint32_t* p) {
  return __atomic_load_n(reinterpret_cast<const uint64_t*>(p), __ATOMIC_RELAXED);
}
inline uint64_t load_pair_acquire(const uint32_t* p) {
  return __atomic_load_n(reinterpret_cast<const uint64_t*>(p), __ATOMIC_ACQUIRE);
}
inline void store_relaxed(uint32_t* p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
inline void store_release(uint32_t* p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
inline void store_pair_relaxed(uint32_t* p, uint32_t lo, uint32_t hi) {
  __atomic_store_n(reinterpret_cast<uint64_t*>(p), (uint64_t{hi} << 32) | lo, __ATOMIC_RELAXED);
}
// Replaces *p by `desired` if it still holds `expected` (else loads it into `expected`); the
// winning store is a release, as the plain release stores.
inline bool compare_exchange_release(uint32_t* p, uint32_t& expected, uint32_t desired) {
  return __atomic_compare_exchange_n(p, &expected, desired, false, __ATOMIC_RELEASE,
                                     __ATOMIC_RELAXED);
}
inline void fence_acquire() { __atomic_thread_fence(__ATOMIC_ACQUIRE); }
inline void fence_release() { __atomic_thread_fence(__ATOMIC_RELEASE); }

}  // namespace fc::atomic_word
