// Window -> CUDA graph. A decode window of W steps is 2W+ small kernels; launched one by one
// each costs a few microseconds of CPU and leaves a gap on the GPU. Captured once into a
// graph, a replay is one cudaGraphLaunch and the GPU runs the kernels back to back.
#include "cuda/cuda_graph.hpp"

#include <memory>

#include "cuda/cuda_device.hpp"
#include "cuda/cuda_kernels.hpp"

namespace fc::cuda {
namespace {

// Cached in Window::backend_state. Destroying an executable graph that is still running is
// allowed: the driver frees it once the launch finishes.
struct WindowGraph {
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  ~WindowGraph() {
    if (exec) cudaGraphExecDestroy(exec);
    if (graph) cudaGraphDestroy(graph);
  }
};

// Records the window's dispatches by stream capture. ThreadLocal mode: launches from other
// threads (another queue, a torch stream) are neither captured nor forbidden meanwhile.
std::string capture(const Window& window, cudaStream_t stream, WindowGraph& out) {
  cudaError_t e = cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal);
  if (e != cudaSuccess) return error_text("starting the window's graph capture", e);
  std::string error;
  for (const Dispatch& d : window.dispatches()) {
    e = launch_dispatch(d, stream);
    if (e != cudaSuccess) {
      error = error_text((std::string("capturing ") + kernel_name(d.kernel)).c_str(), e);
      break;
    }
  }
  // End the capture also after an error, or the stream stays in capture mode.
  e = cudaStreamEndCapture(stream, &out.graph);
  if (!error.empty()) return error;
  if (e != cudaSuccess) return error_text("ending the window's graph capture", e);
  e = cudaGraphInstantiate(&out.exec, out.graph, 0);
  if (e != cudaSuccess) return error_text("instantiating the window's graph", e);
  return "";
}

}  // namespace

std::string launch_window(Window& window, cudaStream_t stream) {
  std::lock_guard lock(window.backend_mutex);
  if (!window.backend_state) {
    auto graph = std::make_shared<WindowGraph>();
    std::string error = capture(window, stream, *graph);
    if (!error.empty()) return error;
    window.backend_state = graph;
  }
  auto* graph = static_cast<WindowGraph*>(window.backend_state.get());
  cudaError_t e = cudaGraphLaunch(graph->exec, stream);
  return e == cudaSuccess ? "" : error_text("launching the window's graph", e);
}

}  // namespace fc::cuda
