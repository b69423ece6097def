# The Metal backend: Objective-C++ with ARC, Metal + Foundation. Included by CMakeLists.txt only
# if(APPLE); everything else about Metal (the MSL assembly, its Linux check) builds everywhere.
enable_language(OBJCXX)

# The .mm files join fc_core. OBJCXX_STANDARD is unset, so CMake uses the target's CXX_STANDARD
# (20) for them as well (CMake docs, OBJCXX_STANDARD).
target_sources(fc_core PRIVATE
  csrc/metal/metal_kernels.mm   # pipelines from the assembled MSL, encoding of one dispatch
  csrc/metal/metal_device.mm    # device, buffers, queues, completion
)
# ARC: the .mm files keep Metal objects in C++ members, arrays and blocks and rely on ARC to
# retain and release them (they refuse to compile without it).
target_compile_options(fc_core PRIVATE $<$<COMPILE_LANGUAGE:OBJCXX>:-fobjc-arc>)

find_library(FC_METAL_FRAMEWORK Metal REQUIRED)
find_library(FC_FOUNDATION_FRAMEWORK Foundation REQUIRED)
target_link_libraries(fc_core PUBLIC ${FC_METAL_FRAMEWORK} ${FC_FOUNDATION_FRAMEWORK})
set(FC_METAL_BUILT TRUE)
