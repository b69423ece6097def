// The serving engine's driver (engine.hpp). Threads: submitters and cancellers (any thread,
// under mutex_), and the driver thread, which alone touches the lanes, the reader and the
// command buffers after construction.
#include "serving/engine.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>

#if defined(__linux__)
#include <pthread.h>
#include <unistd.h>
#endif

#include "channel/reader.hpp"
#include "common/atomic_word.hpp"
#include "device/kernel_args.hpp"
#include "device/wake_signal.hpp"
#include "serving/lane_layout.hpp"

namespace fc {

namespace {

constexpr uint32_t kMaxInFlight = 2;       // windows committed ahead: one running, one queued
constexpr double kWaitSliceS = 0.05;       // one reader wait; it also ends at a window's end
constexpr size_t kDrainBatch = 8192;       // items copied out of the ring at a time
constexpr uint32_t kAdmitThreads = 256;    // threads copying a prompt into a lane's history
constexpr double kCloseWaitS = 30.0;       // how long close() waits for the windows in flight

std::string why(const char* field, const std::string& rule) {
  return std::string(field) + ": " + rule;
}

uint32_t channel_capacity_for(const EngineConfig& c) {
  const uint64_t needed = uint64_t{kMaxInFlight} * c.window * c.lanes * layout::kMaxItemsPerLaneStep;
  uint64_t capacity = 1;
  while (capacity < needed) capacity <<= 1;
  if (capacity > layout::kMaxCapacity) {
    throw std::invalid_argument(
        "window: " + std::to_string(c.window) + " steps of " + std::to_string(c.lanes) +
        " lanes need a channel of " + std::to_string(capacity) + " items, more than " +
        std::to_string(layout::kMaxCapacity) + ": use fewer lanes or a smaller window");
  }
  return static_cast<uint32_t>(capacity);
}

void check_config(const EngineConfig& c) {
  if (c.lanes < 1 || c.lanes > layout::kMaxLanes) {
    throw std::invalid_argument(why("lanes", "must be 1.." + std::to_string(layout::kMaxLanes) +
                                                 ", got " + std::to_string(c.lanes)));
  }
  if (c.window < 2 || c.window > 4096 || c.window % 2 != 0) {
    throw std::invalid_argument(why(
        "window", "must be an even number of steps, 2..4096 (the steps alternate between two "
                  "counter words), got " + std::to_string(c.window)));
  }
  if (c.history_capacity < 2 || c.history_capacity > (1u << 24)) {
    throw std::invalid_argument(why("history_capacity", "must be 2..16777216 tokens, got " +
                                                            std::to_string(c.history_capacity)));
  }
  if (c.eos > layout::kMaxTokenId) {
    throw std::invalid_argument(why("eos", "must be a token id 0..65535"));
  }
  if (c.max_queued < 1) throw std::invalid_argument(why("max_queued", "must be at least 1"));
}

FinishReason reason_of(uint32_t end, int& stop_index) {
  stop_index = -1;
  if (end == layout::kEndEos) return FinishReason::Stop;
  if (end == layout::kEndMaxTokens || end == layout::kEndHistoryFull) return FinishReason::Length;
  if (end == layout::kEndCancelled) return FinishReason::Cancelled;
  if (end >= layout::kEndStopSequence && end < layout::kEndStopSequence + layout::kLaneMaxStops) {
    stop_index = static_cast<int>(end - layout::kEndStopSequence);
    return FinishReason::Stop;
  }
  throw std::runtime_error("lane channel: unknown end reason " + std::to_string(end));
}

}  // namespace

ServingEngine::ServingEngine(std::shared_ptr<Device> device, const EngineConfig& config,
                             const std::vector<uint32_t>& model_words)
    : device_(std::move(device)), config_(config) {
  if (!device_) throw std::invalid_argument("device: None");
  check_config(config_);
  if (model_words.size() < 8 || model_words[0] != 0x464c4d31u) {
    throw std::invalid_argument("model: not an n-gram table (lm_kernels.inc: magic FLM1)");
  }
  device_->check_usable("start a serving engine");
  const size_t lanes = config_.lanes;
  const size_t cap = config_.history_capacity;
  queue_ = device_->new_queue();
  lanes_buf_ = device_->new_buffer(lanes * layout::kLaneWords * 4, Storage::Private);
  history_ = device_->new_buffer(lanes * cap * 4, Storage::Private);
  staging_ = device_->new_buffer(lanes * (layout::kLaneWords + cap) * 4, Storage::Shared);
  batch_ = device_->new_buffer(layout::kBatchWords * 4, Storage::Private);
  cancel_ = device_->new_buffer(lanes * 4, Storage::Shared);
  std::memset(cancel_->host_ptr(), 0, lanes * 4);  // generation 0 names no request
  channel_ = std::make_shared<ChannelU32>(device_, channel_capacity_for(config_));
  upload(model_words);
  reader_ = channel_->reader();

  // The window: `window` steps, recorded once and replayed for the engine's whole life.
  auto cb = queue_->command_buffer();
  for (uint32_t i = 0; i < config_.window; ++i) {
    kernel_args::lm_lanes_step a;
    a.model = model_;
    a.lanes = lanes_buf_;
    a.history = history_;
    a.batch = batch_;
    a.stream = channel_->kernel_buffers();
    a.cancel = cancel_;
    a.lane_count = config_.lanes;
    a.history_capacity = config_.history_capacity;
    a.stream_capacity = channel_->capacity();
    a.parity = i & 1u;
    encode(*cb, config_.lanes, a);
  }
  window_ = cb->to_window();

  lanes_.resize(lanes);
  for (size_t i = lanes; i > 0; --i) free_lanes_.push_back(static_cast<uint32_t>(i - 1));
  items_.resize(std::min<size_t>(kDrainBatch, channel_->capacity()));
  touched_.reserve(lanes);
  admitting_.reserve(lanes);
  driver_ = std::thread([this] { run(); });
}

ServingEngine::~ServingEngine() { close(); }

void ServingEngine::upload(const std::vector<uint32_t>& model_words) {
  const size_t bytes = model_words.size() * 4;
  auto staging = device_->new_buffer(bytes, Storage::Shared);
  std::memcpy(staging->host_ptr(), model_words.data(), bytes);
  model_ = device_->new_buffer(bytes, Storage::Private);
  auto cb = queue_->command_buffer();
  kernel_args::buffer_copy_u32 copy;
  copy.source = staging;
  copy.destination = model_;
  copy.words = static_cast<uint32_t>(model_words.size());
  encode(*cb, copy.words, copy);
  channel_->encode_init(*cb);
  cb->commit();
  cb->wait_until_completed(-1);  // throws CommandBufferError if it failed
}

std::shared_ptr<RequestStream> ServingEngine::submit(SubmitRequest r) {
  if (r.prompt.empty()) throw std::invalid_argument(why("prompt", "is empty"));
  if (r.max_tokens < 1) throw std::invalid_argument(why("max_tokens", "must be at least 1"));
  if (uint64_t{r.prompt.size()} + r.max_tokens > config_.history_capacity) {
    throw std::invalid_argument(why(
        "max_tokens", "the prompt (" + std::to_string(r.prompt.size()) + " tokens) plus " +
                          std::to_string(r.max_tokens) + " exceeds the engine's context of " +
                          std::to_string(config_.history_capacity) + " tokens"));
  }
  for (size_t i = 0; i < r.prompt.size(); ++i) {
    if (r.prompt[i] > layout::kMaxTokenId || r.prompt[i] == config_.eos) {
      throw std::invalid_argument(why("prompt", "token " + std::to_string(r.prompt[i]) +
                                                    " at position " + std::to_string(i) +
                                                    " is not a token the model can read"));
    }
  }
  if (r.stop_sequences.size() > layout::kLaneMaxStops) {
    throw std::invalid_argument(why("stop", "at most " + std::to_string(layout::kLaneMaxStops) +
                                                " stop sequences"));
  }
  for (const auto& s : r.stop_sequences) {
    if (s.empty() || s.size() > layout::kLaneMaxStopTokens) {
      throw std::invalid_argument(why("stop", "a stop sequence has 1.." +
                                                  std::to_string(layout::kLaneMaxStopTokens) +
                                                  " tokens, got " + std::to_string(s.size())));
    }
  }
  std::shared_ptr<RequestStream> stream;
  {
    std::lock_guard lock(mutex_);
    if (stopping_) {
      throw DeviceClosedError(failure_.empty() ? "the serving engine is closed"
                                               : "the serving engine failed: " + failure_);
    }
    if (queue_requests_.size() >= config_.max_queued) {
      throw EngineBusyError("the serving engine is busy: " +
                            std::to_string(queue_requests_.size()) +
                            " requests already wait for a lane (max_queued)");
    }
    uint32_t generation = next_generation_++;
    if (next_generation_ == 0) next_generation_ = 1;  // 0 names no request
    stream = std::make_shared<RequestStream>(next_id_++, generation, r.max_tokens, r.logprobs);
    queue_requests_.push_back(Pending{stream, std::move(r), generation});
    EngineCounters::set(counters_.queued, queue_requests_.size());
  }
  EngineCounters::add(counters_.submitted);
  // Wakes an idle driver. A busy one admits at its next window boundary anyway (its waits
  // end when the oldest window completes), so the process WakeSignal is left alone: notifying
  // it would wake every sleeping waiter of the process for each request.
  cv_.notify_one();
  return stream;
}

void ServingEngine::cancel(RequestStream& stream) {
  int lane = -1;
  const bool was_running = stream.cancel(lane);
  if (was_running) notify_loop();  // an awaiting reader sees the end at once
  if (!was_running || lane < 0) return;  // ended, or still queued: admit skips it
  // The lane's next step reads the word (lm_lanes_step) and stops the lane if it still runs
  // this request; a lane that moved on to another request has another generation. Release:
  // as the other CPU-written words the device reads (docs/protocol.md, "Control block"); the
  // value itself is all the device needs.
  atomic_word::store_release(static_cast<uint32_t*>(cancel_->host_ptr()) + lane,
                             stream.generation());
}

void ServingEngine::set_notify_fd(int fd) {
  std::lock_guard lock(notify_mutex_);
  notify_fd_ = fd;
  notify_armed_ = false;
}

void ServingEngine::arm_notify() {
  std::lock_guard lock(notify_mutex_);
  notify_armed_ = notify_fd_ >= 0;
}

void ServingEngine::notify_loop() {
  std::lock_guard lock(notify_mutex_);
  if (!notify_armed_) return;
  notify_armed_ = false;
#if defined(__linux__)
  const uint64_t one = 1;
  // An eventfd write only fails when the counter would overflow (it is read at every wake):
  // the reader is awake then anyway.
  [[maybe_unused]] const ssize_t written = ::write(notify_fd_, &one, sizeof one);
#endif
}

void ServingEngine::close() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  closing_.store(true, std::memory_order_release);
  cv_.notify_all();
  wake_signal().notify();
  if (driver_.joinable() && driver_.get_id() != std::this_thread::get_id()) driver_.join();
}

