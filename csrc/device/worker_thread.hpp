// WorkerThread: one thread that takes jobs in order from a queue: the host device's executor
// and the CUDA backend's completion thread.
//
// Why not a plain std::thread member: a job holds a command buffer, which holds its queue, which
// holds the device. When the job finishes, dropping it can drop the last reference to the
// device, so the device's destructor runs ON this thread, and a thread cannot join itself
// (std::system_error "Resource deadlock avoided", then std::terminate). Here the queue state
// lives in a block the thread shares: a destructor running on the thread itself detaches it,
// and the loop, which from then on touches only the shared block, sees `stopping` and ends.
// The `run` callback may use its owner only while it holds a job (the job keeps the owner
// alive), which is the only time the loop calls it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

namespace fc {

template <class Job>
class WorkerThread {
 public:
  // `run(job)` runs on the thread for each job in order; `on_start()` once on the thread first.
  explicit WorkerThread(std::function<void(Job&)> run, std::function<void()> on_start = {})
      : state_(std::make_shared<State>()) {
    state_->run = std::move(run);
    thread_ = std::thread([state = state_, on_start = std::move(on_start)] {
      if (on_start) on_start();
      loop(*state);
    });
  }
  // Owners call stop() first and fail what it returns; a job still queued here is dropped.
  ~WorkerThread() { stop(); }
  WorkerThread(const WorkerThread&) = delete;
  WorkerThread& operator=(const WorkerThread&) = delete;

  // Queues a job; hands it back (nullopt = taken) once stop() was called. Jobs are
  // default-constructible and movable (a shared_ptr, a small struct).
  std::optional<Job> push(Job job) {
    bool taken = false;
    {
      std::lock_guard lock(state_->mutex);
      if (!state_->stopping) {
        state_->jobs.push_back(std::move(job));
        taken = true;
      }
    }
    // Notified after the unlock: notifying under the lock wakes the worker straight into a
    // mutex the pushing thread still holds (one more sleep/wake round trip per commit).
    if (taken) {
      state_->cv.notify_one();
      return std::nullopt;
    }
    return std::optional<Job>(std::move(job));
  }

  size_t queued() const {
    std::lock_guard lock(state_->mutex);
    return state_->jobs.size();
  }

  // Stops taking jobs, takes the ones not started out of the queue and returns them (the
  // caller fails them: nothing is dropped silently), lets the running job finish, and joins,
  // or detaches when called on the worker thread itself. Idempotent.
  std::deque<Job> stop() {
    std::deque<Job> left;
    {
      std::lock_guard lock(state_->mutex);
      state_->stopping = true;
      left.swap(state_->jobs);
    }
    state_->cv.notify_all();
    if (thread_.joinable()) {
      if (thread_.get_id() == std::this_thread::get_id()) {
        thread_.detach();
      } else {
        thread_.join();
      }
    }
    return left;
  }

  // Like stop(), but first lets the queue drain until `give_up()` says to stop waiting
  // (polled every millisecond).
  std::deque<Job> drain_then_stop(const std::function<bool()>& give_up) {
    if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) {
      for (;;) {
        {
          std::lock_guard lock(state_->mutex);
          if (state_->jobs.empty() && !state_->busy) break;
        }
        if (give_up()) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    }
    return stop();
  }

 private:
  struct State {
    mutable std::mutex mutex;
    std::condition_variable cv;
    std::deque<Job> jobs;
    bool stopping = false;
    bool busy = false;
    std::function<void(Job&)> run;
  };

  static void loop(State& state) {
    for (;;) {
      Job job{};
      {
        std::unique_lock lock(state.mutex);
        state.busy = false;
        state.cv.wait(lock, [&] { return state.stopping || !state.jobs.empty(); });
        if (state.stopping) return;  // stop() took what was queued
        job = std::move(state.jobs.front());
        state.jobs.pop_front();
        state.busy = true;
      }
      state.run(job);
      job = Job{};  // may destroy the owner (and so call stop() on this very thread)
    }
  }

  std::shared_ptr<State> state_;
  std::thread thread_;
};

}  // namespace fc
