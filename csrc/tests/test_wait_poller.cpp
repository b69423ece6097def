// The wait strategies and the poller thread against a real concurrent producer (the host
// device thread). Built with -fsanitize=thread and with ASan+UBSan by .ci/run: every shared
// word is an atomic or guarded, so the sanitizers must report nothing; every item must arrive
// exactly once and in order; close, faults, timeouts and shutdown must end armed waits.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "channel/channel.hpp"
#include "channel/poller.hpp"
#include "channel/reader.hpp"
#include "stress_support.hpp"

using fc_test::expect;
using fc_test::failures;

using namespace std::chrono_literals;

static std::shared_ptr<fc::ChannelU32> make_channel(const std::shared_ptr<fc::Device>& device,
                                                    fc::Queue& queue, uint32_t capacity) {
  auto channel = std::make_shared<fc::ChannelU32>(device, capacity);
  auto cb = queue.command_buffer();
  channel->encode_init(*cb);
  cb->commit();
  cb->wait_until_completed(-1);
  return channel;
}

// Commits one push per command buffer of 0 .. n - 1 (the last one also closes), sleeping
// `pause` between them and `long_pause` every `every` items: a producer with a rhythm that an
// adaptive wait can learn, and gaps it must not oversleep.
static std::thread paced_producer(fc::Queue& queue, fc::ChannelU32& channel, uint32_t n,
                                  uint32_t every, std::chrono::microseconds pause,
                                  std::chrono::microseconds long_pause) {
  return std::thread([&queue, &channel, n, every, pause, long_pause] {
    for (uint32_t i = 0; i < n; ++i) {
      auto cb = queue.command_buffer();
      channel.encode_push(*cb, i);
      if (i + 1 == n) channel.encode_close(*cb);
      cb->commit();
      std::this_thread::sleep_for(i % every == 0 ? long_pause : pause);
    }
  });
}

// One item per commit, every `period`, read by a thread blocked in wait() with `kind`.
static void strategy_delivers_every_item(fc::WaitStrategyKind kind) {
  auto device = fc::make_host_device();
  auto queue = device->new_queue();
  auto channel = make_channel(device, *queue, 64);
  const uint32_t n = 300;
  std::thread producer = paced_producer(*queue, *channel, n, 50, 100us, 3ms);
  auto reader = channel->reader();
  reader->set_wait_strategy(kind);
  uint32_t next = 0;
  bool in_order = true, closed = false;
  for (;;) {
    auto res = reader->wait(30.0);
    if (res == fc::WaitResult::Closed) {
      closed = true;
      break;
    }
    if (res != fc::WaitResult::Ready) break;
    while (auto v = reader->try_next()) in_order &= (*v == next++);
  }
  producer.join();
  char what[160];
  std::snprintf(what, sizeof what, "%s: %u items in order, then closed",
                fc::wait_strategy_name(kind), n);
  expect(in_order && next == n && closed, what);
  // A timeout on an idle channel ends the wait.
  auto res = reader->wait(0.01);
  expect(res == fc::WaitResult::Closed, "a closed, drained channel reports Closed at once");
  device->close();
}

// A target that blocked threads wait on (condition variable).
class ThreadTarget final : public fc::PollerTarget {
 public:
  void complete(fc::PollCompletion c) override {
    std::lock_guard lock(mutex_);
    done_[c.id] = c;
    cv_.notify_all();
  }
  fc::PollCompletion wait_for(uint64_t id) {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return done_.count(id) != 0; });
    auto c = done_[id];
    done_.erase(id);
    return c;
  }
  bool has(uint64_t id) {
    std::lock_guard lock(mutex_);
    return done_.count(id) != 0;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::map<uint64_t, fc::PollCompletion> done_;
};

