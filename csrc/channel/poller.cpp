// The per-process poller thread (poller.hpp). Locking: `mutex_` guards the armed entries; the
// thread holds it while it probes them (so disarm() never returns while a probe of its reader
// runs) and releases it to deliver completions, spin, yield or sleep. Readers are probed with
// Pollable::probe, which takes the reader's single-consumer flag with acquire/release
// (so what the poller cached is visible to the thread that reads next) and never throws.
#include "channel/poller.hpp"

#include <algorithm>
#include <cerrno>
#include <system_error>

#include "device/deadline.hpp"
#include "device/wake_signal.hpp"

#if defined(__linux__)
#include <sys/eventfd.h>
#include <pthread.h>
#endif
#include <fcntl.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define FC_POLLER_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define FC_POLLER_RELAX() asm volatile("yield" ::: "memory")
#else
#define FC_POLLER_RELAX() ((void)0)
#endif

namespace fc {

namespace {
// With more readers armed than this, the poller sleeps through their predicted windows (a
// spin per stream would keep a core busy for a few hundred streams) and relies on commits,
// completions and its sleep steps to wake it.
constexpr size_t kPredictedSpinMaxArmed = 8;
}  // namespace

Poller& Poller::instance() {
  static Poller* poller = new Poller();  // never destroyed: its thread may run during exit
  return *poller;
}

Poller::~Poller() { shutdown(); }

uint64_t Poller::arm(std::shared_ptr<Pollable> reader, double timeout_s,
                     std::shared_ptr<PollerTarget> target) {
  uint64_t id;
  {
    std::lock_guard lock(mutex_);
    id = next_id_++;
    entries_.push_back(Entry{id, std::move(reader), std::move(target), deadline_after(timeout_s)});
    if (!running_) {
      if (thread_.joinable()) thread_.join();  // a thread that shutdown() ended
      stopping_ = false;
      running_ = true;
      ++threads_started_;
      thread_ = std::thread([this] { run(); });
    }
  }
  cv_.notify_one();
  wake_signal().notify();  // a poller asleep on the signal re-plans with the new entry
  return id;
}

bool Poller::disarm(uint64_t id) {
  Entry removed{};
  {
    std::lock_guard lock(mutex_);
    auto it = std::find_if(entries_.begin(), entries_.end(),
                           [&](const Entry& e) { return e.id == id; });
    if (it == entries_.end()) return false;
    removed = std::move(*it);
    *it = std::move(entries_.back());
    entries_.pop_back();
  }
  return true;  // `removed` (a reader, a target) is released here, outside the lock
}

void Poller::shutdown() {
  std::vector<Entry> dropped;
  std::thread thread;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    dropped.swap(entries_);
    thread.swap(thread_);
  }
  cv_.notify_all();
  wake_signal().notify();
  if (thread.joinable()) {
    if (thread.get_id() == std::this_thread::get_id()) {
      thread.detach();
    } else {
      thread.join();
    }
  }
  std::lock_guard lock(mutex_);
  running_ = false;
}

Poller::Stats Poller::stats() const {
  std::lock_guard lock(mutex_);
  return {entries_.size(), rounds_, completions_, handovers_, threads_started_, running_};
}

