// The serving engine against real concurrency: the host device thread decoding lanes, the
// engine's driver thread demultiplexing, submitters on several threads, consumers blocked in
// RequestStream::wait() or armed with the poller, and cancels from yet another thread. Built
// with -fsanitize=thread and with ASan+UBSan by .ci/run. Every request must deliver exactly
// what the same request delivers alone (a cancelled one: a prefix of it), close() must end
// every request still running, and no RequestStream may outlive its users.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "channel/poller.hpp"
#include "channel/reader.hpp"
#include "serving/engine.hpp"
#include "stress_support.hpp"

using fc_test::expect;
using fc_test::failures;

using namespace std::chrono_literals;

namespace {

// An order-0 byte model (lm_kernels.inc's layout): every byte 1..255 equally likely, EOS (0)
// 40 times less, so completions run a few thousand tokens unless max_tokens stops them.
std::vector<uint32_t> uniform_byte_model() {
  const uint32_t slots = 16, entries = 256;
  std::vector<uint32_t> w(8 + 2 * slots + entries, 0);
  w[0] = 0x464c4d31u;  // FLM1
  w[1] = 4;            // log2 slots
  w[2] = 0;            // order
  w[3] = 8;
  w[4] = 8 + slots;
  w[5] = 8 + 2 * slots;
  w[6] = entries;
  w[7] = 8;  // 8-bit tokens, boundary (EOS) 0
  for (uint32_t s = 0; s < slots; ++s) w[8 + s] = 0xffffffffu;
  w[8] = 0;                       // key 0 (the order-0 context) hashes to slot 0
  w[8 + slots] = (0u << 9) | entries;  // its entries start at 0, 256 of them
  uint32_t cumulative = 0;
  for (uint32_t t = 0; t < entries; ++t) {
    cumulative += t == 0 ? 1 : 40;
    w[8 + 2 * slots + t] = (cumulative << 8) | t;
  }
  return w;
}

struct Case {
  fc::SubmitRequest request;
  int cancel_after = -1;  // tokens read before cancelling (-1: never)
};

struct Outcome {
  std::vector<uint32_t> tokens;
  fc::FinishReason reason = fc::FinishReason::None;
};

// Reads a stream to its end with blocking waits; cancels after `cancel_after` tokens.
Outcome read_blocking(fc::ServingEngine& engine, fc::RequestStream& s, int cancel_after) {
  Outcome out;
  std::vector<uint32_t> buf(4096);
  for (;;) {
    const size_t n = s.take(buf.data(), nullptr, buf.size());
    out.tokens.insert(out.tokens.end(), buf.begin(), buf.begin() + static_cast<long>(n));
    if (cancel_after >= 0 && out.tokens.size() >= static_cast<size_t>(cancel_after)) {
      engine.cancel(s);
      cancel_after = -1;
    }
    if (n != 0) continue;
    const auto res = s.wait(30.0);
    if (res == fc::WaitResult::Closed) break;
    if (res == fc::WaitResult::Timeout) {
      expect(false, "a request delivers within 30 s");
      break;
    }
  }
  out.reason = s.finish_reason();
  return out;
}

// A poller target that a thread can block on.
class WaitTarget final : public fc::PollerTarget {
 public:
  void complete(fc::PollCompletion) override {
    std::lock_guard lock(mutex_);
    ++done_;
    cv_.notify_all();
  }
  bool wait_for_one(uint64_t& seen) {
    std::unique_lock lock(mutex_);
    const bool ok = cv_.wait_for(lock, 30s, [&] { return done_ > seen; });
    seen = done_;
    return ok;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  uint64_t done_ = 0;
};

// The same, waiting through the process's poller thread (the asyncio path's C++ side).
Outcome read_polled(fc::RequestStream& s, const std::shared_ptr<fc::RequestStream>& owner) {
  Outcome out;
  auto target = std::make_shared<WaitTarget>();
  uint64_t seen = 0;
  std::vector<uint32_t> buf(4096);
  for (;;) {
    const size_t n = s.take(buf.data(), nullptr, buf.size());
    out.tokens.insert(out.tokens.end(), buf.begin(), buf.begin() + static_cast<long>(n));
    if (n != 0) continue;
    if (s.exhausted()) break;
    fc::Poller::instance().arm(owner, 30.0, target);
    if (!target->wait_for_one(seen)) {
      expect(false, "a polled request completes within 30 s");
      break;
    }
  }
  out.reason = s.finish_reason();
  return out;
}

std::vector<Case> random_cases(uint32_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<Case> cases(n);
  for (auto& c : cases) {
    const uint32_t len = 1 + rng() % 20;
    for (uint32_t i = 0; i < len; ++i) c.request.prompt.push_back(1 + rng() % 255);
    c.request.seed = static_cast<uint32_t>(rng());
    c.request.max_tokens = 1 + rng() % 400;
    if (rng() % 3 == 0) c.cancel_after = static_cast<int>(rng() % 60);
  }
  return cases;
}

// Each case alone, on an engine with one lane: what the batch must reproduce.
std::vector<Outcome> run_alone(const std::shared_ptr<fc::Device>& device,
                               const std::vector<uint32_t>& model, std::vector<Case>& cases) {
  fc::ServingEngine alone(device, fc::EngineConfig{1, 2, 1024, 0, 4096}, model);
  std::vector<Outcome> out;
  std::mt19937 rng(7);
  for (auto& c : cases) {
    out.push_back(read_blocking(alone, *alone.submit(c.request), -1));
    // A stop sequence from the request's own completion, for half of them: it must match.
    const auto& t = out.back().tokens;
    if (t.size() > 8 && rng() % 2 == 0) {
      const size_t at = rng() % (t.size() - 4);
      c.request.stop_sequences.push_back({t.begin() + static_cast<long>(at),
                                          t.begin() + static_cast<long>(at + 1 + rng() % 3)});
      out.back() = read_blocking(alone, *alone.submit(c.request), -1);
    }
  }
  alone.close();
  return out;
}

void batch_equals_alone() {
  auto device = fc::make_host_device();
  const auto model = uniform_byte_model();
  auto cases = random_cases(96, 3);
  const auto alone = run_alone(device, model, cases);
  bool stop_seen = false;
  for (const auto& o : alone) stop_seen |= o.reason == fc::FinishReason::Stop;
  expect(stop_seen, "some requests end at a stop sequence");

  fc::ServingEngine engine(device, fc::EngineConfig{8, 2, 1024, 0, 4096}, model);
  std::vector<Outcome> got(cases.size());
  std::vector<std::thread> threads;
  for (uint32_t part = 0; part < 4; ++part) {
    threads.emplace_back([&, part] {
      std::vector<std::pair<size_t, std::shared_ptr<fc::RequestStream>>> mine;
      for (size_t i = part; i < cases.size(); i += 4) {
        mine.emplace_back(i, engine.submit(cases[i].request));
        if (i % 5 == 0) std::this_thread::sleep_for(200us);  // others are mid-run meanwhile
      }
      for (auto& [i, s] : mine) {
        got[i] = part == 3 && cases[i].cancel_after < 0 ? read_polled(*s, s)
                                                          : read_blocking(engine, *s,
                                                                          cases[i].cancel_after);
      }
    });
  }
  for (auto& t : threads) t.join();
  bool equal = true, prefixes = true, cancelled_some = false;
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& want = alone[i].tokens;
    const auto& have = got[i].tokens;
    if (got[i].reason == fc::FinishReason::Cancelled) {
      cancelled_some = true;
      prefixes &= have.size() <= want.size() &&
                  std::equal(have.begin(), have.end(), want.begin());
    } else {
      equal &= have == want && got[i].reason == alone[i].reason;
    }
  }
  expect(equal, "every uncancelled request equals the same request alone");
  expect(prefixes, "every cancelled request delivered a prefix of its run alone");
  expect(cancelled_some, "some requests were cancelled mid-run");
  const auto stats = engine.stats();
  expect(stats.completed == cases.size() && stats.active_lanes == 0,
         "every request completed and every lane was freed");
  engine.close();
  device->close();
}

void close_ends_requests_in_flight() {
  auto device = fc::make_host_device();
  fc::ServingEngine engine(device, fc::EngineConfig{4, 2, 4096, 0, 4096}, uniform_byte_model());
  std::vector<std::shared_ptr<fc::RequestStream>> streams;
  for (uint32_t i = 0; i < 16; ++i) {
    fc::SubmitRequest r;
    r.prompt = {65, 66};
    r.seed = i;
    r.max_tokens = 4000;
    streams.push_back(engine.submit(r));
  }
  std::atomic<int> ended{0};
  std::vector<std::thread> readers;
  for (auto& s : streams) {
    readers.emplace_back([&, s] {
      read_blocking(engine, *s, -1);
      ++ended;
    });
  }
  std::this_thread::sleep_for(2ms);
  std::thread closer([&] { engine.close(); });
  for (auto& t : readers) t.join();
  closer.join();
  bool cancelled = false;
  for (auto& s : streams) cancelled |= s->finish_reason() == fc::FinishReason::Cancelled;
  expect(ended == 16 && cancelled, "close() ends every request still running or queued");
  bool refused = false;
  try {
    engine.submit(fc::SubmitRequest{{65}, 5, 0, false, {}});
  } catch (const fc::DeviceClosedError&) {
    refused = true;
  }
  expect(refused, "a closed engine refuses new requests");
  device->close();
}

}  // namespace

int main() {
  const int64_t live_before = fc::RequestStream::live();
  batch_equals_alone();
  close_ends_requests_in_flight();
  fc::Poller::instance().shutdown();  // drops the poller's last references, if any are late
  expect(fc::RequestStream::live() == live_before, "no RequestStream outlives its users");
  return failures == 0 ? 0 : 1;
}