// Many readers on the one poller thread: each consumer thread arms its reader, blocks until
// the poller completes the wait, drains, and arms again; a producer pushes round-robin.
static void many_readers_one_poller(size_t channels, uint32_t items_each) {
  auto device = fc::make_host_device();
  auto queue = device->new_queue();
  std::vector<std::shared_ptr<fc::ChannelU32>> chans;
  for (size_t c = 0; c < channels; ++c) chans.push_back(make_channel(device, *queue, 1024));
  auto target = std::make_shared<ThreadTarget>();
  std::atomic<int> bad{0};
  std::vector<std::thread> consumers;
  for (size_t c = 0; c < channels; ++c) {
    consumers.emplace_back([&, c] {
      auto reader = chans[c]->reader();
      uint32_t next = 0;
      for (;;) {
        while (auto v = reader->try_next()) {
          if (*v != next++) bad.fetch_add(1);
        }
        const uint64_t id = fc::Poller::instance().arm(reader, 30.0, target);
        auto done = target->wait_for(id);
        if (done.error || done.result == fc::WaitResult::Timeout) {
          bad.fetch_add(1);
          return;
        }
        if (done.result == fc::WaitResult::Closed) break;
      }
      if (next != items_each) bad.fetch_add(1);
    });
  }
  std::thread producer([&] {
    for (uint32_t i = 0; i < items_each; ++i) {
      auto cb = queue->command_buffer();
      for (auto& ch : chans) {
        ch->encode_push(*cb, i);
        if (i + 1 == items_each) ch->encode_close(*cb);
      }
      cb->commit();
      std::this_thread::sleep_for(200us);
    }
  });
  producer.join();
  for (auto& t : consumers) t.join();
  const auto stats = fc::Poller::instance().stats();
  char what[200];
  std::snprintf(what, sizeof what,
                "%zu readers on one poller: every item once and in order (%u threads started)",
                channels, stats.threads_started);
  expect(bad.load() == 0 && stats.threads_started == 1, what);
  device->close();
}

// Arm and disarm races: a disarmed wait never completes; a completed one completes once.
static void arm_disarm_race() {
  auto device = fc::make_host_device();
  auto queue = device->new_queue();
  auto channel = make_channel(device, *queue, 1 << 16);
  auto reader = channel->reader();
  auto target = std::make_shared<ThreadTarget>();
  std::atomic<bool> stop{false};
  std::thread producer([&] {
    while (!stop.load()) {
      auto cb = queue->command_buffer();
      channel->encode_push(*cb, 1);
      cb->commit();
      std::this_thread::sleep_for(50us);
    }
  });
  bool ok = true;
  for (int i = 0; i < 2000; ++i) {
    const uint64_t id = fc::Poller::instance().arm(reader, -1.0, target);
    if (i % 3) std::this_thread::sleep_for(std::chrono::microseconds(i % 40));
    if (fc::Poller::instance().disarm(id)) {
      if (target->has(id)) ok = false;  // disarmed yet completed
    } else {
      auto c = target->wait_for(id);  // completed: exactly once
      ok &= !c.error && c.result == fc::WaitResult::Ready;
    }
    if (i % 2) {
      std::vector<uint32_t> out(4096);
      reader->drain_into(out.data(), out.size());
    }
  }
  stop.store(true);
  producer.join();
  expect(ok, "arm/disarm under a live producer: disarmed waits never complete");
  device->close();
}

// Device close and device faults fail armed waits (no timeout: only they can end them), and
// wake a thread blocked in an adaptive wait().
static void close_and_fault_end_waits() {
  for (int fault = 0; fault < 2; ++fault) {
    auto device = fc::make_host_device();
    auto queue = device->new_queue();
    auto channel = make_channel(device, *queue, 64);
    auto other = make_channel(device, *queue, 64);
    auto target = std::make_shared<ThreadTarget>();
    const uint64_t id = fc::Poller::instance().arm(channel->reader(), -1.0, target);
    bool thread_ended = false;
    std::thread blocked([&] {
      try {
        other->reader()->wait(-1.0);
      } catch (const fc::Error&) {
        thread_ended = true;
      }
    });
    std::this_thread::sleep_for(20ms);
    if (fault) {
      auto cb = queue->command_buffer();
      cb->dispatch(fc::kernel_by_name("debug_trap"), 1, {}, {});
      cb->commit();
    } else {
      device->close();
    }
    auto c = target->wait_for(id);
    blocked.join();
    bool right_error = false;
    try {
      if (c.error) std::rethrow_exception(c.error);
    } catch (const fc::DeviceClosedError&) {
      right_error = !fault;
    } catch (const fc::DeviceError&) {
      right_error = fault;
    } catch (...) {
    }
    expect(right_error && thread_ended,
           fault ? "a device fault fails an armed poller wait and a blocked wait()"
                 : "device close fails an armed poller wait and a blocked wait()");
    device->close();
  }
}

