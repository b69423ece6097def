// Pushing into a channel from a foreign stream (torch interop, bind_cuda.cpp).
#include "cuda/cuda_interop.hpp"

#include "cuda/cuda_device.hpp"
#include "cuda/cuda_kernels.hpp"

namespace fc::cuda {

int device_ordinal(const Device& device) {
  auto* cuda = dynamic_cast<const CudaDevice*>(&device);
  return cuda ? cuda->ordinal() : -1;
}

namespace {

// What every push from a foreign stream checks first, in this order (each a clear error):
// the channel is a CUDA one, its device usable, its init encoded, the source pointer set.
// Returns the device ordinal to make current for the launch.
int checked_stream_target(Device& device, bool initialised, uintptr_t source) {
  const int ordinal = device_ordinal(device);
  if (ordinal < 0) {
    throw std::invalid_argument("stream_write: the channel lives on a '" + device.backend() +
                                "' device; pushing from a CUDA stream needs a 'cuda' channel");
  }
  device.check_usable("push from a CUDA stream");
  if (!initialised) {
    throw ChannelError("stream_write: the channel was never initialised: encode its init, "
                       "commit it and wait for it before pushing from a stream");
  }
  if (source == 0) throw std::invalid_argument("stream_write: the source pointer is null");
  return ordinal;
}

void launch_on(int ordinal, const Dispatch& d, uintptr_t stream) {
  make_current(ordinal);
  cudaError_t e = launch_dispatch(d, reinterpret_cast<cudaStream_t>(stream));
  if (e != cudaSuccess) throw DeviceError(error_text("stream_write: launching the push", e));
}

}  // namespace

void stream_push(ChannelU32& channel, uintptr_t stream, uintptr_t source, uint32_t count,
                 uint32_t stride_words) {
  const int ordinal = checked_stream_target(*channel.device(), channel.init_encoded(), source);
  if (count == 0) throw std::invalid_argument("stream_write: nothing to push (count is 0)");
  if (stride_words == 0) throw std::invalid_argument("stream_write: stride must be >= 1 word");
  // The same dispatch ChannelU32::encode_push_from records, launched on the caller's stream.
  kernel_args::channel_u32_push args;
  args.channel = channel.kernel_buffers();
  args.capacity = channel.capacity();
  args.from_source = 1;
  args.source = BufferArg::raw(reinterpret_cast<void*>(source));
  args.count = count;
  args.stride = stride_words;
  launch_on(ordinal, make_dispatch(1, args), stream);
}

void stream_push_record(RecordChannel& channel, uintptr_t stream, uintptr_t source) {
  const int ordinal =
      checked_stream_target(*channel.device(), channel.inits_encoded() != 0, source);
  launch_on(ordinal, channel.push_dispatch(BufferArg::raw(reinterpret_cast<void*>(source)), 0),
            stream);
}

}  // namespace fc::cuda
