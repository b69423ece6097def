// The macOS 15 SDK's availability macros, as far as tests/test_metal_build.py needs them
// (Availability.h, AvailabilityVersions.h of Xcode 16).
#pragma once
#define __MAC_14_0 140000
#define __MAC_15_0 150000
#define __MAC_OS_X_VERSION_MAX_ALLOWED __MAC_15_0
