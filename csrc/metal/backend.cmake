# The Metal backend: Objective-C++ with ARC, Metal + Foundation. Included by CMakeLists.txt only
# if(APPLE); everything else about Metal (the MSL assembly, its Linux check) builds everywhere.
#
# Nothing here may fail the package build: the channels, the cpu backend and the wheel are worth
# having on a Mac whose toolchain cannot build this backend. When the Objective-C++ compiler,
# the frameworks, or a trial compile of the .mm files fail, fc_core gets no_metal.cpp with the
# reason, which backend_status()["metal"] and Device("metal") then report. An SDK older than
# macOS 15 still builds the backend (csrc/metal/metal_sdk.hpp): it reports itself unavailable at
# run time, with the reason.
# Expects: the target fc_core, FC_GENERATED_DIR. Sets FC_METAL_BUILT and FC_METAL_STATUS.
set(FC_METAL_BUILT FALSE)
set(FC_METAL_STATUS "")
set(_fc_metal_sources
  ${CMAKE_CURRENT_LIST_DIR}/metal_kernels.mm   # pipelines from the assembled MSL, dispatch encoding
  ${CMAKE_CURRENT_LIST_DIR}/metal_device.mm    # device, buffers, queues, completion
)

include(CheckLanguage)
check_language(OBJCXX)
if(NOT CMAKE_OBJCXX_COMPILER)
  string(CONCAT FC_METAL_STATUS "no Objective-C++ compiler was found when this package was "
         "built (install Xcode's command line tools: xcode-select --install)")
endif()

if(NOT FC_METAL_STATUS)
  find_library(FC_METAL_FRAMEWORK Metal)
  find_library(FC_FOUNDATION_FRAMEWORK Foundation)
  if(NOT FC_METAL_FRAMEWORK OR NOT FC_FOUNDATION_FRAMEWORK)
    string(CONCAT FC_METAL_STATUS "the Metal and Foundation frameworks were not found when "
           "this package was built (install Xcode's command line tools)")
  endif()
endif()

if(NOT FC_METAL_STATUS)
  enable_language(OBJCXX)
  # A trial compile (no link) of the .mm files with the flags of the real build, so that an SDK
  # or compiler they do not compile with turns into a reason instead of a failed install.
  # fc_core leaves OBJCXX_STANDARD unset, so CMake compiles its .mm files with its CXX_STANDARD
  # (20; CMake docs, OBJCXX_STANDARD); the trial asks for the same. Its result is not kept in
  # the cache, so that a reconfigure after a toolchain update tries again.
  cmake_path(GET CMAKE_CURRENT_LIST_DIR PARENT_PATH _fc_csrc_dir)  # the .mm files' include root
  unset(FC_METAL_COMPILES CACHE)
  set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
  try_compile(FC_METAL_COMPILES ${CMAKE_CURRENT_BINARY_DIR}/metal_try_compile
    SOURCES ${_fc_metal_sources}
    CMAKE_FLAGS "-DINCLUDE_DIRECTORIES=${_fc_csrc_dir};${FC_GENERATED_DIR}"
    COMPILE_DEFINITIONS -fobjc-arc
    CXX_STANDARD 20
    OBJCXX_STANDARD 20
    OUTPUT_VARIABLE _fc_metal_try_log)
  unset(CMAKE_TRY_COMPILE_TARGET_TYPE)
  if(NOT FC_METAL_COMPILES)
    file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/metal_try_compile.log "${_fc_metal_try_log}")
    string(CONCAT FC_METAL_STATUS "the Metal backend did not compile with this SDK and "
           "compiler when this package was built (log: "
           "${CMAKE_CURRENT_BINARY_DIR}/metal_try_compile.log)")
  endif()
endif()

if(FC_METAL_STATUS)
  message(WARNING "Metal backend not built: ${FC_METAL_STATUS}")
  target_sources(fc_core PRIVATE ${CMAKE_CURRENT_LIST_DIR}/no_metal.cpp)
  target_compile_definitions(fc_core PRIVATE "FC_METAL_STATUS=\"${FC_METAL_STATUS}\"")
  return()
endif()

# The .mm files join fc_core.
target_sources(fc_core PRIVATE ${_fc_metal_sources})
# ARC: the .mm files keep Metal objects in C++ members, arrays and blocks and rely on ARC to
# retain and release them (they refuse to compile without it).
target_compile_options(fc_core PRIVATE $<$<COMPILE_LANGUAGE:OBJCXX>:-fobjc-arc>)
target_link_libraries(fc_core PUBLIC ${FC_METAL_FRAMEWORK} ${FC_FOUNDATION_FRAMEWORK})
set(FC_METAL_BUILT TRUE)
message(STATUS "Metal backend: built")
