// ServingEngine: one device, one uploaded model, one decode loop for every request.
//
// Requests are lanes of a batched decode (csrc/kernels/lm_lanes_kernels.inc): a driver thread
// commits windows of `window` steps of lm_lanes_step (recorded once, replayed: on CUDA one graph
// launch each), keeping two in flight so the device never waits for the CPU. New requests join
// at window boundaries (lm_lanes_admit, committed between windows), finished or cancelled ones
// leave there. Every step pushes the lanes' tokens, lane-tagged, into one u32 channel; the driver
// drains it as the device runs and demultiplexes the items into per-request RequestStreams,
// publishing each stream once per drained batch and notifying the process WakeSignal once (the
// poller thread serves every awaited stream). No per-token Python work, no per-request device,
// model upload or thread.
//
// Lossless by construction: a window is committed only once every item of the windows that
// completed before it was drained, and the channel holds the items of two windows (each lane
// pushes at most kMaxItemsPerLaneStep items a step), so nothing is ever overwritten.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "channel/channel.hpp"
#include "device/device.hpp"
#include "serving/request_stream.hpp"

namespace fc {

struct EngineConfig {
  uint32_t lanes = 64;               // requests decoded at once (1..layout::kMaxLanes)
  uint32_t window = 16;              // steps per committed window (even, 2..4096)
  uint32_t history_capacity = 4096;  // tokens of prompt + completion a lane holds
  uint32_t eos = 0;                  // the model's end-of-text token
  uint32_t max_queued = 4096;        // submitted requests waiting for a lane
};

struct SubmitRequest {
  std::vector<uint32_t> prompt;
  uint32_t max_tokens = 0;
  uint32_t seed = 0;
  bool logprobs = false;
  std::vector<std::vector<uint32_t>> stop_sequences;  // device-matched token sequences
};

// The engine's counters (ServingEngine::stats(), Python's Engine.stats()): name, meaning.
#define FC_ENGINE_STATS(X)                                              \
  X(submitted, "requests submitted")                                    \
  X(completed, "requests ended: finished, cancelled or failed")         \
  X(windows, "decode windows committed")                                \
  X(admits, "requests admitted to a lane")                              \
  X(items, "lane channel items demultiplexed")                          \
  X(batches, "batches drained from the lane channel")                   \
  X(active_lanes, "lanes running a request (until its end item is read)") \
  X(queued, "requests waiting for a lane")

struct EngineStats {  // a snapshot
#define FC_ENGINE_STAT_FIELD(name, meaning) uint64_t name = 0;
  FC_ENGINE_STATS(FC_ENGINE_STAT_FIELD)
#undef FC_ENGINE_STAT_FIELD
};

// The live counters: relaxed atomics (statistics; nothing is published through them).
struct EngineCounters {
#define FC_ENGINE_STAT_ATOMIC(name, meaning) std::atomic<uint64_t> name{0};
  FC_ENGINE_STATS(FC_ENGINE_STAT_ATOMIC)
#undef FC_ENGINE_STAT_ATOMIC
  EngineStats snapshot() const {
    EngineStats s;
#define FC_ENGINE_STAT_LOAD(name, meaning) s.name = name.load(std::memory_order_relaxed);
    FC_ENGINE_STATS(FC_ENGINE_STAT_LOAD)
#undef FC_ENGINE_STAT_LOAD
    return s;
  }
  static void add(std::atomic<uint64_t>& counter, uint64_t n = 1) {
    counter.fetch_add(n, std::memory_order_relaxed);
  }
  static void set(std::atomic<uint64_t>& counter, uint64_t v) {
    counter.store(v, std::memory_order_relaxed);
  }
};

class EngineBusyError : public Error {
 public:
  using Error::Error;
};

class ServingEngine {
 public:
  // Uploads the model (`model_words`, lm_kernels.inc's table) and starts the driver thread.
  // Throws std::invalid_argument for a bad configuration.
  ServingEngine(std::shared_ptr<Device> device, const EngineConfig& config,
                const std::vector<uint32_t>& model_words);
  ~ServingEngine();
  ServingEngine(const ServingEngine&) = delete;
  ServingEngine& operator=(const ServingEngine&) = delete;

