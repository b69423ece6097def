// RequestStream: one request's tokens on their way from the serving engine's demultiplexer (the
// engine's driver thread, the single producer) to whoever consumes the request (the single
// consumer: a Python iterator, an awaited stream armed with the process's poller).
//
// The tokens live in arrays sized for the request's max_tokens when it is submitted, so the
// producer never allocates: it writes token i into slot i, then publishes the count. Memory
// orders: the producer's release store of `published_` after the slot stores, and the consumer's
// acquire load before reading the slots, make every published slot visible; the consumer's
// position `read_` is an atomic only because the poller thread looks at it too (relaxed: it
// only decides whether to wake the consumer, who re-checks). State changes that must not race
// each other - publishing, finishing, cancelling - take the stream's mutex, so that a cancel
// cuts the stream at one point: nothing published after cancel() returned, ever.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "channel/pollable.hpp"

namespace fc {

enum class WaitResult;  // channel/reader.hpp

enum class FinishReason : uint8_t {
  None = 0,   // still running
  Stop,       // EOS or a stop sequence (stop_index() says which: -1 for EOS)
  Length,     // max_tokens (or the engine's history capacity)
  Cancelled,  // cancel(), or the engine closed while the request ran
  Error,      // the device failed (error_message())
};
const char* finish_reason_name(FinishReason reason);

class RequestStream final : public Pollable {
 public:
  // `generation`: the engine's number of the request (never 0), which a lane cancel names.
  RequestStream(uint64_t id, uint32_t generation, uint32_t max_tokens, bool logprobs);
  ~RequestStream() override;
  // RequestStreams alive in the process (tests: memory stays flat over many requests).
  static int64_t live() { return live_.load(std::memory_order_relaxed); }

  uint64_t id() const { return id_; }
  uint32_t generation() const { return generation_; }
  uint32_t max_tokens() const { return capacity_; }
  bool logprobs() const { return logprobs_; }

  // ---- producer (the engine's driver thread) ---------------------------------------------
  // Appends one token (not visible until publish()); `logprob` is ignored without logprobs.
  // Tokens beyond max_tokens are counted in overflow() and dropped (the device never sends
  // them: a lane stops at its max_tokens).
  void append(uint32_t token, float logprob, int64_t now_ns);
  // Makes the appended tokens visible and wakes a blocked consumer; false (and the appended
  // tokens discarded) once the stream was cancelled or finished.
  bool publish();
  // Publishes what was appended, then ends the stream (no-op if it already ended).
  void finish(FinishReason reason, int stop_index = -1, const std::string& error = {});

  // ---- any thread -------------------------------------------------------------------------
  // Ends the stream as Cancelled at once: what was published before stays readable, nothing
  // after. True if it was still running. `lane` receives the lane it runs on (-1: none yet).
  bool cancel(int& lane);
  // The driver admits the request to `lane` unless it was cancelled first (then false).
  bool assign_lane(int lane);
  FinishReason finish_reason() const { return finish_.load(std::memory_order_acquire); }
  int stop_index() const { return stop_index_; }  // valid once finished
  std::string error_message() const;
  uint32_t published() const { return published_.load(std::memory_order_acquire); }
  int64_t submitted_ns() const { return submitted_ns_; }
  int64_t first_token_ns() const { return first_token_ns_.load(std::memory_order_acquire); }
  uint64_t overflow() const { return overflow_; }
  // Tokens the device sent for this request, published or not (after a cancel, the ones the
  // device made before it saw the cancel are received but never published).
  uint32_t received() const { return received_.load(std::memory_order_relaxed); }

  // ---- consumer ---------------------------------------------------------------------------
  // Copies up to `max` unread tokens (and their log-probabilities, when `logprobs` is given
  // and the request asked for them) and returns how many. Never blocks.
  size_t take(uint32_t* tokens, float* logprobs, size_t max);
  size_t unread() const {
    return published_.load(std::memory_order_acquire) - read_.load(std::memory_order_relaxed);
  }
  // Ended and every published token taken.
  bool exhausted() const {
    return finish_reason() != FinishReason::None && unread() == 0;
  }
  // Blocks until a token is unread (Ready), the stream is exhausted (Closed) or the timeout
  // passes (Timeout; < 0 waits forever). `interrupted` is polled every few milliseconds; when
  // it returns true the wait throws InterruptedError.
  WaitResult wait(double timeout_s, const std::function<bool()>& interrupted = {});
  // The poller's check: Ready / Closed as wait(); Pending otherwise, with a long sleep planned:
  // the producer notifies the process WakeSignal after every batch it publishes.
  Probe probe(bool first, IdlePlan& plan, std::exception_ptr& error) override;

 private:
  void notify_locked_out();  // wakes a blocked consumer (call without the mutex)

  const uint64_t id_;
  const uint32_t generation_;
  const uint32_t capacity_;
  const bool logprobs_;
  const int64_t submitted_ns_;
  std::vector<uint32_t> tokens_;
  std::vector<float> logprob_values_;
  static std::atomic<int64_t> live_;
  // producer-only (received_: read by anyone, relaxed: a statistic)
  uint32_t appended_ = 0;
  std::atomic<uint32_t> received_{0};
  uint64_t overflow_ = 0;
  // shared
  std::atomic<uint32_t> published_{0};
  std::atomic<uint32_t> read_{0};
  std::atomic<FinishReason> finish_{FinishReason::None};
  std::atomic<int64_t> first_token_ns_{0};
  std::atomic<uint32_t> waiters_{0};
  mutable std::mutex mutex_;  // publish / finish / cancel / assign_lane; the consumer's sleep
  std::condition_variable cv_;
  bool cancelled_ = false;
  int lane_ = -1;
  int stop_index_ = -1;
  std::string error_;
};

}  // namespace fc
