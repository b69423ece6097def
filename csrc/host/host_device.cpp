// The host backend ("cpu"): a device thread executes committed command buffers in order,
// asynchronously, like a GPU queue. It is a real concurrent producer: the thread that
// commits returns at once and can drain channels while the device thread pushes.
#include <cstdlib>
#include <cstring>

#include "device/device.hpp"
#include "device/worker_thread.hpp"
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

constexpr const char* kClosedBeforeRun = "the device was closed before this command buffer ran";

class HostDevice final : public Device {
 public:
  HostDevice()
      : worker_([this](std::shared_ptr<CommandBuffer>& cb) { execute(*cb); },
                [this] { host::bind_cancel_flag(&cancel_); }) {}
  ~HostDevice() override { stop(); }

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
    if (auto refused = worker_.push(std::move(cb))) (*refused)->mark_failed(kClosedBeforeRun);
  }

 protected:
  // close(): the running command buffer stops at its next dispatch (or inside a long kernel
  // loop, fc_cancel_requested) and fails; queued ones fail without running. So close()
  // returns within about one dispatch of a short kernel, never after the whole queue.
  void shutdown() override { stop(); }

 private:
  void stop() {
    cancel_.store(true, std::memory_order_release);
    for (auto& cb : worker_.stop()) cb->mark_failed(kClosedBeforeRun);
  }

  void execute(CommandBuffer& cb) {
    if (faulted()) {
      cb.mark_failed("the device faulted earlier: " + fault_message());
      return;
    }
    try {
      for (const Dispatch& d : cb.dispatches()) {
        if (cancel_.load(std::memory_order_acquire)) throw host::Cancelled();
        host::run_dispatch(d);
      }
    } catch (const host::Cancelled&) {
      cb.mark_failed("the device was closed while this command buffer was running");
      return;
    } catch (const std::exception& e) {
      record_fault(e.what());
      cb.mark_failed(e.what());
      return;
    }
    cb.mark_completed();
  }

  std::atomic<bool> cancel_{false};
  WorkerThread<std::shared_ptr<CommandBuffer>> worker_;  // last: starts after the rest
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