// ---- the driver thread -------------------------------------------------------------------

void ServingEngine::run() {
#if defined(__linux__)
  pthread_setname_np(pthread_self(), "fc-engine");  // tools and benchmarks find it by name
#endif
  std::string failure;
  try {
    run_loop();
  } catch (const std::exception& e) {
    failure = e.what();
  }
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    if (!failure.empty()) failure_ = failure;
  }
  closing_.store(true, std::memory_order_release);
  // The windows in flight finish (a few steps) before the streams end: nothing they push can
  // reach a stream afterwards, and their buffers stay alive in them until then.
  for (auto& cb : in_flight_) {
    try {
      cb->wait_until_completed(kCloseWaitS);
    } catch (const std::exception&) {
    }
  }
  in_flight_.clear();
  if (failure.empty()) {
    fail_all(FinishReason::Cancelled, "the serving engine was closed");
  } else {
    fail_all(FinishReason::Error, failure);
  }
}

void ServingEngine::run_loop() {
  for (;;) {
    admit();
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
    }
    if (active_lanes_ > 0 && in_flight_.size() < kMaxInFlight) {
      in_flight_.push_back(queue_->replay(window_));
      EngineCounters::add(counters_.windows);
      continue;  // drain before anything else: the first tokens must not wait for encoding
    }
    const size_t got = drain();
    while (!in_flight_.empty()) {
      const auto status = in_flight_.front()->status();
      if (status != CommandBufferStatus::Completed && status != CommandBufferStatus::Error) break;
      auto cb = std::move(in_flight_.front());
      in_flight_.pop_front();
      if (status == CommandBufferStatus::Error) {
        throw std::runtime_error("a decode window failed: " + cb->error_message());
      }
      // Completion made every item of the window visible: read them all before another
      // window is committed (the channel holds two windows' items, engine.hpp).
      while (drain() != 0) {
      }
    }
    if (in_flight_.empty() && active_lanes_ == 0) {
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [&] {
        return stopping_ || !queue_requests_.empty();
      });
      continue;
    }
    if (got == 0 && !in_flight_.empty()) {
      // Idles as the reader's (adaptive) strategy says; ends for an item, at the oldest
      // window's completion, or when a submit notifies the wake signal.
      reader_->wait(kWaitSliceS, {}, in_flight_.front().get());
    }
  }
}

