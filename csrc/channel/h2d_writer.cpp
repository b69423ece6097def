#include "channel/h2d_writer.hpp"

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>

#include "channel/h2d_channel.hpp"
#include "channel/single_consumer.hpp"
#include "common/atomic_word.hpp"
#include "device/deadline.hpp"

#if defined(__x86_64__) || defined(__i386__)
#define FC_WRITER_RELAX() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define FC_WRITER_RELAX() asm volatile("yield" ::: "memory")
#else
#define FC_WRITER_RELAX() ((void)0)
#endif

namespace fc {

// One producer at a time: a second thread inside a call gets ConcurrentUseError.
class H2DWriter::Hold : public ConsumerGuard {
 public:
  explicit Hold(H2DWriter& w)
      : ConsumerGuard(w.busy_,
                      "a host-to-device channel's writer was used from two threads at once: a "
                      "channel has a single producer; push from one thread (or serialise the "
                      "calls)") {}
};

bool H2DWriter::epoch_ready() {
  const uint32_t encoded = channel_.inits_encoded();
  if (encoded == 0) {
    throw ChannelError("push: the " + channel_.describe() +
                       " was never initialised: encode its init (ch.encode_init(cb)) and commit "
                       "it before pushing");
  }
  // Acquire pairs with init's release store of EPOCH: a writer that sees the new epoch sees
  // its reset slots and READ_IDX = 0, so item 0 of the epoch goes into a clean ring.
  const uint32_t epoch =
      atomic_word::load_acquire(&channel_.header_words()[h2d::kH2D_EPOCH]);
  if (epoch < encoded) return false;  // an encoded init has not run yet
  if (epoch != device_epoch_) {       // an init ran since the last item: a new epoch
    device_epoch_ = epoch;
    written_.store(0, std::memory_order_relaxed);
    closed_.store(false, std::memory_order_relaxed);
  }
  return true;
}

uint32_t H2DWriter::room() const {
  // Acquire pairs with the device's store of its count after it took an item (a release for
  // records; for u32 items a store that depends on the loaded tag, docs/protocol.md): a slot
  // the device has counted as taken may be written again.
  const uint32_t taken =
      atomic_word::load_acquire(&channel_.header_words()[h2d::kH2D_READ_IDX]);
  const uint32_t in_flight = static_cast<uint32_t>(written_.load(std::memory_order_relaxed)) - taken;
  return channel_.capacity() - std::min(in_flight, channel_.capacity());
}

uint64_t H2DWriter::taken() const {
  const uint64_t written = written_.load(std::memory_order_relaxed);
  const uint32_t taken =
      atomic_word::load_relaxed(&channel_.header_words()[h2d::kH2D_READ_IDX]);
  return written - static_cast<uint32_t>(static_cast<uint32_t>(written) - taken);
}

void H2DWriter::write_item(const uint32_t* words) {
  const uint64_t i = written_.load(std::memory_order_relaxed);
  const uint32_t n = channel_.record_words();
  uint32_t* slot = channel_.data_words() + (i & (channel_.capacity() - 1)) * channel_.slot_words();
  const uint32_t tag = static_cast<uint32_t>(i + 1);
  if (n == 1) {
    // (value, tag) in one 8-byte store: the device's one 8-byte load sees both or neither.
    atomic_word::store_pair_release(slot, words[0], tag);
  } else {
    for (uint32_t w = 0; w < n; ++w) atomic_word::store_relaxed(&slot[w], words[w]);
    atomic_word::store_release(&slot[n], tag);  // after the payload, for the device's acquire
  }
  written_.store(i + 1, std::memory_order_relaxed);
  // Informational (the device never reads it): relaxed.
  atomic_word::store_relaxed(&channel_.header_words()[h2d::kH2D_WRITE_IDX], tag);
}

bool H2DWriter::try_push(const uint32_t* words) {
  Hold hold(*this);
  channel_.device()->check_usable("push into a host-to-device channel");
  if (!epoch_ready()) return false;
  if (closed()) {
    throw ChannelError("push: the " + channel_.describe() +
                       " is closed (writer.close()); a new init (encode_init) reopens it");
  }
  if (room() == 0) return false;
  write_item(words);
  return true;
}

template <class Ready, class Describe>
void H2DWriter::wait_until(Ready&& ready, double timeout_s,
                           const std::function<bool()>& interrupted, Describe&& describe_timeout) {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  const auto deadline = deadline_after(timeout_s);
  auto last_check = start;
  auto sleep = std::chrono::microseconds(20);
  for (uint64_t tries = 0;; ++tries) {
    if (ready()) return;
    const auto now = clock::now();
    if (timeout_s == 0 || now >= deadline) throw TimeoutError(describe_timeout());
    if (now - last_check > std::chrono::milliseconds(1)) {
      last_check = now;
      channel_.device()->check_usable("push into a host-to-device channel");
      if (interrupted && interrupted()) throw InterruptedError();
    }
    // A device that takes items steadily frees a slot within microseconds: spin for the first
    // 100 us, yield until 1 ms, then sleep 20 us doubling to 1 ms (a stalled device costs
    // ~0.1% of a core; the wake-up after a long stall is at most one sleep late).
    const auto waited = now - start;
    if (waited < std::chrono::microseconds(100)) {
      for (int i = 0; i < 16; ++i) FC_WRITER_RELAX();
    } else if (waited < std::chrono::milliseconds(1)) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_until(std::min(deadline, now + sleep));
      sleep = std::min(sleep * 2, std::chrono::microseconds(1000));
    }
  }
}

