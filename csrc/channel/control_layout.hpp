// The control block ABI: a few shared u32 words that the CPU writes while a command buffer runs
// and that every decode step given the block reads (fc.ControlBlock; the kernels' side is
// csrc/kernels/control_kernels.inc, the protocol docs/protocol.md "Control block").
//
// The CPU writes CANCEL and STOP_AT with release stores; a step reads both with one 8-byte
// acquire load (they are one naturally aligned word pair) before it samples, so the first step
// that sees a request emits nothing. The device writes GENERATED and STOPPED with relaxed stores
// (progress reports: nothing is published through them).
//
// STOP_AT is an absolute count of tokens generated in the turn (the decode state's word 1), so a
// request is idempotent: the writer computes it once (ControlBlock::stop_after: what the device
// reported in GENERATED plus n) and repeating the same request changes nothing.
#pragma once

#include <cstdint>

//      name       word  who writes it  meaning
#define FC_CONTROL_WORDS(X)                                                                     \
  X(CONTROL_CANCEL,    0, "cpu",    "non-zero: the next decode step stops (stop flag 4) before " \
                                    "sampling")                                                \
  X(CONTROL_STOP_AT,   1, "cpu",    "the step that finds this turn's generated count >= this "   \
                                    "stops (stop flag 5); 0xffffffff: no limit")               \
  X(CONTROL_GENERATED, 2, "device", "tokens generated in this turn, after every step that "     \
                                    "emitted one (relaxed)")                                   \
  X(CONTROL_STOPPED,   3, "device", "the stop flag (4 or 5) a step set because of this block; " \
                                    "0 while none did")

namespace fc::control {

#define FC_DECLARE_CONTROL_WORD(name, index, writer, meaning) \
  inline constexpr uint32_t k##name = index;
FC_CONTROL_WORDS(FC_DECLARE_CONTROL_WORD)
#undef FC_DECLARE_CONTROL_WORD

inline constexpr uint32_t kWords = 4;
inline constexpr uint32_t kNoLimit = 0xffffffffu;
// Stop flag values (python/foundry_channels/lm/stop.py, csrc/kernels/lm_kernels.inc 1..3).
inline constexpr uint32_t kStopCancelled = 4;
inline constexpr uint32_t kStopRequested = 5;

static_assert(kCONTROL_CANCEL % 2 == 0 && kCONTROL_STOP_AT == kCONTROL_CANCEL + 1,
              "cancel and the limit are one naturally aligned word pair: one 8-byte load");
static_assert(kCONTROL_STOPPED + 1 == kWords, "every control word is in the table");

}  // namespace fc::control

// The constants kernels see (FC_<name>), generated into the C++/CUDA preludes
// (kernels/kernel_layout.hpp) and the MSL (metal/msl_source.cpp) from this list.
#define FC_CONTROL_CONSTANTS(X)          \
  X(CONTROL_NO_LIMIT, kNoLimit)          \
  X(STOP_CANCELLED, kStopCancelled)      \
  X(STOP_REQUESTED, kStopRequested)