void ServingEngine::admit() {
  admitting_.clear();
  {
    std::lock_guard lock(mutex_);
    // Requests cancelled while queued leave the queue without a lane.
    while (!queue_requests_.empty() &&
           queue_requests_.front().stream->finish_reason() != FinishReason::None) {
      queue_requests_.pop_front();
      EngineCounters::add(counters_.completed);
    }
    while (!queue_requests_.empty() && admitting_.size() < free_lanes_.size()) {
      admitting_.push_back(std::move(queue_requests_.front()));
      queue_requests_.pop_front();
    }
    EngineCounters::set(counters_.queued, queue_requests_.size());
  }
  if (admitting_.empty()) return;
  std::shared_ptr<CommandBuffer> cb;
  for (Pending& p : admitting_) {
    const uint32_t lane = free_lanes_.back();
    if (!p.stream->assign_lane(static_cast<int>(lane))) {  // cancelled meanwhile
      EngineCounters::add(counters_.completed);
      continue;
    }
    free_lanes_.pop_back();
    write_staging(lane, p);
    if (!cb) cb = queue_->command_buffer();
    kernel_args::lm_lanes_admit a;
    a.lanes = lanes_buf_;
    a.history = history_;
    a.staging = staging_;
    a.lane = lane;
    a.history_capacity = config_.history_capacity;
    a.threads = std::min<uint32_t>(kAdmitThreads, static_cast<uint32_t>(p.request.prompt.size()));
    encode(*cb, a.threads, a);
    lanes_[lane].stream = std::move(p.stream);
    ++active_lanes_;
    EngineCounters::add(counters_.admits);
  }
  admitting_.clear();
  EngineCounters::set(counters_.active_lanes, active_lanes_);
  if (cb) cb->commit();
}

