// The Metal API of the macOS 14 SDK (Xcode 15) beyond common/Metal/Metal.h: none. MSL 3.1 is
// the newest language version it names, and MTLCompileOptions has no mathMode or
// mathFloatingPointFunctions: those, and MTLLanguageVersion3_2, came with the macOS 15 SDK.
#pragma once
