#include "channel/channel.hpp"

#include <cstring>
#include <string>

#include "channel/reader.hpp"

namespace fc {

uint32_t checked_capacity(uint64_t capacity) {
  if (capacity < layout::kMinCapacity || capacity > layout::kMaxCapacity) {
    throw std::invalid_argument("capacity " + std::to_string(capacity) + " is out of range: " +
                                "a channel holds 1 to " + std::to_string(layout::kMaxCapacity) +
                                " items");
  }
  if (!layout::is_power_of_two(capacity)) {
    throw std::invalid_argument("capacity " + std::to_string(capacity) +
                                " is not a power of two: the ring maps an index to its slot "
                                "with a mask, so capacity must be 1, 2, 4, ..., 2^26");
  }
  return static_cast<uint32_t>(capacity);
}

uint32_t checked_slot_protocol(uint64_t protocol, uint32_t fallback) {
  if (protocol == 0) return fallback;
  if (protocol != layout::kSlotProtocolDefault && protocol != layout::kSlotProtocolTagged32) {
    throw std::invalid_argument("slot_protocol " + std::to_string(protocol) +
                                " is not a slot protocol: 1 (one 8-byte store per slot, the "
                                "default) or 2 (32-bit stores, tag checked before and after the "
                                "value; docs/protocol.md)");
  }
  return static_cast<uint32_t>(protocol);
}

ChannelU32::ChannelU32(std::shared_ptr<Device> device, uint64_t capacity, uint32_t slot_protocol)
    : device_(std::move(device)),
      capacity_(checked_capacity(capacity)),
      slot_protocol_(checked_slot_protocol(slot_protocol, device_->slot_protocol())) {
  device_->check_usable("create a channel");
  header_ = device_->new_buffer(layout::kHeaderWords * sizeof(uint32_t), Storage::Shared);
  data_ = device_->new_buffer(size_t{capacity_} * layout::kSlotWords * sizeof(uint32_t),
                              Storage::Shared);
  cursor_ = device_->new_buffer(layout::kCursorWords * sizeof(uint32_t), Storage::Private);
  // Epoch 0, no magic: init's kernel counts epochs from here. (Every backend zeroes new
  // buffers today; the channel does not rely on it for the words it reads.)
  std::memset(header_words(), 0, layout::kHeaderWords * sizeof(uint32_t));
}

void ChannelU32::encode_init(CommandBuffer& cb) {
  // Every slot is reset (value 0, a tag no item of that slot has): the tags must be reset for
  // the self-validating slots to mean anything after a re-init.
  kernel_args::channel_u32_init args;
  args.channel = kernel_buffers();
  args.capacity = capacity_;
  args.slot_protocol = slot_protocol_;
  encode(cb, capacity_, args);
  inits_encoded_.fetch_add(1, std::memory_order_acq_rel);
}

std::shared_ptr<ChannelU32Reader> ChannelU32::reader() {
  device_->check_usable("get a channel's reader");
  return consumer_.get([this] {
    return std::make_shared<ChannelU32Reader>(shared_from_this(), ChannelU32Reader::Key{});
  });
}

ConsumerPosition ChannelU32::consumer_position() const { return consumer_.position(); }
void ChannelU32::save_consumer_position(const ConsumerPosition& p) { consumer_.save(p); }
void ChannelU32::forget_reader(const ChannelU32Reader* reader) { consumer_.forget(reader); }

void ChannelU32::encode_push(CommandBuffer& cb, uint32_t value) {
  kernel_args::channel_u32_push args;
  args.channel = kernel_buffers();
  args.capacity = capacity_;
  args.value = value;
  encode(cb, 1, args);
}

void ChannelU32::encode_push_from(CommandBuffer& cb, const std::shared_ptr<Buffer>& source,
                                  uint32_t count, uint32_t stride_words, uint32_t offset_words,
                                  const std::shared_ptr<Buffer>& stop_flag) {
  if (!source) throw std::invalid_argument("push from a buffer: the source buffer is None");
  if (count == 0) throw std::invalid_argument("push from a buffer: count must be at least 1");
  if (stride_words == 0) throw std::invalid_argument("push from a buffer: stride must be >= 1");
  uint64_t last_word = uint64_t{offset_words} + uint64_t{count - 1} * stride_words;
  if ((last_word + 1) * sizeof(uint32_t) > source->size_bytes()) {
    throw std::invalid_argument("push from a buffer: reading " + std::to_string(count) +
                                " value(s) at word offset " + std::to_string(offset_words) +
                                " with stride " + std::to_string(stride_words) +
                                " needs word " + std::to_string(last_word) + ", but the buffer has " +
                                std::to_string(source->size_bytes() / 4) + " words");
  }
  kernel_args::channel_u32_push args;
  args.channel = kernel_buffers();
  args.capacity = capacity_;
  args.from_source = 1;
  args.source = source;
  args.count = count;
  args.stride = stride_words;
  args.offset = offset_words;
  args.stop_flag = stop_flag;
  args.predicated = stop_flag ? 1u : 0u;
  encode(cb, 1, args);
}

void ChannelU32::encode_push_sequence(CommandBuffer& cb, uint32_t start, uint32_t count) {
  kernel_args::channel_u32_push_sequence args;
  args.channel = kernel_buffers();
  args.capacity = capacity_;
  args.start = start;
  args.count = count;
  encode(cb, 1, args);
}

void ChannelU32::encode_close(CommandBuffer& cb) {
  kernel_args::channel_u32_close args;
  args.channel = kernel_buffers();
  encode(cb, 1, args);
}

}  // namespace fc