void Poller::run() {
#if defined(__linux__)
  pthread_setname_np(pthread_self(), "fc-poller");
#endif
  use_fine_timer_slack();  // its timed sleeps end when planned, not up to 50 us late
  using clock = std::chrono::steady_clock;
  WakeSignal& signal = wake_signal();
  std::vector<Entry> finished;
  std::vector<PollCompletion> completions;
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    if (entries_.empty()) {
      cv_.wait(lock, [&] { return stopping_ || !entries_.empty(); });
      continue;
    }
    const uint64_t seen = signal.sequence();  // before the probes: a later event ends the sleep
    const auto now = clock::now();
    auto wake = now + std::chrono::milliseconds(50);
    bool spin = false, yield = false;
    for (size_t i = 0; i < entries_.size();) {
      Entry& e = entries_[i];
      IdlePlan plan{IdlePlan::Action::Sleep, wake};
      plan.may_hand_over = e.target->accepts_handover();
      plan.planned = e.planned;
      std::exception_ptr error;
      const auto probe = e.reader->probe(e.first, plan, error);
      WaitResult result = WaitResult::Timeout;
      clock::time_point handover{};
      bool done = false;
      switch (probe) {
        case Pollable::Probe::Busy:  // its owner is reading it: look again shortly
          wake = std::min(wake, now + std::chrono::microseconds(50));
          break;
        case Pollable::Probe::Ready: result = WaitResult::Ready; done = true; break;
        case Pollable::Probe::Closed: result = WaitResult::Closed; done = true; break;
        case Pollable::Probe::Error: done = true; break;
        case Pollable::Probe::Pending:
          e.first = false;
          if (now >= e.deadline) {
            done = true;  // Timeout
            break;
          }
          if (plan.handed_over) {
            handover = plan.until;  // the waiter's thread finishes this wait in place
            done = true;
            break;
          }
          if (plan.action == IdlePlan::Action::Spin) {
            spin = true;
            e.planned = now;
          } else if (plan.action == IdlePlan::Action::Yield &&
                     !(plan.predicted && entries_.size() > kPredictedSpinMaxArmed)) {
            yield = true;
            e.planned = now;
          } else {
            wake = std::min(wake, plan.until);
            e.planned = plan.until;
          }
          wake = std::min(wake, e.deadline);
          break;
      }
      if (done) {
        completions.push_back({e.id, result, error, handover});
        if (handover != clock::time_point{}) ++handovers_;
        finished.push_back(std::move(e));
        if (i + 1 != entries_.size()) e = std::move(entries_.back());
        entries_.pop_back();
      } else {
        ++i;
      }
    }
    ++rounds_;
    completions_ += completions.size();
    lock.unlock();
    if (!completions.empty()) {
      for (size_t i = 0; i < completions.size(); ++i) {
        finished[i].target->complete(std::move(completions[i]));
      }
      completions.clear();
      finished.clear();  // readers and targets released outside the lock
    } else if (spin) {
      for (int i = 0; i < 8; ++i) FC_POLLER_RELAX();
    } else if (yield) {
      std::this_thread::yield();
    } else {
      signal.sleep_until(seen, wake);
    }
    lock.lock();
  }
}

// ---- FdTarget --------------------------------------------------------------------------

FdTarget::FdTarget() {
#if defined(__linux__)
  read_fd_ = write_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (read_fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
#else
  int fds[2];
  if (pipe(fds) != 0) throw std::system_error(errno, std::generic_category(), "pipe");
  for (int fd : fds) {
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
  read_fd_ = fds[0];
  write_fd_ = fds[1];
#endif
}

FdTarget::~FdTarget() {
  if (read_fd_ >= 0) close(read_fd_);
  if (write_fd_ >= 0 && write_fd_ != read_fd_) close(write_fd_);
}

void FdTarget::complete(PollCompletion completion) {
  bool was_empty;
  {
    std::lock_guard lock(mutex_);
    was_empty = done_.empty();
    done_.push_back(std::move(completion));
  }
  // One write per batch: the loop's take() reads the fd before it takes the list, so a
  // completion queued after its take() always writes again (no lost wake-up).
  if (was_empty) {
#if defined(__linux__)
    const uint64_t one = 1;
    [[maybe_unused]] auto n = write(write_fd_, &one, sizeof one);
#else
    const char one = 1;
    [[maybe_unused]] auto n = write(write_fd_, &one, 1);
#endif
  }
}

void FdTarget::take(std::vector<PollCompletion>& out) {
  char buf[64];
  while (read(read_fd_, buf, sizeof buf) > 0) {
  }
  std::lock_guard lock(mutex_);
  for (auto& c : done_) out.push_back(std::move(c));
  done_.clear();
}

}  // namespace fc
