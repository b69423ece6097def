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

namespace fc::layout {

inline constexpr uint32_t kLaneActive = 0;
inline constexpr uint32_t kLanePosition = 1;
inline constexpr uint32_t kLaneMade = 2;
inline constexpr uint32_t kLaneSeed = 3;
inline constexpr uint32_t kLaneMaxTokens = 4;
inline constexpr uint32_t kLaneGeneration = 5;
inline constexpr uint32_t kLaneFlags = 6;
inline constexpr uint32_t kLaneEos = 7;
inline constexpr uint32_t kLaneStopCount = 8;
inline constexpr uint32_t kLaneMaxStops = 4;
inline constexpr uint32_t kLaneMaxStopTokens = 32;
inline constexpr uint32_t kLaneStopLengths = 9;
inline constexpr uint32_t kLaneStopTokens = kLaneStopLengths + kLaneMaxStops;
inline constexpr uint32_t kLaneRecordEnd = kLaneStopTokens + kLaneMaxStops * kLaneMaxStopTokens;
inline constexpr uint32_t kLaneWords = 144;
inline constexpr uint32_t kLaneFlagProbs = 1;

inline constexpr uint32_t kItemLaneShift = 16;
inline constexpr uint32_t kItemKindShift = 28;
inline constexpr uint32_t kItemPayloadMask = 0xffffu;
inline constexpr uint32_t kItemLaneMask = 0xfffu;
inline constexpr uint32_t kItemToken = 0;
inline constexpr uint32_t kItemTokenProb = 1;
inline constexpr uint32_t kItemEnd = 2;
inline constexpr uint32_t kMaxItemsPerLaneStep = 4;  // token, count, total, end

inline constexpr uint32_t kEndEos = 1;
inline constexpr uint32_t kEndMaxTokens = 2;
inline constexpr uint32_t kEndHistoryFull = 3;
inline constexpr uint32_t kEndCancelled = 4;
inline constexpr uint32_t kEndStopSequence = 8;  // + the stop sequence's index

inline constexpr uint32_t kBatchCounter = 0;
inline constexpr uint32_t kBatchBase = 1;    // + parity
inline constexpr uint32_t kBatchBaseHi = 3;  // + parity
inline constexpr uint32_t kBatchWords = 8;
inline constexpr uint32_t kBatchDoneShift = 16;

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

// The constants above as kernels see them (FC_<name>), appended to FC_KERNEL_CONSTANTS.
#define FC_LANE_KERNEL_CONSTANTS(X)                \
  X(LANE_ACTIVE, kLaneActive)                      \
  X(LANE_POSITION, kLanePosition)                  \
  X(LANE_MADE, kLaneMade)                          \
  X(LANE_SEED, kLaneSeed)                          \
  X(LANE_MAX_TOKENS, kLaneMaxTokens)               \
  X(LANE_GENERATION, kLaneGeneration)              \
  X(LANE_FLAGS, kLaneFlags)                        \
  X(LANE_EOS, kLaneEos)                            \
  X(LANE_STOP_COUNT, kLaneStopCount)               \
  X(LANE_MAX_STOPS, kLaneMaxStops)                 \
  X(LANE_MAX_STOP_TOKENS, kLaneMaxStopTokens)      \
  X(LANE_STOP_LENGTHS, kLaneStopLengths)           \
  X(LANE_STOP_TOKENS, kLaneStopTokens)             \
  X(LANE_RECORD_END, kLaneRecordEnd)               \
  X(LANE_WORDS, kLaneWords)                        \
  X(LANE_FLAG_PROBS, kLaneFlagProbs)               \
  X(ITEM_LANE_SHIFT, kItemLaneShift)               \
  X(ITEM_KIND_SHIFT, kItemKindShift)               \
  X(ITEM_TOKEN, kItemToken)                        \
  X(ITEM_TOKEN_PROB, kItemTokenProb)               \
  X(ITEM_END, kItemEnd)                            \
  X(END_EOS, kEndEos)                              \
  X(END_MAX_TOKENS, kEndMaxTokens)                 \
  X(END_HISTORY_FULL, kEndHistoryFull)             \
  X(END_CANCELLED, kEndCancelled)                  \
  X(END_STOP_SEQUENCE, kEndStopSequence)           \
  X(BATCH_COUNTER, kBatchCounter)                  \
  X(BATCH_BASE, kBatchBase)                        \
  X(BATCH_BASE_HI, kBatchBaseHi)                   \
  X(BATCH_DONE_SHIFT, kBatchDoneShift)