void ServingEngine::write_staging(uint32_t lane, const Pending& p) {
  // No command buffer in flight reads this lane's record: its previous request's admit ran
  // before that request's steps, whose end item freed the lane. The commit of the admit below
  // orders these stores before the device reads them.
  auto* record = static_cast<uint32_t*>(staging_->host_ptr()) +
                 size_t{lane} * (layout::kLaneWords + config_.history_capacity);
  const SubmitRequest& r = p.request;
  std::memset(record, 0, layout::kLaneWords * 4);
  record[layout::kLanePosition] = static_cast<uint32_t>(r.prompt.size());
  record[layout::kLaneSeed] = r.seed;
  record[layout::kLaneMaxTokens] = r.max_tokens;
  record[layout::kLaneGeneration] = p.generation;
  record[layout::kLaneFlags] = r.logprobs ? layout::kLaneFlagProbs : 0u;
  record[layout::kLaneEos] = config_.eos;
  record[layout::kLaneStopCount] = static_cast<uint32_t>(r.stop_sequences.size());
  for (size_t s = 0; s < r.stop_sequences.size(); ++s) {
    const auto& seq = r.stop_sequences[s];
    record[layout::kLaneStopLengths + s] = static_cast<uint32_t>(seq.size());
    std::memcpy(record + layout::kLaneStopTokens + s * layout::kLaneMaxStopTokens, seq.data(),
                seq.size() * 4);
  }
  std::memcpy(record + layout::kLaneWords, r.prompt.data(), r.prompt.size() * 4);
}

