// Exceptions the core throws; the bindings map each to its own Python class.
#pragma once

#include <stdexcept>
#include <string>

namespace fc {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// Device("x") for a backend that was not built, or has no usable device here.
struct BackendUnavailableError : Error {
  using Error::Error;
};
// A device, buffer, channel or reader used after Device.close().
struct DeviceClosedError : Error {
  using Error::Error;
};
// A command buffer misused (committed twice, encoded after commit) or failed on the device.
struct CommandBufferError : Error {
  using Error::Error;
};
// A device fault (failed launch, kernel trap): sticky, reported by every later call.
struct DeviceError : Error {
  using Error::Error;
};
// A channel in a state that cannot be read (never initialised, re-initialised under a reader).
struct ChannelError : Error {
  using Error::Error;
};
// One single-consumer object (a channel's reader) used from two threads at the same time.
struct ConcurrentUseError : Error {
  using Error::Error;
};
// A blocking wait ran out of time (Python's TimeoutError).
struct TimeoutError : Error {
  using Error::Error;
};
// A blocking wait was interrupted by a Python signal handler that raised (Ctrl-C); the
// Python error is already set.
struct InterruptedError : Error {
  InterruptedError() : Error("interrupted") {}
};

}  // namespace fc
