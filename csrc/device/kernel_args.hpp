// Typed, named kernel arguments, generated from the kernel table (kernels/kernel_list.hpp):
// one struct per kernel, kernel_args::<name>, with a field per parameter. Every C++ encoder
// fills one by name and calls encode(); nothing outside the table writes a slot number.
//
//   kernel_args::channel_u32_push a;
//   a.channel = channel.kernel_buffers();
//   a.capacity = channel.capacity();
//   a.value = 7;
//   encode(cb, 1, a);
#pragma once

#include <array>
#include <memory>
#include <stdexcept>
#include <string>

#include "device/device.hpp"

namespace fc {

// A buffer argument: a Buffer of the dispatching device, or (only for make_dispatch, which
// launches on a foreign stream) a raw device address whose owner keeps it alive.
struct BufferArg {
  std::shared_ptr<Buffer> buffer;
  void* address = nullptr;

  BufferArg() = default;
  BufferArg(std::nullptr_t) {}
  BufferArg(std::shared_ptr<Buffer> b) : buffer(std::move(b)) {}
  static BufferArg raw(void* device_address) {
    BufferArg a;
    a.address = device_address;
    return a;
  }
  bool present() const { return buffer || address; }
  void* device_ptr() const { return buffer ? buffer->device_ptr() : address; }
};

// A channel's three buffers, one group wherever a kernel takes a channel.
struct ChannelArg {
  BufferArg header, data, cursor;
  bool present() const { return header.present(); }
};

namespace kernel_args {
#define FC_ARG_FIELD(kind, slot, name) FC_PP_CAT(FC_ARG_FIELD_, FC_BASE_##kind)(name)
#define FC_ARG_FIELD_BUF(name) BufferArg name;
#define FC_ARG_FIELD_CHAN(name) ChannelArg name;
#define FC_ARG_FIELD_SHARED(name) BufferArg name;
#define FC_ARG_FIELD_U32(name) uint32_t name = 0;
#define FC_ARG_STRUCT(kname)                         \
  struct kname {                                     \
    static constexpr KernelId id = KernelId::kname;  \
    FC_SIGNATURE_##kname(FC_ARG_FIELD)               \
  };
FC_KERNELS(FC_ARG_STRUCT)
#undef FC_ARG_STRUCT
#undef FC_ARG_FIELD
#undef FC_ARG_FIELD_BUF
#undef FC_ARG_FIELD_CHAN
#undef FC_ARG_FIELD_SHARED
#undef FC_ARG_FIELD_U32
}  // namespace kernel_args

// The slots of one dispatch, filled by name.
struct DispatchSlots {
  std::array<BufferArg, kBufferSlots> buffers{};
  std::array<uint32_t, kScalarSlots> scalars{};
};

namespace detail {
inline const BufferArg& required(const BufferArg& b, KernelId kernel, const char* name) {
  if (!b.present()) {
    throw std::invalid_argument("encode '" + std::string(kernel_name(kernel)) + "': buffer '" +
                                name + "' is missing");
  }
  return b;
}
inline const ChannelArg& required(const ChannelArg& c, KernelId kernel, const char* name) {
  if (!c.present() || !c.data.present() || !c.cursor.present()) {
    throw std::invalid_argument("encode '" + std::string(kernel_name(kernel)) + "': channel '" +
                                name + "' is missing");
  }
  return c;
}
inline const BufferArg& optional(const BufferArg& b, KernelId, const char*) { return b; }
inline const ChannelArg& optional(const ChannelArg& c, KernelId, const char*) { return c; }
inline void put(DispatchSlots& s, int slot, const BufferArg& b) { s.buffers[slot] = b; }
inline void put(DispatchSlots& s, int slot, const ChannelArg& c) {
  s.buffers[slot] = c.header;
  s.buffers[slot + 1] = c.data;
  s.buffers[slot + 2] = c.cursor;
}
}  // namespace detail

#define FC_ARG_SLOT(kind, slot, name) FC_ARG_SLOT_##kind(slot, name)
#define FC_ARG_SLOT_BUF(slot, name) detail::put(s, slot, detail::required(a.name, a.id, #name));
#define FC_ARG_SLOT_CHAN(slot, name) detail::put(s, slot, detail::required(a.name, a.id, #name));
#define FC_ARG_SLOT_BUF_OPT(slot, name) detail::put(s, slot, a.name);
#define FC_ARG_SLOT_CHAN_OPT(slot, name) detail::put(s, slot, a.name);
#define FC_ARG_SLOT_SHARED(slot, name) detail::put(s, slot, detail::required(a.name, a.id, #name));
#define FC_ARG_SLOT_SHARED_OPT(slot, name) detail::put(s, slot, a.name);
#define FC_ARG_SLOT_U32(slot, name) s.scalars[slot] = a.name;
#define FC_ARG_SLOT_U32_OPT(slot, name) s.scalars[slot] = a.name;
#define FC_SLOTS_OF(kname)                                                    \
  inline DispatchSlots slots_of([[maybe_unused]] const kernel_args::kname& a) { \
    DispatchSlots s;                                                          \
    FC_SIGNATURE_##kname(FC_ARG_SLOT) return s;                               \
  }
FC_KERNELS(FC_SLOTS_OF)
#undef FC_SLOTS_OF

// Records the dispatch in `cb` (every argument a Buffer of cb's device, kept alive by it).
template <class Args>
void encode(CommandBuffer& cb, uint32_t grid, const Args& args) {
  const DispatchSlots s = slots_of(args);
  std::array<std::shared_ptr<Buffer>, kBufferSlots> buffers{};
  for (int i = 0; i < kBufferSlots; ++i) {
    if (s.buffers[i].address) {
      throw std::invalid_argument("encode '" + std::string(kernel_name(Args::id)) +
                                  "': a command buffer takes Buffers, not raw addresses");
    }
    buffers[i] = s.buffers[i].buffer;
  }
  cb.dispatch(Args::id, grid, buffers, s.scalars);
}

// The dispatch as device addresses, for a launch outside a command buffer (a foreign CUDA
// stream, benchmarks); the caller keeps every buffer alive until it ran.
template <class Args>
Dispatch make_dispatch(uint32_t grid, const Args& args) {
  const DispatchSlots s = slots_of(args);
  Dispatch d{Args::id, grid, {}, s.scalars};
  for (int i = 0; i < kBufferSlots; ++i) d.buffers[i] = s.buffers[i].device_ptr();
  return d;
}

}  // namespace fc
