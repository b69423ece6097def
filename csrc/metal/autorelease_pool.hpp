// An @autoreleasepool that is drained however its body ends. Objective-C++ only.
//
// A pool left by a C++ exception is not popped (clang's ARC specification: leaving an
// @autoreleasepool by an exception does not drain it), so every object autoreleased inside
// (command buffers, encoders, NSStrings, NSErrors) would stay alive until some outer pool is
// drained, which on a Python thread may be never. The body's exception is caught inside the
// pool, the pool ends normally, and the exception is rethrown outside it.
#pragma once

#import <Foundation/Foundation.h>

#include <exception>
#include <optional>
#include <type_traits>

namespace fc::metal {

template <class Fn>
std::invoke_result_t<Fn&> in_autorelease_pool(Fn&& body) {
  using Result = std::invoke_result_t<Fn&>;
  std::exception_ptr thrown;
  if constexpr (std::is_void_v<Result>) {
    @autoreleasepool {
      try {
        body();
      } catch (...) {
        thrown = std::current_exception();
      }
    }
    if (thrown) std::rethrow_exception(thrown);
  } else {
    std::optional<Result> result;
    @autoreleasepool {
      try {
        result.emplace(body());
      } catch (...) {
        thrown = std::current_exception();
      }
    }
    if (thrown) std::rethrow_exception(thrown);
    return std::move(*result);
  }
}

}  // namespace fc::metal
