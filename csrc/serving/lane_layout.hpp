// The batched decode's lane layout: the one definition of the words the lane kernels
// (csrc/kernels/lm_lanes_kernels.inc) and the serving engine (engine.cpp, the demultiplexer)
// share. Kernels see them as FC_<NAME> (generated through FC_KERNEL_CONSTANTS in
// channel/layout.hpp, like the channel's constants); Python gets them from
// `_core.lane_layout()`.
//
// A lane is one request's decode state on the device. Lane records (u32 words), one per lane
// in the `lanes` buffer (device-local) and one per lane in the `staging` buffer (shared: the CPU
// writes a request there before the admit dispatch copies it to the lane):
//   [LANE_ACTIVE]        1 while the lane decodes, 0 once it stopped (the step that stops it
//                        pushes the lane's end item)
//   [LANE_POSITION]      tokens in the lane's history (staging: the prompt length)
//   [LANE_MADE]          tokens generated so far
//   [LANE_SEED]          the sampler's seed
//   [LANE_MAX_TOKENS]    the step that generates this many tokens stops the lane (>= 1)
//   [LANE_GENERATION]    the request's number (never 0): a cancel word naming it stops it
//   [LANE_FLAGS]         bit 0: push each token's probability (count, total) after it
//   [LANE_EOS]           the token that ends the request (not emitted)
//   [LANE_STOP_COUNT]    stop sequences (0..LANE_MAX_STOPS)
//   [LANE_STOP_LENGTHS + s]   tokens of stop sequence s (1..LANE_MAX_STOP_TOKENS)
//   [LANE_STOP_TOKENS + s * LANE_MAX_STOP_TOKENS + i]   its tokens
// A staging record is LANE_WORDS words of the above, then the prompt (history_capacity words).
//
// Items of the lane channel (one u32 channel for every lane; each lane's items of one step are
// consecutive, reserved together):
//   bits 0..15   ITEM_TOKEN kinds: the token; ITEM_END: the end reason
//   bits 16..27  the lane
//   bits 28..31  the kind: ITEM_TOKEN, ITEM_TOKEN_PROB (followed by two raw words: the token's
//                count in the context the sampler used and that context's total: its
//                probability is count / total), ITEM_END (the lane stopped; nothing follows)
// End reasons: END_EOS, END_MAX_TOKENS, END_HISTORY_FULL, END_CANCELLED, END_STOP_SEQUENCE + s.
//
// Cancel words (`cancel` buffer, shared: the CPU writes them while windows run): word l holds
// the generation of the request on lane l that the CPU cancelled (0: none). A step reads its
// lane's word before sampling (fc_load_relaxed_sys): a word naming the lane's generation stops
// it; a stale one, meant for an earlier request on the lane, names another and is ignored.
//
// The step's counter word (`batch` buffer, device-local): BATCH_COUNTER packs the threads done
// (high 16 bits) and the items reserved (low 16 bits) of the running step; BATCH_BASE + p and
// BATCH_BASE_HI + p hold the channel's 64-bit item count at the start of a step of parity p.
#pragma once

#include <cstdint>

