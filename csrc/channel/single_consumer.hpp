// One consumer per channel, for every channel kind:
//   ConsumerSlot<Reader>  held by a channel: its live reader (weak: the reader holds the
//                         channel) and where the last reader stopped, so that channel.reader()
//                         returns the live reader or a new one continuing there;
//   ConsumerGuard         held by a reader for each call: two threads using one reader at once
//                         get ConcurrentUseError instead of racing its cursor and cache.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>

#include "channel/channel_cursor.hpp"
#include "device/device.hpp"

namespace fc {

template <class Reader>
class ConsumerSlot {
 public:
  // The live reader, or make(): a new one (it reads position() when it attaches).
  std::shared_ptr<Reader> get(const std::function<std::shared_ptr<Reader>()>& make) {
    std::lock_guard lock(mutex_);
    if (auto live = reader_.lock()) return live;
    auto fresh = make();
    reader_ = fresh;
    return fresh;
  }
  // A reader that closes: the next get() makes a fresh one.
  void forget(const Reader* reader) {
    std::lock_guard lock(mutex_);
    if (reader_.lock().get() == reader) reader_.reset();
  }
  ConsumerPosition position() const {
    std::lock_guard lock(mutex_);
    return position_;
  }
  void save(const ConsumerPosition& position) {
    std::lock_guard lock(mutex_);
    position_ = position;
  }

 private:
  mutable std::mutex mutex_;
  std::weak_ptr<Reader> reader_;
  ConsumerPosition position_;
};

class ConsumerGuard {
 public:
  explicit ConsumerGuard(std::atomic_flag& busy)
      : ConsumerGuard(busy, "a channel's reader was used from two threads at once: a channel has "
                            "a single consumer; read it from one thread (or serialise the calls)") {}
  // The same guard for another single-user object (a host-to-device channel's writer).
  ConsumerGuard(std::atomic_flag& busy, const char* conflict) : busy_(busy) {
    if (busy_.test_and_set(std::memory_order_acquire)) throw ConcurrentUseError(conflict);
  }
  ~ConsumerGuard() { busy_.clear(std::memory_order_release); }
  ConsumerGuard(const ConsumerGuard&) = delete;
  ConsumerGuard& operator=(const ConsumerGuard&) = delete;

 private:
  std::atomic_flag& busy_;
};

// Throws when a reader cannot be read: closed (ChannelError), or its device closed or faulted.
inline void check_reader_usable(bool closed, const Device& device) {
  if (closed) {
    throw ChannelError("this reader was closed; get the channel's reader again with "
                       "channel.reader()");
  }
  device.check_usable("read a channel");
}

}  // namespace fc
