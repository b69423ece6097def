// The Metal API of the macOS 15 SDK (Xcode 16) beyond common/Metal/Metal.h: MSL 3.2, and the
// math properties that replace fastMathEnabled (all API_AVAILABLE(macos(15.0), ios(18.0))).
#pragma once
enum : MTLLanguageVersion { MTLLanguageVersion3_2 = 196610 };
typedef enum : NSInteger { MTLMathModeSafe = 0, MTLMathModeRelaxed = 1, MTLMathModeFast = 2 } MTLMathMode;
typedef enum : NSInteger { MTLMathFloatingPointFunctionsFast = 0, MTLMathFloatingPointFunctionsPrecise = 1 } MTLMathFloatingPointFunctions;
@interface MTLCompileOptions (MacOS15SDK)
@property MTLMathMode mathMode; @property MTLMathFloatingPointFunctions mathFloatingPointFunctions;
@end
