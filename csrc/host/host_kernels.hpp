#pragma once
#include <atomic>

#include "device/device.hpp"

namespace fc::host {

// A kernel's entry point: one thread index of a dispatch.
using KernelFn = void (*)(const Dispatch& d, unsigned gid);

// The shared kernel bodies compiled as C++, indexed by KernelId.
KernelFn kernel_function(KernelId id);

// Thrown by run_dispatch when the device thread's cancel flag is set: the device is closing.
struct Cancelled {};

// Binds the calling (device) thread to its device's cancel flag; kernels and run_dispatch
// poll it (fc_cancel_requested in the host prelude).
void bind_cancel_flag(const std::atomic<bool>* flag);
bool cancel_requested();

// Runs one dispatch: every thread index of the grid, in order, on the calling thread. Throws
// Cancelled when the device is being closed (checked every few thousand thread indices and
// after the dispatch, so a kernel that returned early never counts as completed).
void run_dispatch(const Dispatch& d);

}  // namespace fc::host
