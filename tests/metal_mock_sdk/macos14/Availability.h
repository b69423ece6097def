// The macOS 14 SDK's availability macros, as far as tests/test_metal_build.py needs them: the
// newest version it names is 14.x, and __MAC_15_0 is not defined (Availability.h,
// AvailabilityVersions.h of Xcode 15).
#pragma once
#define __MAC_14_0 140000
#define __MAC_OS_X_VERSION_MAX_ALLOWED __MAC_14_0