size_t ServingEngine::drain() {
  const size_t n = reader_->drain_into(items_.data(), items_.size());
  if (reader_->dropped() != 0) {  // ruled out by the window bound (engine.hpp): a bug if seen
    throw std::runtime_error("lane channel: " + std::to_string(reader_->dropped()) +
                             " item(s) were overwritten before they were read");
  }
  if (n != 0) demux(items_.data(), n);
  return n;
}

void ServingEngine::demux(const uint32_t* items, size_t n) {
  const int64_t now = steady_now_ns();
  auto deliver = [&](uint32_t lane, uint32_t token, float logprob) {
    Lane& l = lanes_[lane];
    if (!l.stream) {
      throw std::runtime_error("lane channel: a token for free lane " + std::to_string(lane));
    }
    l.stream->append(token, logprob, now);
    if (!l.touched) {
      l.touched = true;
      touched_.push_back(lane);
    }
  };
  for (size_t i = 0; i < n; ++i) {
    const uint32_t v = items[i];
    if (pending_words_ == 2) {  // the token's count in its context ...
      pending_count_ = v;
      pending_words_ = 1;
      continue;
    }
    if (pending_words_ == 1) {  // ... and the context's total
      pending_words_ = 0;
      const float logprob =
          pending_count_ == 0 || v == 0
              ? -std::numeric_limits<float>::infinity()
              : static_cast<float>(std::log(static_cast<double>(pending_count_) / v));
      deliver(pending_lane_, pending_token_, logprob);
      continue;
    }
    const uint32_t kind = v >> layout::kItemKindShift;
    const uint32_t lane = (v >> layout::kItemLaneShift) & layout::kItemLaneMask;
    const uint32_t payload = v & layout::kItemPayloadMask;
    if (lane >= config_.lanes) {
      throw std::runtime_error("lane channel: item for lane " + std::to_string(lane) +
                               " of an engine with " + std::to_string(config_.lanes));
    }
    if (kind == layout::kItemToken) {
      deliver(lane, payload, std::numeric_limits<float>::quiet_NaN());
    } else if (kind == layout::kItemTokenProb) {
      pending_words_ = 2;  // a lane's items of one step are consecutive: the pair follows
      pending_lane_ = lane;
      pending_token_ = payload;
    } else if (kind == layout::kItemEnd) {
      end_lane(lane, payload);
    } else {
      throw std::runtime_error("lane channel: unknown item kind " + std::to_string(kind));
    }
  }
  for (uint32_t lane : touched_) {
    lanes_[lane].touched = false;
    if (lanes_[lane].stream) lanes_[lane].stream->publish();
  }
  touched_.clear();
  EngineCounters::add(counters_.items, n);
  EngineCounters::add(counters_.batches);
  wake_signal().notify();  // the poller, for every awaited stream this batch fed
  notify_loop();           // an event loop awaiting its streams through the notify fd
}

void ServingEngine::end_lane(uint32_t lane, uint32_t reason) {
  Lane& l = lanes_[lane];
  if (!l.stream) {
    throw std::runtime_error("lane channel: an end item for free lane " + std::to_string(lane));
  }
  int stop_index = -1;
  const FinishReason finish = reason_of(reason, stop_index);
  l.stream->finish(finish, stop_index);  // publishes this batch's tokens first
  l.stream.reset();
  free_lanes_.push_back(lane);
  --active_lanes_;
  EngineCounters::set(counters_.active_lanes, active_lanes_);
  EngineCounters::add(counters_.completed);
}

void ServingEngine::fail_all(FinishReason reason, const std::string& message) {
  for (Lane& l : lanes_) {
    if (l.stream) l.stream->finish(reason, -1, message);
    l.stream.reset();
  }
  std::deque<Pending> queued;
  {
    std::lock_guard lock(mutex_);
    queued.swap(queue_requests_);
  }
  for (Pending& p : queued) p.stream->finish(reason, -1, message);
  active_lanes_ = 0;
  EngineCounters::set(counters_.active_lanes, 0);
  EngineCounters::set(counters_.queued, 0);
  wake_signal().notify();
  notify_loop();
}

}  // namespace fc