// A target that takes hand-overs (as an asyncio loop awaiting one reader does).
class HandoverTarget final : public fc::PollerTarget {
 public:
  void complete(fc::PollCompletion c) override { inner_.complete(std::move(c)); }
  bool accepts_handover() const override { return true; }
  fc::PollCompletion wait_for(uint64_t id) { return inner_.wait_for(id); }

 private:
  ThreadTarget inner_;
};

// The poller hands waits over to a consumer thread that continues them with wait() (what
// next_async does on its loop): under a live producer committing one item at a time, every
// item arrives once and in order, some waits are handed over, and the strategy's hand-over
// state passes between the two threads under the reader's busy flag (TSan-clean).
static void handover_continues_on_the_waiter() {
  auto device = fc::make_host_device();
  auto queue = device->new_queue();
  auto channel = make_channel(device, *queue, 1024);
  auto target = std::make_shared<HandoverTarget>();
  const uint32_t n = 400;
  const uint64_t before = fc::Poller::instance().stats().handovers;
  std::thread producer = paced_producer(*queue, *channel, n, 40, 700us, 5ms);
  auto reader = channel->reader();
  uint32_t next = 0;
  bool ok = true, closed = false;
  while (ok && !closed) {
    while (auto v = reader->try_next()) ok &= (*v == next++);
    const uint64_t id = fc::Poller::instance().arm(reader, 30.0, target);
    auto c = target->wait_for(id);
    if (c.error || (c.handover_until == decltype(c.handover_until){} &&
                    c.result == fc::WaitResult::Timeout)) {
      ok = false;
      break;
    }
    if (c.handover_until != decltype(c.handover_until){}) {
      const auto left = c.handover_until - std::chrono::steady_clock::now();
      closed = reader->wait(std::max(0.0, std::chrono::duration<double>(left).count())) ==
               fc::WaitResult::Closed;
    } else {
      closed = c.result == fc::WaitResult::Closed;
    }
  }
  producer.join();
  const uint64_t handovers = fc::Poller::instance().stats().handovers - before;
  char what[200];
  std::snprintf(what, sizeof what,
                "hand-over: %u items once and in order, then closed (%llu waits handed over)", n,
                static_cast<unsigned long long>(handovers));
  expect(ok && closed && next == n && handovers > 0, what);
  device->close();
}

// The strategy's hand-over bookkeeping: taken once; a wait that continues one begins nothing and
// counts an item found at its first check as an arrival; a stale or superseded one is dropped.
static void handover_bookkeeping() {
  using clock = std::chrono::steady_clock;
  fc::WaitStrategy s;
  const auto t0 = clock::now();
  expect(!s.take_handover(t0), "no hand-over: a wait starts afresh");
  s.hand_over(t0, t0 + 100us);
  expect(s.take_handover(t0 + 40us) && !s.take_handover(t0 + 41us),
         "a hand-over is taken once");
  s.hand_over(t0, t0 + 100us);
  expect(!s.take_handover(t0 + 100us + fc::WaitStrategy::kHandoverStale + 1us),
         "a hand-over nobody took up in time is forgotten");
  s.hand_over(t0, t0 + 100us);
  s.begin(t0 + 50us);
  expect(!s.take_handover(t0 + 60us), "a new wait (begin) drops an untaken hand-over");
  const auto lead_before = s.handover_lead();
  for (int i = 0; i < 64; ++i) {
    const auto at = t0 + std::chrono::milliseconds(i);
    s.hand_over(at, at + 200us);
    s.take_handover(at + 10us);
  }
  expect(s.handover_lead() < lead_before && s.handover_lead() < 20us,
         "the hand-over lead follows how fast the waiter takes hand-overs up");
  // One slow take-up (an event loop woken late) sets the lead for the next ones: a lead learnt
  // from the mean alone would hand the next wait over too late again. It fades over later
  // quick take-ups, and never exceeds kHandoverLeadMax.
  auto at = t0 + 100ms;
  s.hand_over(at, at + 900us);
  s.take_handover(at + 400us);
  expect(s.handover_lead() >= 399us, "a slow take-up raises the lead to cover it");
  for (int i = 0; i < 120; ++i) {
    at += 1ms;
    s.hand_over(at, at + 200us);
    s.take_handover(at + 10us);
  }
  expect(s.handover_lead() < 40us, "the lead falls back once take-ups are quick again");
  at += 1ms;
  s.hand_over(at, at + 5ms);
  s.take_handover(at + 4ms);
  expect(s.handover_lead() <= fc::WaitStrategy::kHandoverLeadMax, "the lead is bounded");
}

