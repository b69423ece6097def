// A stand-in for Apple's Metal headers, for tests/test_metal_build.py only: it declares just
// the API that csrc/metal/*.mm uses, with the signatures of Apple's documentation, so that
// clang can type-check the Objective-C++ (ARC, blocks, the C++ around it) on Linux. It proves
// nothing about Metal itself; a spelling that is wrong here and in the .mm alike still needs
// a Mac to catch. This file holds what the macOS 14 and 15 SDKs both declare;
// <Metal/MTLSDKAdditions.h> (in macos14/ or macos15/) what differs between them.
#pragma once
#import <Foundation/Foundation.h>
typedef struct { NSUInteger width, height, depth; } MTLSize;
static inline MTLSize MTLSizeMake(NSUInteger w, NSUInteger h, NSUInteger d) { MTLSize s = {w, h, d}; return s; }
typedef enum : NSUInteger { MTLResourceStorageModeShared = 0, MTLResourceStorageModePrivate = 32 } MTLResourceOptions;
typedef enum : NSInteger { MTLGPUFamilyApple7 = 1007, MTLGPUFamilyMetal3 = 5001 } MTLGPUFamily;
// Language versions are (major << 16) | minor; a newer SDK adds enumerators (MTLSDKAdditions.h).
typedef NSUInteger MTLLanguageVersion;
enum : MTLLanguageVersion { MTLLanguageVersion3_0 = 196608, MTLLanguageVersion3_1 = 196609 };
typedef enum : NSUInteger { MTLDispatchTypeSerial = 0 } MTLDispatchType;
typedef enum : NSUInteger { MTLCommandBufferStatusCompleted = 4, MTLCommandBufferStatusError = 5 } MTLCommandBufferStatus;
@protocol MTLBuffer <NSObject> @property(readonly) void* contents; @property(readonly) NSUInteger length; @end
@protocol MTLFunction <NSObject> @end
@protocol MTLLibrary <NSObject> - (id<MTLFunction>)newFunctionWithName:(NSString*)name; @end
@protocol MTLComputePipelineState <NSObject> @property(readonly) NSUInteger maxTotalThreadsPerThreadgroup; @end
@protocol MTLCommandEncoder <NSObject> - (void)endEncoding; @end
@protocol MTLComputeCommandEncoder <MTLCommandEncoder>
- (void)setComputePipelineState:(id<MTLComputePipelineState>)state;
- (void)setBuffer:(id<MTLBuffer>)buffer offset:(NSUInteger)offset atIndex:(NSUInteger)index;
- (void)setBytes:(const void*)bytes length:(NSUInteger)length atIndex:(NSUInteger)index;
- (void)dispatchThreads:(MTLSize)threadsPerGrid threadsPerThreadgroup:(MTLSize)threadsPerThreadgroup;
@end
@protocol MTLBlitCommandEncoder <MTLCommandEncoder>
- (void)fillBuffer:(id<MTLBuffer>)buffer range:(NSRange)range value:(unsigned char)value;
@end
@protocol MTLCommandBuffer;
typedef void (^MTLCommandBufferHandler)(id<MTLCommandBuffer>);
@protocol MTLCommandBuffer <NSObject>
- (id<MTLComputeCommandEncoder>)computeCommandEncoderWithDispatchType:(MTLDispatchType)t;
- (id<MTLBlitCommandEncoder>)blitCommandEncoder;
- (void)addCompletedHandler:(MTLCommandBufferHandler)block;
- (void)commit; - (void)waitUntilCompleted;
@property(readonly) MTLCommandBufferStatus status; @property(readonly) NSError* error;
@end
@protocol MTLCommandQueue <NSObject>
- (id<MTLCommandBuffer>)commandBuffer; - (id<MTLCommandBuffer>)commandBufferWithUnretainedReferences;
@end
@interface MTLCompileOptions : NSObject
@property MTLLanguageVersion languageVersion; @property BOOL fastMathEnabled;
@end
@protocol MTLDevice <NSObject>
@property(readonly) NSString* name;
- (BOOL)supportsFamily:(MTLGPUFamily)f;
- (id<MTLBuffer>)newBufferWithLength:(NSUInteger)length options:(MTLResourceOptions)options;
- (id<MTLCommandQueue>)newCommandQueue;
- (id<MTLLibrary>)newLibraryWithSource:(NSString*)source options:(MTLCompileOptions*)options error:(NSError**)error;
- (id<MTLComputePipelineState>)newComputePipelineStateWithFunction:(id<MTLFunction>)f error:(NSError**)error;
@end
id<MTLDevice> MTLCreateSystemDefaultDevice(void);
#import <Metal/MTLSDKAdditions.h>
