// Deadlines from a timeout in seconds, for every blocking wait of the core.
#pragma once

#include <chrono>
#include <cmath>

namespace fc {

// Timeouts above this are treated as "no timeout": a steady_clock time point more than ~292
// years ahead overflows, and converting an infinite or huge double to a duration is undefined
// (that made timeout=float('inf') time out at once).
inline constexpr double kMaxTimeoutSeconds = 1e9;  // ~31 years

// now + timeout_s, or time_point::max() for "wait forever" (timeout_s < 0, inf, NaN or above
// kMaxTimeoutSeconds).
inline std::chrono::steady_clock::time_point deadline_after(double timeout_s) {
  using clock = std::chrono::steady_clock;
  if (!(timeout_s >= 0.0) || timeout_s > kMaxTimeoutSeconds) return clock::time_point::max();
  return clock::now() +
         std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(timeout_s));
}

}  // namespace fc
