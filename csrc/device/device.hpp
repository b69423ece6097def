// The device interface every backend implements: a Device allocates buffers and queues; a
// Queue takes CommandBuffers in order; a CommandBuffer records kernel dispatches, is
// committed once, and has a status, completion handlers and wait_until_completed().
// Modelled on a GPU API (Metal's, closely); the shared state machine lives in
// command_buffer.cpp so that each backend only says how to run a recorded list.
#pragma once

#include <array>
#include <condition_variable>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "device/errors.hpp"
#include "device/wake_signal.hpp"
#include "kernels/kernel_list.hpp"

namespace fc {

class Device;
class Queue;
class CommandBuffer;

enum class Storage {
  Shared,   // visible to the device and the CPU (host-mapped pinned / MTLStorageModeShared)
  Private,  // device-local; the CPU has no pointer to it
};

class Buffer {
 public:
  Buffer(std::shared_ptr<Device> device, size_t bytes, Storage storage, void* host_ptr,
         void* device_ptr)
      : device_(std::move(device)),
        bytes_(bytes),
        storage_(storage),
        host_ptr_(host_ptr),
        device_ptr_(device_ptr) {}
  virtual ~Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  size_t size_bytes() const { return bytes_; }
  Storage storage() const { return storage_; }
  // CPU address; nullptr for Private storage.
  void* host_ptr() const { return host_ptr_; }
  // The address kernels see (equal to host_ptr() on the host backend).
  void* device_ptr() const { return device_ptr_; }
  const std::shared_ptr<Device>& device() const { return device_; }

 private:
  std::shared_ptr<Device> device_;  // keeps the backend's allocator alive while we exist
  size_t bytes_;
  Storage storage_;
  void* host_ptr_;
  void* device_ptr_;
};

// One recorded kernel dispatch. Fixed size (no heap) so that a window of dispatches is one
// contiguous vector.
struct Dispatch {
  KernelId kernel;
  uint32_t grid;  // threads, one dimension
  std::array<void*, kBufferSlots> buffers{};  // device pointers; nullptr = slot unused
  std::array<uint32_t, kScalarSlots> scalars{};
};

// A check run when a command buffer's work has completed, on the thread that completes it: ""
// when all is well, else the message the command buffer fails with (a host-to-device channel
// reports a failed pop this way). Keyed by the object it checks: one check per object.
struct CompletionCheck {
  const void* key;
  std::function<std::string()> check;
};

// A list of dispatches recorded once and committed many times (a decode window of W steps
// encoded once, then replayed). A backend may attach a compiled form on first replay
// (CUDA: an instantiated graph) in backend_state.
class Window {
 public:
  Window(std::shared_ptr<Queue> queue, std::vector<Dispatch> dispatches,
         std::vector<std::shared_ptr<Buffer>> retained, std::vector<CompletionCheck> checks = {})
      : queue_(std::move(queue)), dispatches_(std::move(dispatches)),
        retained_(std::move(retained)), checks_(std::move(checks)) {}
  const std::vector<Dispatch>& dispatches() const { return dispatches_; }
  // Every replay runs the checks of the command buffer the window was made from.
  const std::vector<CompletionCheck>& completion_checks() const { return checks_; }
  const std::shared_ptr<Queue>& queue() const { return queue_; }
  // Backend-owned; guarded by backend_mutex.
  std::shared_ptr<void> backend_state;
  std::mutex backend_mutex;

 private:
  std::shared_ptr<Queue> queue_;
  std::vector<Dispatch> dispatches_;
  std::vector<std::shared_ptr<Buffer>> retained_;  // buffers live as long as the window
  std::vector<CompletionCheck> checks_;
};

enum class CommandBufferStatus { NotCommitted, Committed, Completed, Error };
const char* status_name(CommandBufferStatus s);

class CommandBuffer : public std::enable_shared_from_this<CommandBuffer> {
 public:
  using Handler = std::function<void(CommandBuffer&)>;

  explicit CommandBuffer(std::shared_ptr<Queue> queue, std::shared_ptr<Window> window = nullptr);
  virtual ~CommandBuffer() = default;

  // Records a dispatch; `buffers` are kept alive as long as the command buffer (and any window
  // made from it).
  void dispatch(KernelId kernel, uint32_t grid,
                const std::array<std::shared_ptr<Buffer>, kBufferSlots>& buffers,
                const std::array<uint32_t, kScalarSlots>& scalars);
  // Adds a check run when the work has completed (at most one per key; before commit). A
  // check that returns a message fails the command buffer with it.
  void add_completion_check(CompletionCheck check);
  // Hands the recorded work to the queue. A second commit throws CommandBufferError.
  void commit();
  // Runs after completion (or failure), on the device's completion thread; if the command
  // buffer already finished, runs at once on the calling thread.
  void add_completed_handler(Handler handler);
  // Blocks until completed or failed; false on timeout (timeout_s < 0: no limit). Throws
  // CommandBufferError if the command buffer failed. `interrupted` (optional) is polled
  // every few milliseconds; when it returns true the wait throws InterruptedError.
  bool wait_until_completed(double timeout_s, const std::function<bool()>& interrupted = {});

  CommandBufferStatus status() const { return status_.load(std::memory_order_acquire); }
  std::string error_message() const;
  size_t dispatch_count() const { return dispatches().size(); }
  // Copies the recorded dispatches into a Window that Queue::replay commits again and again;
  // the window keeps the buffers alive. Allowed before or after commit.
  std::shared_ptr<Window> to_window() const;
  // The window this command buffer replays, or nullptr when it recorded its own dispatches.
  const std::shared_ptr<Window>& window() const { return window_; }
  const std::shared_ptr<Queue>& queue() const { return queue_; }