// Items that follow commits are predicted from the commits' rhythm: one item picked up late
// (a device thread woken late) does not shift the next item's window, which stays around the
// next commit (plus the learnt lag), not a pick-up delay after it.
static void commit_rhythm_predicts_the_next_commit() {
  using clock = std::chrono::steady_clock;
  fc::WaitStrategy s;
  const auto t0 = clock::now();
  const auto commit = [&](int i) { return t0 + i * 5ms; };
  for (int i = 0; i <= 20; ++i) {
    s.arrived(commit(i) + (i == 20 ? 400us : 20us), commit(i));
  }
  char what[160];
  std::snprintf(what, sizeof what, "the commits' gap is learnt (%.3f ms)", s.commit_gap_s() * 1e3);
  expect(std::abs(s.commit_gap_s() - 0.005) < 1e-6, what);
  // 40 us before commit 21 is due: in the window (spinning), not asleep until 400 us after it
  const auto plan = s.idle(commit(21) - 40us, commit(20));
  expect(plan.action == fc::IdlePlan::Action::Yield && plan.predicted &&
             plan.until > commit(21) && plan.window_end > commit(21),
         "after a late pick-up the next window still opens by the time the next commit is due");
  // and long before it: asleep until shortly before it
  const auto before = s.idle(commit(20) + 2ms, commit(20));
  expect(before.action == fc::IdlePlan::Action::Sleep && before.until < commit(21) &&
             before.until > commit(21) - 1ms,
         "between commits the reader sleeps until shortly before the next one is due");
}

// The sleep margin before a predicted window covers the timed wake-up's spread, not only its
// mean lateness (the learnt rate's window must open before a late wake-up ends).
static void oversleep_margin_covers_the_spread() {
  using clock = std::chrono::steady_clock;
  fc::WaitStrategy steady, jittery;
  auto t = clock::now();
  for (int i = 0; i < 200; ++i) {
    t += 1ms;
    steady.slept(t, t + 20us);
    jittery.slept(t, t + (i % 4 == 0 ? 140us : 0us));  // the same 35 us mean, a spread
  }
  expect(steady.oversleep_margin() >= 20us && steady.oversleep_margin() < 30us,
         "a steady lateness gives a margin of about that lateness");
  expect(jittery.oversleep_margin() > steady.oversleep_margin() + 60us,
         "a spread lateness gives a margin well past its mean");
  for (int i = 0; i < 200; ++i) {
    t += 1ms;
    jittery.slept(t, t + 400ms);
  }
  expect(jittery.oversleep_margin() <= fc::WaitStrategy::kOversleepMarginMax,
         "the margin is bounded");
}

static void timeouts_and_shutdown() {
  auto device = fc::make_host_device();
  auto queue = device->new_queue();
  auto a = make_channel(device, *queue, 64);
  auto b = make_channel(device, *queue, 64);
  auto target = std::make_shared<ThreadTarget>();
  const uint64_t id = fc::Poller::instance().arm(a->reader(), 0.02, target);
  auto c = target->wait_for(id);
  expect(!c.error && c.result == fc::WaitResult::Timeout, "a poller wait times out");
  const uint64_t forever = fc::Poller::instance().arm(b->reader(), -1.0, target);
  fc::Poller::instance().shutdown();  // drops it without completing it (process exit)
  expect(!target->has(forever) && !fc::Poller::instance().stats().running,
         "shutdown with a wait armed ends the thread and drops the wait");
  device->close();
}

int main() {
  strategy_delivers_every_item(fc::WaitStrategyKind::Adaptive);
  strategy_delivers_every_item(fc::WaitStrategyKind::Backoff);
  strategy_delivers_every_item(fc::WaitStrategyKind::Spin);
  many_readers_one_poller(64, 200);
  arm_disarm_race();
  handover_continues_on_the_waiter();
  handover_bookkeeping();
  oversleep_margin_covers_the_spread();
  commit_rhythm_predicts_the_next_commit();
  close_and_fault_end_waits();
  timeouts_and_shutdown();
  return failures == 0 ? 0 : 1;
}
