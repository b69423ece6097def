// A stand-in for Apple's Foundation headers, for tests/test_metal_build.py only: it declares just
// the API that csrc/metal/*.mm uses, with the signatures of Apple's documentation, so that
// clang can type-check the Objective-C++ (ARC, blocks, the C++ around it) on Linux. It proves
// nothing about Metal itself; a spelling that is wrong here and in the .mm alike still needs
// a Mac to catch. Shared by both SDK variants; <Availability.h> comes from the variant's folder
// (macos14/ or macos15/), as the real Foundation pulls in the SDK's availability macros.
#pragma once
#include <Availability.h>
typedef long NSInteger; typedef unsigned long NSUInteger; typedef signed char BOOL;
#define YES ((BOOL)1)
#define NO ((BOOL)0)
typedef struct { NSUInteger location, length; } NSRange;
static inline NSRange NSMakeRange(NSUInteger l, NSUInteger n) { NSRange r = {l, n}; return r; }
#define nil ((id)0)
@protocol NSObject @end
__attribute__((objc_root_class)) @interface NSObject <NSObject>
+ (instancetype)new; + (instancetype)alloc; - (instancetype)init;
@end
@interface NSString : NSObject
+ (instancetype)stringWithUTF8String:(const char*)s; @property(readonly) const char* UTF8String;
@end
@interface NSError : NSObject
@property(readonly, copy) NSString* localizedDescription; @property(readonly, copy) NSString* domain; @property(readonly) NSInteger code;
@end