  // ---- for backends ----
  const std::vector<Dispatch>& dispatches() const {
    return window_ ? window_->dispatches() : dispatches_;
  }
  void mark_completed();
  void mark_failed(const std::string& message);

 private:
  void finish(CommandBufferStatus final_status, const std::string& message);

  std::shared_ptr<Queue> queue_;
  std::shared_ptr<Window> window_;
  std::vector<Dispatch> dispatches_;
  std::vector<std::shared_ptr<Buffer>> retained_;
  std::vector<CompletionCheck> checks_;
  std::atomic<CommandBufferStatus> status_{CommandBufferStatus::NotCommitted};
  mutable std::mutex mutex_;
  std::vector<Handler> handlers_;
  std::string error_;
  std::condition_variable done_cv_;
};

class Queue : public std::enable_shared_from_this<Queue> {
 public:
  explicit Queue(std::shared_ptr<Device> device) : device_(std::move(device)) {}
  virtual ~Queue() = default;
  std::shared_ptr<CommandBuffer> command_buffer();
  // Commits a new command buffer that runs `window`'s dispatches; returns it for waiting.
  std::shared_ptr<CommandBuffer> replay(const std::shared_ptr<Window>& window);
  const std::shared_ptr<Device>& device() const { return device_; }
  // Backend: run `cb` after every earlier committed command buffer of this queue.
  virtual void submit(std::shared_ptr<CommandBuffer> cb) = 0;

 private:
  std::shared_ptr<Device> device_;
};

class Device : public std::enable_shared_from_this<Device> {
 public:
  virtual ~Device() = default;

  virtual std::string backend() const = 0;  // "cpu", "cuda", "metal"
  virtual std::string name() const = 0;     // e.g. "cpu (device thread)", "NVIDIA H100 ..."
  virtual std::shared_ptr<Buffer> new_buffer(size_t bytes, Storage storage) = 0;
  virtual std::shared_ptr<Queue> new_queue() = 0;
  // Waits for committed work (up to a bound), stops the device's threads, and makes every
  // later use of the device, its buffers, channels and readers raise DeviceClosedError.
  void close();

  bool closed() const { return closed_.load(std::memory_order_acquire); }
  void check_usable(const char* what) const;  // throws DeviceClosedError / DeviceError
  // A fault is sticky: every later call on the device, and every blocked reader, reports it.
  void record_fault(const std::string& message);
  bool faulted() const { return faulted_.load(std::memory_order_acquire); }
  std::string fault_message() const;
  // The slot protocol of channels made on this device without one (docs/protocol.md): 1 unless
  // set (Python: Device(spec, slot_protocol=2) or FOUNDRY_CHANNELS_SLOT_PROTOCOL=2).
  uint32_t slot_protocol() const { return slot_protocol_.load(std::memory_order_relaxed); }
  void set_slot_protocol(uint32_t protocol) {
    slot_protocol_.store(protocol, std::memory_order_relaxed);
  }
  // When a command buffer was last committed on this device (steady-clock ns, 0 = never): a
  // hint for waiting readers (channel/wait_strategy.hpp: spin right after a commit). Relaxed:
  // it orders nothing, readers re-check the channel itself.
  void note_commit() { last_commit_ns_.store(steady_now_ns(), std::memory_order_relaxed); }
  int64_t last_commit_ns() const { return last_commit_ns_.load(std::memory_order_relaxed); }
  // Whether a kernel may wait for a value the CPU writes while its command buffer runs
  // (kernel_waits_on_cpu: h2d_pop_wait). False on Metal, which does not promise that such a
  // write becomes visible before the command buffer completes (DESIGN.md); encode_rules.cpp
  // refuses those kernels there. refuse_cpu_waits() makes any device behave so, for good: the
  // refusal's tests run on Linux.
  bool kernels_may_wait_on_cpu() const {
    return backend_allows_cpu_waits() && !cpu_waits_refused_.load(std::memory_order_relaxed);
  }
  void refuse_cpu_waits() { cpu_waits_refused_.store(true, std::memory_order_relaxed); }

 protected:
  virtual void shutdown() = 0;
  virtual bool backend_allows_cpu_waits() const { return true; }

 private:
  std::atomic<bool> closed_{false};
  std::atomic<bool> faulted_{false};
  std::atomic<uint32_t> slot_protocol_{1};  // see slot_protocol()
  std::atomic<int64_t> last_commit_ns_{0};
  std::atomic<bool> cpu_waits_refused_{false};
  mutable std::mutex fault_mutex_;
  std::string fault_;
};

// Opens "cpu", "cuda", "cuda:N" or "metal". Throws BackendUnavailableError with the reason.
std::shared_ptr<Device> open_device(const std::string& spec);
// "" when the backend can open a device here, else why not.
std::string backend_unavailable_reason(const std::string& backend);

// Backend factories; the stubs in no_cuda.cpp / no_metal.cpp throw BackendUnavailableError.
std::shared_ptr<Device> make_host_device();
std::shared_ptr<Device> make_cuda_device(int ordinal);
std::shared_ptr<Device> make_metal_device();
std::string cuda_unavailable_reason();
std::string metal_unavailable_reason();

}  // namespace fc
