#include "serving/request_stream.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "channel/reader.hpp"  // WaitResult
#include "device/deadline.hpp"
#include "device/errors.hpp"
#include "device/wake_signal.hpp"

namespace fc {

const char* finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::None: return "";
    case FinishReason::Stop: return "stop";
    case FinishReason::Length: return "length";
    case FinishReason::Cancelled: return "cancelled";
    case FinishReason::Error: return "error";
  }
  return "?";
}

RequestStream::RequestStream(uint64_t id, uint32_t generation, uint32_t max_tokens,
                             bool logprobs)
    : id_(id),
      generation_(generation),
      capacity_(max_tokens),
      logprobs_(logprobs),
      submitted_ns_(steady_now_ns()),
      tokens_(max_tokens),
      logprob_values_(logprobs ? max_tokens : 0) {
  live_.fetch_add(1, std::memory_order_relaxed);
}

RequestStream::~RequestStream() { live_.fetch_sub(1, std::memory_order_relaxed); }

std::atomic<int64_t> RequestStream::live_{0};

void RequestStream::append(uint32_t token, float logprob, int64_t now_ns) {
  received_.store(received_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  if (appended_ >= capacity_) {
    ++overflow_;
    return;
  }
  tokens_[appended_] = token;
  if (logprobs_) logprob_values_[appended_] = logprob;
  if (appended_ == 0 && first_token_ns_.load(std::memory_order_relaxed) == 0) {
    first_token_ns_.store(now_ns, std::memory_order_relaxed);  // published with the token
  }
  ++appended_;
}

bool RequestStream::publish() {
  {
    std::lock_guard lock(mutex_);
    if (cancelled_ || finish_.load(std::memory_order_relaxed) != FinishReason::None) {
      appended_ = published_.load(std::memory_order_relaxed);  // cut: never visible
      return false;
    }
    if (appended_ == published_.load(std::memory_order_relaxed)) return true;
    // Release: the slots (and the first-token time) before the count that makes them readable.
    published_.store(appended_, std::memory_order_release);
  }
  notify_locked_out();
  return true;
}

void RequestStream::finish(FinishReason reason, int stop_index, const std::string& error) {
  {
    std::lock_guard lock(mutex_);
    if (cancelled_ || finish_.load(std::memory_order_relaxed) != FinishReason::None) return;
    published_.store(appended_, std::memory_order_release);
    stop_index_ = stop_index;
    error_ = error;
    finish_.store(reason, std::memory_order_release);
  }
  notify_locked_out();
}

bool RequestStream::cancel(int& lane) {
  {
    std::lock_guard lock(mutex_);
    lane = lane_;
    if (cancelled_ || finish_.load(std::memory_order_relaxed) != FinishReason::None) return false;
    cancelled_ = true;
    finish_.store(FinishReason::Cancelled, std::memory_order_release);
  }
  notify_locked_out();
  wake_signal().notify();  // an awaiting consumer's poller
  return true;
}

bool RequestStream::assign_lane(int lane) {
  std::lock_guard lock(mutex_);
  if (cancelled_ || finish_.load(std::memory_order_relaxed) != FinishReason::None) return false;
  lane_ = lane;
  return true;
}

std::string RequestStream::error_message() const {
  std::lock_guard lock(mutex_);
  return error_;
}

void RequestStream::notify_locked_out() {
  // A consumer about to sleep increments waiters_ under the mutex and re-checks the state
  // under it, so a change made under the mutex before this load is seen either by that check
  // or by this load (both seq_cst): no lost wake-up.
  if (waiters_.load(std::memory_order_seq_cst) != 0) {
    std::lock_guard lock(mutex_);
    cv_.notify_all();
  }
}

size_t RequestStream::take(uint32_t* tokens, float* logprobs, size_t max) {
  const uint32_t end = published_.load(std::memory_order_acquire);
  const uint32_t start = read_.load(std::memory_order_relaxed);
  const size_t n = std::min<size_t>(end - start, max);
  if (n == 0) return 0;
  std::memcpy(tokens, tokens_.data() + start, n * sizeof(uint32_t));
  if (logprobs && logprobs_) std::memcpy(logprobs, logprob_values_.data() + start, n * sizeof(float));
  read_.store(start + static_cast<uint32_t>(n), std::memory_order_relaxed);
  return n;
}

WaitResult RequestStream::wait(double timeout_s, const std::function<bool()>& interrupted) {
  const auto deadline = deadline_after(timeout_s);
  std::unique_lock lock(mutex_);
  for (;;) {
    if (unread() != 0) return WaitResult::Ready;
    if (finish_.load(std::memory_order_acquire) != FinishReason::None) return WaitResult::Closed;
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return WaitResult::Timeout;
    // Sleep in steps of 5 ms at most so that a pending Ctrl-C is noticed.
    const auto step = std::min(deadline, now + std::chrono::milliseconds(5));
    waiters_.fetch_add(1, std::memory_order_seq_cst);
    cv_.wait_until(lock, step, [&] {
      return unread() != 0 || finish_.load(std::memory_order_acquire) != FinishReason::None;
    });
    waiters_.fetch_sub(1, std::memory_order_seq_cst);
    if (interrupted && unread() == 0 && finish_reason() == FinishReason::None) {
      lock.unlock();
      if (interrupted()) throw InterruptedError();
      lock.lock();
    }
  }
}

Pollable::Probe RequestStream::probe(bool, IdlePlan& plan, std::exception_ptr&) {
  if (unread() != 0) return Probe::Ready;
  if (finish_reason() != FinishReason::None) return Probe::Closed;
  plan.action = IdlePlan::Action::Sleep;
  plan.until = std::chrono::steady_clock::now() + std::chrono::milliseconds(50);
  return Probe::Pending;
}

}  // namespace fc
