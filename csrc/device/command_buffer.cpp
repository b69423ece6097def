// The command-buffer state machine shared by every backend:
//   NotCommitted --commit()--> Committed --backend--> Completed | Error
// Backends only run the recorded dispatches and call mark_completed / mark_failed.
#include <chrono>
#include <condition_variable>

#include "device/deadline.hpp"
#include "device/device.hpp"
#include "device/encode_rules.hpp"

namespace fc {

const char* status_name(CommandBufferStatus s) {
  switch (s) {
    case CommandBufferStatus::NotCommitted: return "not_committed";
    case CommandBufferStatus::Committed: return "committed";
    case CommandBufferStatus::Completed: return "completed";
    case CommandBufferStatus::Error: return "error";
  }
  return "?";
}

CommandBuffer::CommandBuffer(std::shared_ptr<Queue> queue, std::shared_ptr<Window> window)
    : queue_(std::move(queue)), window_(std::move(window)) {}

std::shared_ptr<Window> CommandBuffer::to_window() const {
  if (window_) return window_;
  if (dispatches_.empty()) {
    throw CommandBufferError("to_window(): the command buffer recorded no dispatches");
  }
  // retained_ lives as long as this command buffer (also after it ran), so a window made after
  // completion keeps every buffer its dispatches point to alive.
  std::lock_guard lock(mutex_);
  return std::make_shared<Window>(queue_, dispatches_, retained_);
}

void CommandBuffer::dispatch(KernelId kernel, uint32_t grid,
                             const std::array<std::shared_ptr<Buffer>, kBufferSlots>& buffers,
                             const std::array<uint32_t, kScalarSlots>& scalars) {
  if (window_) {
    throw CommandBufferError("cannot encode '" + std::string(kernel_name(kernel)) +
                             "': this command buffer replays a window");
  }
  if (status() != CommandBufferStatus::NotCommitted) {
    throw CommandBufferError("cannot encode '" + std::string(kernel_name(kernel)) +
                             "': the command buffer was already committed");
  }
  const auto& device = queue_->device();
  device->check_usable("encode a dispatch");
  if (grid == 0) {
    throw std::invalid_argument("dispatch of '" + std::string(kernel_name(kernel)) +
                                "': grid must be at least 1 thread");
  }
  check_encodable(kernel, buffers);
  Dispatch d{kernel, grid, {}, scalars};
  for (int i = 0; i < kBufferSlots; ++i) {
    if (!buffers[i]) continue;
    if (buffers[i]->device() != device) {
      throw std::invalid_argument("dispatch of '" + std::string(kernel_name(kernel)) +
                                  "': buffer slot " + std::to_string(i) +
                                  " belongs to another device");
    }
    d.buffers[i] = buffers[i]->device_ptr();
    std::lock_guard lock(mutex_);
    retained_.push_back(buffers[i]);
  }
  dispatches_.push_back(d);
}

void CommandBuffer::commit() {
  auto expected = CommandBufferStatus::NotCommitted;
  queue_->device()->check_usable("commit a command buffer");
  if (!status_.compare_exchange_strong(expected, CommandBufferStatus::Committed,
                                       std::memory_order_acq_rel)) {
    throw CommandBufferError(std::string("commit(): the command buffer was already committed "
                                         "(status ") + status_name(expected) +
                             "); a command buffer is committed once, make a new one");
  }
  const auto& device = queue_->device();
  device->note_commit();  // before submit: the time stamp precedes anything the work pushes
  queue_->submit(shared_from_this());
  wake_signal().notify();  // adaptive readers asleep on this device spin for its first push
}

void CommandBuffer::add_completed_handler(Handler handler) {
  std::unique_lock lock(mutex_);
  auto s = status();
  if (s == CommandBufferStatus::Completed || s == CommandBufferStatus::Error) {
    lock.unlock();
    handler(*this);
    return;
  }
  handlers_.push_back(std::move(handler));
}

bool CommandBuffer::wait_until_completed(double timeout_s,
                                         const std::function<bool()>& interrupted) {
  if (status() == CommandBufferStatus::NotCommitted) {
    throw CommandBufferError("wait_until_completed(): the command buffer was never committed");
  }
  using clock = std::chrono::steady_clock;
  const auto deadline = deadline_after(timeout_s);
  std::unique_lock lock(mutex_);
  auto done = [&] {
    auto s = status();
    return s == CommandBufferStatus::Completed || s == CommandBufferStatus::Error;
  };
  while (!done()) {
    // Wake every 5 ms so a pending Ctrl-C is noticed without a busy loop.
    auto now = clock::now();
    auto step = deadline - now > std::chrono::milliseconds(5) ? now + std::chrono::milliseconds(5)
                                                              : deadline;
    done_cv_.wait_until(lock, step);
    if (done()) break;
    if (clock::now() >= deadline) return false;
    if (interrupted) {
      lock.unlock();
      bool stop = interrupted();
      lock.lock();
      if (stop) throw InterruptedError();
    }
  }
  if (status() == CommandBufferStatus::Error) {
    throw CommandBufferError("command buffer failed: " + error_);
  }
  return true;
}

std::string CommandBuffer::error_message() const {
  std::lock_guard lock(mutex_);
  return error_;
}

void CommandBuffer::mark_completed() { finish(CommandBufferStatus::Completed, ""); }
void CommandBuffer::mark_failed(const std::string& message) {
  finish(CommandBufferStatus::Error, message);
}

void CommandBuffer::finish(CommandBufferStatus final_status, const std::string& message) {
  std::vector<Handler> handlers;
  {
    std::lock_guard lock(mutex_);
    error_ = message;
    status_.store(final_status, std::memory_order_release);
    handlers.swap(handlers_);
  }
  done_cv_.notify_all();
  wake_signal().notify();  // a reader's wait(until=this) ends now, not after a sleep step
  for (auto& h : handlers) h(*this);
  // The buffers stay retained until the command buffer itself goes: to_window() may still be
  // called after completion, and its window must keep them alive (they were freed here once,
  // and a replay then wrote freed memory).
}

std::shared_ptr<CommandBuffer> Queue::command_buffer() {
  device_->check_usable("create a command buffer");
  return std::make_shared<CommandBuffer>(shared_from_this());
}

std::shared_ptr<CommandBuffer> Queue::replay(const std::shared_ptr<Window>& window) {
  if (!window) throw std::invalid_argument("replay(): window is None");
  if (window->queue().get() != this) {
    throw std::invalid_argument("replay(): the window was recorded for another queue");
  }
  device_->check_usable("replay a window");
  auto cb = std::make_shared<CommandBuffer>(shared_from_this(), window);
  cb->commit();
  return cb;
}

}  // namespace fc
