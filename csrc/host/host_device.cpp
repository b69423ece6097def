// The host backend ("cpu"): a device thread executes committed command buffers in order,
// asynchronously, like a GPU queue. It is a real concurrent producer: the thread that
// commits returns at once and can drain channels while the device thread pushes.
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <thread>

#include "device/device.hpp"
#include "host/host_kernels.hpp"

namespace fc {
namespace {

class HostBuffer final : public Buffer {
 public:
  HostBuffer(std::shared_ptr<Device> device, size_t bytes, Storage storage, void* memory)
      : Buffer(std::move(device), bytes, storage, storage == Storage::Shared ? memory : nullptr,
               memory),
        memory_(memory) {}
  ~HostBuffer() override { std::free(memory_); }

 private:
  void* memory_;
};

class HostDevice final : public Device {
 public:
  HostDevice() : thread_([this] { run(); }) {}
  ~HostDevice() override { stop_thread(); }

  std::string backend() const override { return "cpu"; }
  std::string name() const override { return "cpu (host device thread)"; }

  std::shared_ptr<Buffer> new_buffer(size_t bytes, Storage storage) override {
    check_usable("allocate a buffer");
    // 64-byte aligned (one cache line) and zeroed, like a fresh GPU allocation is not:
    // zeroing here keeps tests deterministic at no cost on the hot path.
    size_t rounded = ((bytes ? bytes : 1) + 63) / 64 * 64;
    void* memory = std::aligned_alloc(64, rounded);
    if (!memory) throw std::bad_alloc();
    std::memset(memory, 0, rounded);
    return std::make_shared<HostBuffer>(shared_from_this(), bytes, storage, memory);
  }

  std::shared_ptr<Queue> new_queue() override;

  void enqueue(std::shared_ptr<CommandBuffer> cb) {
    {
      std::lock_guard lock(mutex_);
      if (!stopping_) {
        pending_.push_back(std::move(cb));
        cv_.notify_one();
        return;
      }
    }
    cb->mark_failed("the device was closed before this command buffer ran");
  }

 protected:
  void shutdown() override { stop_thread(); }

 private:
  void stop_thread() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  void run() {
    for (;;) {
      std::shared_ptr<CommandBuffer> cb;
      {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [&] { return stopping_ || !pending_.empty(); });
        if (pending_.empty()) return;
        cb = std::move(pending_.front());
        pending_.pop_front();
        if (stopping_) {
          // Closing: what has not started is failed, not silently dropped.
          lock.unlock();
          cb->mark_failed("the device was closed before this command buffer ran");
          continue;
        }
      }
      execute(*cb);
    }
  }

  void execute(CommandBuffer& cb) {
    if (faulted()) {
      cb.mark_failed("the device faulted earlier: " + fault_message());
      return;
    }
    try {
      for (const Dispatch& d : cb.dispatches()) host::run_dispatch(d);
    } catch (const std::exception& e) {
      record_fault(e.what());
      cb.mark_failed(e.what());
      return;
    }
    cb.mark_completed();
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<CommandBuffer>> pending_;
  bool stopping_ = false;
  std::thread thread_;  // last member: starts after the rest is constructed
};

class HostQueue final : public Queue {
 public:
  HostQueue(std::shared_ptr<Device> device, HostDevice* host)
      : Queue(std::move(device)), host_(host) {}
  // One FIFO per device keeps every queue in order (and queues in commit order).
  void submit(std::shared_ptr<CommandBuffer> cb) override { host_->enqueue(std::move(cb)); }

 private:
  HostDevice* host_;
};

std::shared_ptr<Queue> HostDevice::new_queue() {
  check_usable("create a queue");
  return std::make_shared<HostQueue>(shared_from_this(), this);
}

}  // namespace

std::shared_ptr<Device> make_host_device() { return std::make_shared<HostDevice>(); }

}  // namespace fc
