#pragma once
#include "device/device.hpp"

namespace fc::host {

using KernelFn = void (*)(unsigned* b0, unsigned* b1, unsigned* b2, unsigned* b3, unsigned* b4,
                          unsigned* b5, unsigned* b6, unsigned* b7, const unsigned* sc,
                          unsigned gid);

// The shared kernel bodies compiled as C++, indexed by KernelId.
KernelFn kernel_function(KernelId id);

// Runs one dispatch: every thread index of the grid, in order, on the calling thread.
void run_dispatch(const Dispatch& d);

}  // namespace fc::host
