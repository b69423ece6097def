// The Channel<u32> ABI: the one definition of the header words.
//
// A channel is two shared buffers (memory both the device and the CPU see) plus one
// producer-private word:
//
//   header  u32[kHeaderWords]   the table below
//   data    u32[2 * capacity]   the ring: slot s = words [2s, 2s+1] = (value, tag), written as
//                               one naturally aligned 8-byte store; item i lives in slot
//                               i & (capacity - 1) with tag i + 1 (see "Slots" below)
//   cursor  u32[kCursorWords]   the producer's own 64-bit write count ([0] low, [1] high), in
//                               device-local memory where the backend has it, so a push never
//                               reads host memory across the bus (a PCIe read costs ~1 us on
//                               the GPU timeline)
//
// Item indices are 64-bit counts. write_idx (word 0, the plan's v1 ABI) is their low 32 bits;
// the reader uses the full count (words 6-7, one 8-byte store), so how far behind a reader is
// stays exact however many items it missed. Slot tags are the low 32 bits of index + 1.
// Capacity is a power of two so that the slot of an index is a mask.
//
// Epochs: every channel_u32_init increments EPOCH (word 4). A reader remembers the epoch it
// attached in and checks it after every copy, so a re-initialisation under a live reader is
// always reported (ChannelError), never read as new items of the old run.
//
// The full protocol (memory orders per backend, laps, re-init) is docs/protocol.md.
//
// Slots (docs/protocol.md; the NCCL LL / MSCCL++ FIFO design): the value
// and its tag travel in one 8-byte store, so a reader that sees tag i + 1 in slot
// i & (capacity - 1) holds item i's value, whatever else the producer did meanwhile; a newer
// tag means item i was overwritten (dropped), an older one that it is not visible yet. The
// producer needs no fence at all on the push path (a system-scope fence costs ~0.6 us on a
// GPU). channel_u32_init writes tag s into slot s, a tag no item of that slot ever has
// (for capacity >= 2), so a fresh ring reads as "nothing yet".
//
// The table is an X-macro so that the C++ constants, the static_asserts, the MSL source the
// Metal backend assembles at run time and the Python `header_layout()` all come from here.
#pragma once

#include <cstdint>

// The other shared-word tables the kernels see, reachable from here so that every prelude and
// generator that includes this header gets them all.
#include "channel/control_layout.hpp"
#include "serving/lane_layout.hpp"  // the batched decode's lanes: their constants join FC_KERNEL_CONSTANTS

//      name          word  who writes it   meaning
#define FC_CHANNEL_HEADER_WORDS(X)                                                              \
  X(WRITE_IDX,     0, "producer", "monotonic count of items published (release store)")       \
  X(READ_IDX,      1, "reader",   "monotonic count of items consumed or skipped by the CPU")  \
  X(CAPACITY,      2, "init",     "ring capacity in items (power of two)")                    \
  X(FLAGS,         3, "producer", "bit 0: closed (no more items will be pushed); bit 1: slot " \
                                  "protocol 2 (set by init)")                                 \
  X(EPOCH,         4, "init",     "count of channel_u32_init runs (re-init detection)")      \
  X(MAGIC,         5, "init",     "0x46434831 once init has run; anything else: not ready")   \
  X(WRITE_COUNT_LO, 6, "producer", "64-bit count of items published, low word (one 8-byte " \
                                  "store with word 7)")                                       \
  X(WRITE_COUNT_HI, 7, "producer", "64-bit count of items published, high word")

namespace fc::layout {

#define FC_DECLARE_WORD(name, index, writer, meaning) inline constexpr uint32_t k##name = index;
FC_CHANNEL_HEADER_WORDS(FC_DECLARE_WORD)
#undef FC_DECLARE_WORD

inline constexpr uint32_t kHeaderWords = 8;
inline constexpr uint32_t kCursorWords = 4;  // [0..1] 64-bit write count; [2] slot protocol;
                                             // [3] record channels: threads done with a record
inline constexpr uint32_t kSlotWords = 2;    // (value, tag) per ring slot
inline constexpr uint32_t kMagic = 0x46434831u;  // "FCH1"
inline constexpr uint32_t kFlagClosed = 1u;
// Slot protocols (docs/protocol.md). 1: (value, tag) in one 8-byte store, the default. 2: the
// tag is invalidated, then the value and the tag are stored as 32-bit words with fences between,
// for producers whose 8-byte stores the CPU may not see whole (Metal: undocumented). init writes
// the channel's protocol into FLAGS (bit 1 set: protocol 2), where the reader reads it, and into
// the producer's cursor, where every push reads it (never the shared header).
inline constexpr uint32_t kFlagSlotProtocol2 = 2u;
inline constexpr uint32_t kSlotProtocolDefault = 1u;
inline constexpr uint32_t kSlotProtocolTagged32 = 2u;
inline constexpr uint32_t kCursorProtocol = 2;  // cursor word holding the slot protocol
inline constexpr uint32_t kCursorRecordDone = 3;  // cursor word counting a record's threads done
inline constexpr uint32_t kMinCapacity = 1u;
inline constexpr uint32_t kMaxCapacity = 1u << 26;  // 64 Mi items: 512 MiB of 8-byte slots

// The plan's v1 ABI fixes the first four words; everything else extends after word 3.
static_assert(kWRITE_IDX == 0 && kREAD_IDX == 1 && kCAPACITY == 2 && kFLAGS == 3,
              "words 0..3 are the plan's v1 ABI and may not move");
static_assert(kMAGIC > kFLAGS, "extensions go after word 3");
static_assert(kWRITE_COUNT_HI + 1 == kHeaderWords, "every header word is in the table");
static_assert(kWRITE_COUNT_LO % 2 == 0 && kWRITE_COUNT_HI == kWRITE_COUNT_LO + 1,
              "the 64-bit write count is one naturally aligned 8-byte word pair");
static_assert(kHeaderWords * sizeof(uint32_t) == 32, "the header is one 32-byte block");
static_assert(kMaxCapacity <= (1u << 31), "a slot tag must tell a lap from a late item");
static_assert(kCursorProtocol >= 2 && kCursorProtocol < kCursorWords,
              "the protocol word follows the 64-bit count in the cursor");
static_assert((kFlagSlotProtocol2 & kFlagClosed) == 0, "FLAGS bits are distinct");

static_assert(kCursorRecordDone > kCursorProtocol && kCursorRecordDone < kCursorWords,
              "the record counter is the cursor's last word");

constexpr bool is_power_of_two(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

}  // namespace fc::layout

// The other constants kernels see, by their kernel name (FC_<name>) and the constant above:
// the C++/CUDA preludes (kernels/kernel_layout.hpp) and the MSL (metal/msl_source.cpp) are
// generated from this one list.
#define FC_KERNEL_CONSTANTS(X)                   \
  X(MAGIC_VALUE, kMagic)                         \
  X(FLAG_CLOSED, kFlagClosed)                    \
  X(FLAG_SLOT_PROTOCOL2, kFlagSlotProtocol2)     \
  X(CURSOR_PROTOCOL, kCursorProtocol)            \
  X(CURSOR_RECORD_DONE, kCursorRecordDone)      \
  FC_LANE_KERNEL_CONSTANTS(X)
