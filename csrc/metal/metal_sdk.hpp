// What the SDK this build compiles against can express, decided at compile time.
//
// `@available` checks the OS the code runs on; it cannot make a symbol exist that the SDK's
// headers do not declare. MTLLanguageVersion3_2, MTLCompileOptions.mathMode (MTLMathModeSafe)
// and .mathFloatingPointFunctions are declared only from the macOS 15 / iOS 18 SDK (Xcode 16),
// and the MSL this backend compiles needs version 3.2 (coherent(system) stores and the system
// thread scope: how the CPU reads a channel while the GPU runs). So with an older SDK (Xcode 15,
// the default on macOS 14) the backend still builds, and probe() reports it unavailable with
// kMetalSdkTooOldReason; nothing that names a macOS 15 symbol is compiled.
#pragma once

#include <Availability.h>

#if defined(__MAC_15_0) && defined(__MAC_OS_X_VERSION_MAX_ALLOWED) && \
    __MAC_OS_X_VERSION_MAX_ALLOWED >= __MAC_15_0
#define FC_METAL_SDK_HAS_MSL_3_2 1
#elif defined(__IPHONE_18_0) && defined(__IPHONE_OS_VERSION_MAX_ALLOWED) && \
    __IPHONE_OS_VERSION_MAX_ALLOWED >= __IPHONE_18_0
#define FC_METAL_SDK_HAS_MSL_3_2 1
#else
#define FC_METAL_SDK_HAS_MSL_3_2 0
#endif

namespace fc::metal {

inline constexpr const char* kMetalSdkTooOldReason =
    "this package was built with an SDK older than macOS 15 (Xcode 15 or older), which cannot "
    "request MSL 3.2 (coherent(system) stores let the CPU read a channel while the GPU runs); "
    "rebuild it with Xcode 16 or its command line tools on macOS 14.5 or later";

}  // namespace fc::metal