  // Thread-safe. std::invalid_argument names a bad field; EngineBusyError when max_queued
  // requests already wait; DeviceClosedError once closed (or the device failed).
  std::shared_ptr<RequestStream> submit(SubmitRequest request);
  // Thread-safe, idempotent: the stream ends as Cancelled at once (nothing after this call is
  // published), and the lane's cancel word is written at once: the lane's next step on the
  // device stops it (the windows in flight keep running) and frees it for another request.
  void cancel(RequestStream& stream);
  // Ends every request still running or queued (Cancelled), waits for the windows in flight and
  // joins the driver. Idempotent; the device stays open (its owner closes it).
  void close();
  bool closed() const { return closing_.load(std::memory_order_acquire); }

  const EngineConfig& config() const { return config_; }
  const std::shared_ptr<Device>& device() const { return device_; }
  uint32_t channel_capacity() const { return channel_->capacity(); }

  EngineStats stats() const { return counters_.snapshot(); }

  // ---- one event loop awaiting its streams (serving/loop_notifier.py) --------------------
  // `fd`: an eventfd the caller owns, or -1 (none). Once set_notify_fd(-1) returned, nothing
  // writes to the previous fd any more (the caller may close it).
  void set_notify_fd(int fd);
  // Asks for one write to the notify fd after the next change a stream's reader can see (a
  // batch of tokens published, a stream ended or cancelled). A reader arms, then checks its
  // streams: a change before the arm is seen by the check, a change after it writes the fd.
  void arm_notify();

 private:
  struct Lane {
    std::shared_ptr<RequestStream> stream;  // null when free
    bool touched = false;                   // published at the end of the current batch
  };
  struct Pending {
    std::shared_ptr<RequestStream> stream;
    SubmitRequest request;
    uint32_t generation;
  };

  void upload(const std::vector<uint32_t>& model_words);
  void run();
  void run_loop();
  // Moves queued requests onto free lanes and commits their admits in one command buffer.
  void admit();
  void write_staging(uint32_t lane, const Pending& p);
  // Drains the lane channel once and demultiplexes; returns the items read.
  size_t drain();
  void demux(const uint32_t* items, size_t n);
  void end_lane(uint32_t lane, uint32_t reason);
  void fail_all(FinishReason reason, const std::string& message);
  // After a change a reader can see: writes the notify fd if armed (and disarms).
  void notify_loop();

  std::shared_ptr<Device> device_;
  EngineConfig config_;
  std::shared_ptr<Queue> queue_;
  std::shared_ptr<Buffer> model_, lanes_buf_, history_, staging_, batch_;
  std::shared_ptr<Buffer> cancel_;  // shared: the cancel words, written by cancel() at any time
  std::shared_ptr<ChannelU32> channel_;
  std::shared_ptr<ChannelU32Reader> reader_;
  std::shared_ptr<Window> window_;

  // driver-thread state
  std::vector<Lane> lanes_;
  std::vector<uint32_t> free_lanes_;
  std::vector<uint32_t> items_;
  std::vector<uint32_t> touched_;
  uint32_t active_lanes_ = 0;
  int pending_words_ = 0;  // raw words still to come for `pending_lane_` (a probability pair)
  uint32_t pending_lane_ = 0;
  uint32_t pending_token_ = 0;
  uint32_t pending_count_ = 0;
  std::deque<std::shared_ptr<CommandBuffer>> in_flight_;

  // shared with submitters (mutex_)
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Pending> queue_requests_;
  std::vector<Pending> admitting_;
  bool stopping_ = false;
  std::string failure_;
  uint32_t next_generation_ = 1;
  uint64_t next_id_ = 1;

  // The notify fd (notify_mutex_). A mutex, not atomics: taken once per published batch, and
  // it orders "publish, then look at the arm" against "arm, then look at the streams" (either
  // the driver's lock comes after the reader's arm and it writes, or the publish happened
  // before the reader's lock and its check sees it).
  std::mutex notify_mutex_;
  int notify_fd_ = -1;
  bool notify_armed_ = false;

  std::atomic<bool> closing_{false};
  EngineCounters counters_;
  std::thread driver_;
};

}  // namespace fc
