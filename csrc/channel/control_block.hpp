// ControlBlock: a small shared block of u32 words that the CPU writes while a command buffer
// runs and that every decode step given it reads (cancel, stop after N more tokens). Layout and
// word meanings: csrc/channel/control_layout.hpp; protocol: docs/protocol.md "Control block".
//
// Any thread may write it (cancel from a signal handler's thread, a server's disconnect
// handler): every request is one release store or, for stop_after, a compare-exchange, and
// every request is idempotent.
#pragma once

#include <memory>

#include "channel/control_layout.hpp"
#include "device/device.hpp"

namespace fc {

class ControlBlock {
 public:
  // Allocates the block in shared memory with no request in it.
  explicit ControlBlock(std::shared_ptr<Device> device);

  const std::shared_ptr<Device>& device() const { return device_; }
  // The buffer a kernel's `control` parameter takes.
  const std::shared_ptr<Buffer>& buffer() const { return buffer_; }

  // The next decode step that reads the block stops (stop flag 4) before sampling.
  void cancel();
  // Steps stop (stop flag 5) once the turn has generated `limit` tokens; replaces any limit.
  void stop_at(uint32_t limit);
  // Stops after at most `more` tokens beyond the count the device last reported (GENERATED);
  // never raises a limit already set (the smaller one stays). Returns the limit in force.
  uint32_t stop_after(uint32_t more);
  // No request, counts zero: for a new run, when no command buffer using the block is in flight
  // (a step running meanwhile could report into the cleared words).
  void reset();

  bool cancel_requested() const;
  uint32_t stop_limit() const;  // control::kNoLimit when none
  uint32_t generated() const;   // tokens of the turn, as the last emitting step reported
  uint32_t stopped() const;     // the stop flag a step set because of the block, or 0

 private:
  uint32_t* words() const { return static_cast<uint32_t*>(buffer_->host_ptr()); }

  std::shared_ptr<Device> device_;
  std::shared_ptr<Buffer> buffer_;
};

}  // namespace fc
