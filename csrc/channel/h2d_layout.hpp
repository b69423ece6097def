// The host-to-device channel ABI (fc.H2DChannel): the one definition of its header words, its
// slots and the device's cursor. The protocol (memory orders per backend) is docs/protocol.md
// "Host-to-device channels"; the kernels are csrc/kernels/h2d_kernels.inc, the writer
// csrc/channel/h2d_channel.cpp.
//
// The CPU is the single producer, one kernel at a time the single consumer:
//
//   header  u32[kHeaderWords]  shared: the table below
//   data    u32[capacity * (record_words + 1)]  shared: slot s = record_words payload words,
//           then a tag word. Item i lives in slot i & (capacity - 1) with tag i + 1 (mod 2^32).
//           A u32 item (record_words 1) is the pair (value, tag): one 8-byte store by the CPU,
//           one 8-byte load by the device.
//   cursor  u32[kCursorWords]  device-local: the consumer's 64-bit position and the geometry
//           init gave it, so a pop reads nothing across the bus but the slot it takes
//
// Self-validating slots, as in the other direction: the device accepts item i only with tag
// i + 1, so a slot the CPU has not written yet (older tag, or init's tag s) reads as "not yet",
// and no fence or count has to travel with the item. The CPU never overwrites an item the
// device has not taken: it reads READ_IDX (the device's count of items taken) and waits or
// raises when the ring is full. So the slot the device expects holds either its item or the
// item one lap older, whose tag differs by the capacity.
//
// Epochs: every h2d_init increments EPOCH, resets the slots and the device's position; the
// writer waits until EPOCH reaches the number of inits encoded before its first item of the
// new epoch, so both sides restart at item 0 together.
#pragma once

#include <cstdint>

//      name              word  who writes it  meaning
#define FC_H2D_HEADER_WORDS(X)                                                                   \
  X(H2D_WRITE_IDX,    0, "writer", "low 32 bits of the items pushed in this epoch (informational)") \
  X(H2D_READ_IDX,     1, "device", "low 32 bits of the items the device took in this epoch: the " \
                                   "writer's room")                                               \
  X(H2D_CAPACITY,     2, "owner",  "ring capacity in items (power of two), set when made")        \
  X(H2D_FLAGS,        3, "writer", "bit 0: closed (no more items in this epoch); init clears it")  \
  X(H2D_EPOCH,        4, "init",   "count of h2d_init runs")                                      \
  X(H2D_MAGIC,        5, "init",   "0x46434832 once init has run")                                \
  X(H2D_ERROR,        6, "device", "0, or why a pop failed: 1 never initialised, 2 pop_wait "     \
                                   "timed out (cleared when reported)")                           \
  X(H2D_ERROR_ITEM,   7, "device", "the item (low 32 bits) the failed pop wanted")                \
  X(H2D_RECORD_WORDS, 8, "owner",  "payload words per item (1: u32 items), set when made")

namespace fc::h2d {

#define FC_DECLARE_H2D_WORD(name, index, writer, meaning) inline constexpr uint32_t k##name = index;
FC_H2D_HEADER_WORDS(FC_DECLARE_H2D_WORD)
#undef FC_DECLARE_H2D_WORD

inline constexpr uint32_t kHeaderWords = 16;  // the table, then padding to 64 bytes
inline constexpr uint32_t kMagic = 0x46434832u;  // "FCH2"
inline constexpr uint32_t kFlagClosed = 1u;
inline constexpr uint32_t kErrorNone = 0u;
inline constexpr uint32_t kErrorNotInitialised = 1u;
inline constexpr uint32_t kErrorTimeout = 2u;
// A pop's outcome (what fc_h2d_try_pop / fc_h2d_pop_wait return to the kernel that calls them).
inline constexpr uint32_t kPopEmpty = 0u;   // nothing there now (try_pop only)
inline constexpr uint32_t kPopGot = 1u;     // an item was taken
inline constexpr uint32_t kPopClosed = 2u;  // closed, and every item was taken
inline constexpr uint32_t kPopFailed = 3u;  // an error (ERROR says which)

// The device's cursor (device-local memory).
inline constexpr uint32_t kCursorTakenLo = 0;  // items taken in this epoch, low word
inline constexpr uint32_t kCursorTakenHi = 1;  // ... high word
inline constexpr uint32_t kCursorMagic = 2;    // kMagic once an init ran on this cursor
inline constexpr uint32_t kCursorCapacity = 3;
inline constexpr uint32_t kCursorRecordWords = 4;
inline constexpr uint32_t kCursorWords = 8;

inline constexpr uint32_t kMaxCapacity = 1u << 16;  // init resets the ring from one thread
inline constexpr uint32_t kMaxRecordWords = 16;     // records of at most 64 bytes

static_assert(kH2D_RECORD_WORDS < kHeaderWords, "every header word is in the header");
static_assert(kCursorRecordWords < kCursorWords, "every cursor word is in the cursor");
static_assert(kMaxCapacity < (1u << 31), "a tag must tell an item from the one a lap older");

}  // namespace fc::h2d

// The constants kernels see (FC_<name>), generated into the C++/CUDA preludes
// (kernels/kernel_layout.hpp) and the MSL (metal/msl_source.cpp) from this list.
#define FC_H2D_CONSTANTS(X)                               \
  X(H2D_MAGIC_VALUE, h2d::kMagic)                         \
  X(H2D_FLAG_CLOSED, h2d::kFlagClosed)                    \
  X(H2D_ERROR_NOT_INITIALISED, h2d::kErrorNotInitialised) \
  X(H2D_ERROR_TIMEOUT, h2d::kErrorTimeout)                \
  X(H2D_POP_EMPTY, h2d::kPopEmpty)                        \
  X(H2D_POP_GOT, h2d::kPopGot)                            \
  X(H2D_POP_CLOSED, h2d::kPopClosed)                      \
  X(H2D_POP_FAILED, h2d::kPopFailed)                      \
  X(H2D_CURSOR_TAKEN_LO, h2d::kCursorTakenLo)             \
  X(H2D_CURSOR_TAKEN_HI, h2d::kCursorTakenHi)             \
  X(H2D_CURSOR_MAGIC, h2d::kCursorMagic)                  \
  X(H2D_CURSOR_CAPACITY, h2d::kCursorCapacity)            \
  X(H2D_CURSOR_RECORD_WORDS, h2d::kCursorRecordWords)