void H2DWriter::push(const uint32_t* words, double timeout_s,
                     const std::function<bool()>& interrupted) {
  push_many(words, 1, timeout_s, interrupted);
}

void H2DWriter::push_many(const uint32_t* words, size_t count, double timeout_s,
                          const std::function<bool()>& interrupted) {
  Hold hold(*this);
  channel_.device()->check_usable("push into a host-to-device channel");
  const uint32_t n = channel_.record_words();
  size_t done = 0;
  uint32_t free = 0;
  auto ready = [&] {
    if (!epoch_ready()) return false;
    if (closed()) {
      throw ChannelError("push: the " + channel_.describe() +
                         " is closed (writer.close()); a new init (encode_init) reopens it");
    }
    free = room();
    return free != 0;
  };
  auto why = [&] {
    const std::string pushed = count > 1 ? "pushed " + std::to_string(done) + " of " +
                                               std::to_string(count) + " items, then "
                                         : "";
    const uint32_t encoded = channel_.inits_encoded();
    if (atomic_word::load_acquire(&channel_.header_words()[h2d::kH2D_EPOCH]) < encoded) {
      return "push: " + pushed + "the " + channel_.describe() + "'s init has not run on the "
             "device yet (commit the command buffer that encodes it)" +
             (timeout_s == 0 ? "; timeout=0 does not wait" : "");
    }
    return "push: " + pushed + "the " + channel_.describe() + " is full: the device has not "
           "taken the " + std::to_string(channel_.capacity()) + " items in it" +
           (timeout_s == 0 ? "; timeout=0 does not wait" : " within the timeout");
  };
  while (done < count) {
    wait_until(ready, timeout_s, interrupted, why);
    const size_t batch = std::min<size_t>(free, count - done);
    for (size_t k = 0; k < batch; ++k) write_item(words + (done + k) * n);
    done += batch;
  }
}

void H2DWriter::close(double timeout_s, const std::function<bool()>& interrupted) {
  Hold hold(*this);
  channel_.device()->check_usable("close a host-to-device channel");
  wait_until([&] { return epoch_ready(); }, timeout_s, interrupted, [&] {
    return "close: the " + channel_.describe() + "'s init has not run on the device yet";
  });
  if (closed()) return;
  // Release: every slot store of this epoch precedes it, so a device that acquires "closed"
  // and still finds its next slot empty knows no item is on the way.
  atomic_word::store_release(&channel_.header_words()[h2d::kH2D_FLAGS], h2d::kFlagClosed);
  closed_.store(true, std::memory_order_relaxed);
}

}  // namespace fc