// The table: E(X, kernel name, C++ constant, value), in dependency order. Every constant below
// is declared from it, and the kernel-visible ones (all but the C++-only limits at the end of
// the namespace) reach the kernels through FC_LANE_KERNEL_CONSTANTS.
#define FC_LANE_TABLE(E, X)                                                                   \
  E(X, LANE_ACTIVE, kLaneActive, 0)                                                          \
  E(X, LANE_POSITION, kLanePosition, 1)                                                      \
  E(X, LANE_MADE, kLaneMade, 2)                                                              \
  E(X, LANE_SEED, kLaneSeed, 3)                                                              \
  E(X, LANE_MAX_TOKENS, kLaneMaxTokens, 4)                                                   \
  E(X, LANE_GENERATION, kLaneGeneration, 5)                                                  \
  E(X, LANE_FLAGS, kLaneFlags, 6)                                                            \
  E(X, LANE_EOS, kLaneEos, 7)                                                                \
  E(X, LANE_STOP_COUNT, kLaneStopCount, 8)                                                   \
  E(X, LANE_MAX_STOPS, kLaneMaxStops, 4)                                                     \
  E(X, LANE_MAX_STOP_TOKENS, kLaneMaxStopTokens, 32)                                         \
  E(X, LANE_STOP_LENGTHS, kLaneStopLengths, 9)                                               \
  E(X, LANE_STOP_TOKENS, kLaneStopTokens, kLaneStopLengths + kLaneMaxStops)                  \
  E(X, LANE_RECORD_END, kLaneRecordEnd, kLaneStopTokens + kLaneMaxStops * kLaneMaxStopTokens) \
  E(X, LANE_WORDS, kLaneWords, 144)                                                          \
  E(X, LANE_FLAG_PROBS, kLaneFlagProbs, 1)                                                   \
  E(X, ITEM_LANE_SHIFT, kItemLaneShift, 16)                                                  \
  E(X, ITEM_KIND_SHIFT, kItemKindShift, 28)                                                  \
  E(X, ITEM_TOKEN, kItemToken, 0)                                                            \
  E(X, ITEM_TOKEN_PROB, kItemTokenProb, 1)                                                   \
  E(X, ITEM_END, kItemEnd, 2)                                                                \
  E(X, END_EOS, kEndEos, 1)                                                                  \
  E(X, END_MAX_TOKENS, kEndMaxTokens, 2)                                                     \
  E(X, END_HISTORY_FULL, kEndHistoryFull, 3)                                                 \
  E(X, END_CANCELLED, kEndCancelled, 4)                                                      \
  E(X, END_STOP_SEQUENCE, kEndStopSequence, 8) /* + the stop sequence's index */             \
  E(X, BATCH_COUNTER, kBatchCounter, 0)                                                      \
  E(X, BATCH_BASE, kBatchBase, 1)     /* + parity */                                          \
  E(X, BATCH_BASE_HI, kBatchBaseHi, 3) /* + parity */                                         \
  E(X, BATCH_DONE_SHIFT, kBatchDoneShift, 16)

// The table as FC_KERNEL_CONSTANTS entries, X(kernel name, constant) (channel/layout.hpp).
#define FC_LANE_AS_KERNEL_CONSTANT(X, name, constant, value) X(name, layout::constant)
#define FC_LANE_KERNEL_CONSTANTS(X) FC_LANE_TABLE(FC_LANE_AS_KERNEL_CONSTANT, X)

namespace fc::layout {

#define FC_LANE_DECLARE(X, name, constant, value) inline constexpr uint32_t constant = value;
FC_LANE_TABLE(FC_LANE_DECLARE, _)
#undef FC_LANE_DECLARE

// C++ only.
inline constexpr uint32_t kItemPayloadMask = (1u << kItemLaneShift) - 1u;
inline constexpr uint32_t kItemLaneMask = (1u << (kItemKindShift - kItemLaneShift)) - 1u;
inline constexpr uint32_t kMaxItemsPerLaneStep = 4;  // token, count, total, end
inline constexpr uint32_t kBatchWords = 8;
inline constexpr uint32_t kMaxLanes = kItemLaneMask + 1;  // 4096: the item's lane field
inline constexpr uint32_t kMaxTokenId = kItemPayloadMask;

static_assert(kLaneRecordEnd <= kLaneWords, "every lane word fits the record");
static_assert(kEndStopSequence + kLaneMaxStops <= kItemPayloadMask, "end reasons fit the payload");
// One step reserves at most kMaxItemsPerLaneStep items a lane, counted in the low 16 bits of
// the counter word, and counts its threads done in the high 16 bits.
static_assert(uint64_t{kMaxLanes} * kMaxItemsPerLaneStep < (1u << kBatchDoneShift),
              "a step's items fit the counter's low half");
static_assert(kMaxLanes < (1u << (32 - kBatchDoneShift)), "the threads of a step fit its high half");
static_assert(kBatchBaseHi + 1 < kBatchWords, "the batch words fit the buffer");

}  // namespace fc::layout
