# The CUDA backend, included by the root CMakeLists.txt when a CUDA toolkit is found.
# SASS for Hopper (sm_90) plus compute_75 PTX that the driver JIT-compiles for any other GPU
# of compute capability >= 7.5 (the oldest CUDA 13 targets; the system-scope release
# stores need 7.0). cudart is linked
# statically: the wheel then imports on machines without a driver or GPU, and
# Device("cuda") reports why it cannot open one (cuda_device.cpp: probe).
enable_language(CUDA)
find_package(CUDAToolkit REQUIRED)
if(NOT DEFINED FC_CUDA_ARCHITECTURES)
  set(FC_CUDA_ARCHITECTURES "90-real;75-virtual")
endif()
set(CMAKE_CUDA_STANDARD 20)
set(CMAKE_CUDA_STANDARD_REQUIRED ON)
target_sources(fc_core PRIVATE
  csrc/cuda/cuda_kernels.cu
  csrc/cuda/cuda_device.cpp
  csrc/cuda/cuda_graph.cpp
  csrc/cuda/cuda_interop.cpp
)
set_target_properties(fc_core PROPERTIES
  CUDA_ARCHITECTURES "${FC_CUDA_ARCHITECTURES}"
  CUDA_RUNTIME_LIBRARY Static
)
target_link_libraries(fc_core PUBLIC CUDA::cudart_static)
set(FC_CUDA_BUILT TRUE)
set(FC_CUDA_STATUS "built")
