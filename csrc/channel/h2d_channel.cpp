#include "channel/h2d_channel.hpp"

#include <cstring>
#include <stdexcept>
#include <string>

#include "channel/layout.hpp"
#include "common/atomic_word.hpp"

namespace fc {
namespace {

uint32_t checked_h2d_capacity(uint64_t capacity) {
  if (capacity < 1 || capacity > h2d::kMaxCapacity || !layout::is_power_of_two(capacity)) {
    throw std::invalid_argument("capacity " + std::to_string(capacity) +
                                ": a host-to-device channel holds a power of two of items, 1 to " +
                                std::to_string(h2d::kMaxCapacity));
  }
  return static_cast<uint32_t>(capacity);
}

uint32_t checked_record_words(uint64_t words) {
  if (words < 1 || words > h2d::kMaxRecordWords) {
    throw std::invalid_argument("a host-to-device item is 1 to " +
                                std::to_string(h2d::kMaxRecordWords) + " u32 words (4 to " +
                                std::to_string(4 * h2d::kMaxRecordWords) + " bytes), got " +
                                std::to_string(words) + " words");
  }
  return static_cast<uint32_t>(words);
}

}  // namespace

H2DChannel::H2DChannel(std::shared_ptr<Device> device, uint64_t capacity, uint64_t record_words)
    : device_(std::move(device)),
      capacity_(checked_h2d_capacity(capacity)),
      record_words_(checked_record_words(record_words)),
      writer_(*this) {
  device_->check_usable("create a host-to-device channel");
  header_ = device_->new_buffer(h2d::kHeaderWords * sizeof(uint32_t), Storage::Shared);
  data_ = device_->new_buffer(size_t{capacity_} * slot_words() * sizeof(uint32_t),
                              Storage::Shared);
  cursor_ = device_->new_buffer(h2d::kCursorWords * sizeof(uint32_t), Storage::Private);
  // Before any command buffer can reference the channel: plain stores.
  std::memset(header_words(), 0, h2d::kHeaderWords * sizeof(uint32_t));
  header_words()[h2d::kH2D_CAPACITY] = capacity_;
  header_words()[h2d::kH2D_RECORD_WORDS] = record_words_;
}

std::string H2DChannel::describe() const {
  return "host-to-device channel (capacity " + std::to_string(capacity_) + ", " +
         std::to_string(4 * record_words_) + "-byte items)";
}

void H2DChannel::before_encode(CommandBuffer& cb, KernelId kernel) {
  if (kernel == kernel_args::h2d_init::id) return;
  if (inits_encoded() == 0) {
    throw ChannelError("encode '" + std::string(kernel_name(kernel)) + "': the " + describe() +
                       " was never initialised: encode its init first (ch.encode_init(cb), or "
                       "dispatch h2d_init) in this or an earlier command buffer");
  }
  // A pop may record an error on the device; the command buffer reports it when it completes.
  // The check holds the channel (weakly: a channel dropped meanwhile has nobody to tell).
  std::weak_ptr<H2DChannel> self = weak_from_this();
  cb.add_completion_check({this, [self] {
                             auto ch = self.lock();
                             return ch ? ch->take_error() : std::string();
                           }});
}

void H2DChannel::after_encode(KernelId kernel) {
  if (kernel == kernel_args::h2d_init::id) inits_encoded_.fetch_add(1, std::memory_order_acq_rel);
}

void H2DChannel::encode_init(CommandBuffer& cb) {
  kernel_args::h2d_init args;
  args.channel = kernel_buffers();
  args.capacity = capacity_;
  args.record_words = record_words_;
  encode(cb, 1, args);
  after_encode(kernel_args::h2d_init::id);
}

void H2DChannel::check_pop_target(const PopTarget& t, const char* kernel) const {
  const std::string where = std::string("encode '") + kernel + "'";
  if (!t.out || !t.got) throw std::invalid_argument(where + ": out and got must be Buffers");
  if ((uint64_t{t.out_offset} + record_words_) * 4 > t.out->size_bytes()) {
    throw std::invalid_argument(where + ": a " + std::to_string(4 * record_words_) +
                                "-byte item at word " + std::to_string(t.out_offset) +
                                " runs past the end of the " +
                                std::to_string(t.out->size_bytes()) + "-byte out buffer");
  }
  if (t.got->size_bytes() < 4) throw std::invalid_argument(where + ": got must hold a u32");
  if ((t.predicated || t.stop_code != 0) && !t.stop_flag) {
    throw std::invalid_argument(where + ": predicated and stop_code need a stop_flag buffer");
  }
}

namespace {
template <class Args>
void fill_pop(Args& args, const H2DChannel& ch, const H2DChannel::PopTarget& t) {
  args.channel = ch.kernel_buffers();
  args.out = t.out;
  args.out_offset = t.out_offset;
  args.got = t.got;
  args.stop_flag = t.stop_flag;
  args.predicated = t.predicated ? 1u : 0u;
  args.stop_code = t.stop_code;
}
}  // namespace

void H2DChannel::encode_try_pop(CommandBuffer& cb, const PopTarget& target) {
  check_pop_target(target, "h2d_try_pop");
  kernel_args::h2d_try_pop args;
  fill_pop(args, *this, target);
  before_encode(cb, args.id);
  encode(cb, 1, args);
}

void H2DChannel::encode_pop_wait(CommandBuffer& cb, const PopTarget& target, uint32_t timeout_us) {
  check_pop_target(target, "h2d_pop_wait");
  kernel_args::h2d_pop_wait args;
  fill_pop(args, *this, target);
  args.timeout_us = timeout_us;
  before_encode(cb, args.id);
  encode(cb, 1, args);
}

std::string H2DChannel::take_error() {
  uint32_t* header = header_words();
  // Acquire pairs with the device's release store of the code: the item word is its own.
  const uint32_t code = atomic_word::exchange_acquire(&header[h2d::kH2D_ERROR], h2d::kErrorNone);
  if (code == h2d::kErrorNone) return "";
  const uint32_t item = atomic_word::load_relaxed(&header[h2d::kH2D_ERROR_ITEM]);
  std::string message;
  if (code == h2d::kErrorNotInitialised) {
    message = "a kernel popped the " + describe() +
              " before any init of it had run on the device (commit the command buffer that "
              "encodes ch.encode_init first)";
  } else if (code == h2d::kErrorTimeout) {
    message = "h2d pop timed out on the device waiting for item " + std::to_string(item) +
              " of the " + describe() + " (the CPU had pushed " +
              std::to_string(atomic_word::load_relaxed(&header[h2d::kH2D_WRITE_IDX])) +
              " items in this epoch; raise the kernel's timeout_us or push sooner)";
  } else {
    message = "the " + describe() + " reports error code " + std::to_string(code);
  }
  std::lock_guard lock(error_mutex_);
  last_error_ = message;
  return message;
}

std::string H2DChannel::last_error() const {
  std::lock_guard lock(error_mutex_);
  return last_error_;
}

}  // namespace fc
