#include "channel/record_channel.hpp"

#include <cstdint>
#include <cstring>
#include <string>

#include "channel/record_reader.hpp"

namespace fc {
namespace {

constexpr uint32_t kMaxRecordCapacity = 1u << 20;
// Threads of one record push: one per 16-byte vector (4 words), at most kMaxPushThreads (64
// blocks of 256; larger records give each thread more vectors, strided so that a warp's stores
// stay coalesced). Each thread's share is one load and one store, none waiting on another load:
// with 16 words a thread strided (the earlier rule) each word's store waited for its load, and
// a 64 KiB record's payload took 3.6 us instead of 1.3 (benchmarks/RESULTS.md). A thread's
// count costs a device-scope fence and an atomic add, ~0 us next to that.
constexpr uint32_t kMaxPushThreads = 1u << 14;
constexpr uint32_t kWordsPerThread = 4;

// Tags of every slot first, rounded up to 256 bytes (record_kernels.inc: fc_record_payload_offset).
uint32_t payload_offset_for(uint32_t capacity) { return (2 * capacity + 63) / 64 * 64; }

uint32_t checked_record_capacity(uint64_t capacity) {
  if (capacity < 2 || capacity > kMaxRecordCapacity || !layout::is_power_of_two(capacity)) {
    throw std::invalid_argument(
        "capacity " + std::to_string(capacity) + ": a record channel holds a power of two of "
        "records, 2 to " + std::to_string(kMaxRecordCapacity) +
        " (2 at least: a commit marks the next slot, which must not be the one it wrote)");
  }
  return static_cast<uint32_t>(capacity);
}

}  // namespace

RecordChannel::RecordChannel(std::shared_ptr<Device> device, uint64_t capacity,
                             uint64_t record_bytes)
    : device_(std::move(device)), capacity_(checked_record_capacity(capacity)),
      record_bytes_(record_bytes) {
  if (record_bytes == 0 || record_bytes % 4 != 0 || record_bytes > kMaxRecordBytes) {
    throw std::invalid_argument("record size " + std::to_string(record_bytes) +
                                " bytes: records are 4 to " + std::to_string(kMaxRecordBytes) +
                                " bytes, a multiple of 4 (the device copies u32 words)");
  }
  stride_words_ = static_cast<uint32_t>((record_bytes + 15) / 16 * 4);  // 16-byte aligned slots
  payload_offset_words_ = payload_offset_for(capacity_);
  const uint64_t data_bytes =
      (uint64_t{payload_offset_words_} + uint64_t{capacity_} * stride_words_) * 4;
  if (data_bytes > kMaxDataBytes) {
    throw std::invalid_argument("a record channel of " + std::to_string(capacity_) +
                                " records of " + std::to_string(record_bytes) + " bytes needs " +
                                std::to_string(data_bytes >> 20) + " MiB; the limit is " +
                                std::to_string(kMaxDataBytes >> 20) + " MiB");
  }
  device_->check_usable("create a record channel");
  header_ = device_->new_buffer(layout::kHeaderWords * sizeof(uint32_t), Storage::Shared);
  data_ = device_->new_buffer(data_bytes, Storage::Shared);
  cursor_ = device_->new_buffer(layout::kCursorWords * sizeof(uint32_t), Storage::Private);
  std::memset(header_words(), 0, layout::kHeaderWords * sizeof(uint32_t));
}

void RecordChannel::encode_init(CommandBuffer& cb) {
  kernel_args::record_init args;
  args.channel = kernel_buffers();
  args.capacity = capacity_;
  encode(cb, capacity_, args);
  inits_encoded_.fetch_add(1, std::memory_order_acq_rel);
}

kernel_args::record_push RecordChannel::push_args(const BufferArg& source,
                                                  uint64_t offset_bytes) const {
  if (offset_bytes % 4 != 0) {
    throw std::invalid_argument("record push: the source offset must be a multiple of 4 bytes, "
                                "got " + std::to_string(offset_bytes));
  }
  if (source.buffer && offset_bytes + record_bytes_ > source.buffer->size_bytes()) {
    throw std::invalid_argument("record push: a " + std::to_string(record_bytes_) +
                                "-byte record at offset " + std::to_string(offset_bytes) +
                                " runs past the end of the " +
                                std::to_string(source.buffer->size_bytes()) + "-byte source");
  }
  kernel_args::record_push args;
  args.channel = kernel_buffers();
  args.source = source;
  args.capacity = capacity_;
  args.record_words = record_words();
  args.stride = stride_words_;
  args.source_offset = static_cast<uint32_t>(offset_bytes / 4);
  // A GPU wants many threads to keep its memory pipes full; the host device runs a dispatch's
  // thread indices one after another, where more threads only add calls.
  const bool serial = device_->backend() == "cpu";
  const uint32_t wanted = (record_words() + kWordsPerThread - 1) / kWordsPerThread;
  args.threads = serial ? 1u : std::min(wanted, kMaxPushThreads);
  // 16-byte vectors where the source words are 16-byte aligned (payload slots always are: the
  // payload area starts at 256 bytes, the stride is a multiple of 16). A raw source (a torch
  // tensor's data pointer) may sit anywhere 4-aligned. Only CUDA's vector copy needs the
  // alignment; the host and Metal copy a vector word by word (a Metal buffer's device_ptr() is
  // its MTLBuffer object, so the test there says nothing, and needs not).
  const auto address = reinterpret_cast<uintptr_t>(source.device_ptr()) + offset_bytes;
  args.wide = address % 16 == 0 ? 1u : 0u;
  return args;
}

void RecordChannel::encode_push(CommandBuffer& cb, const BufferArg& source,
                                uint64_t offset_bytes, const std::shared_ptr<Buffer>& stop_flag) {
  auto args = push_args(source, offset_bytes);
  args.stop_flag = stop_flag;
  args.predicated = stop_flag ? 1u : 0u;
  encode(cb, args.threads, args);
}

Dispatch RecordChannel::push_dispatch(const BufferArg& source, uint64_t offset_bytes) const {
  const auto args = push_args(source, offset_bytes);
  return make_dispatch(args.threads, args);
}

void RecordChannel::encode_close(CommandBuffer& cb) {
  kernel_args::channel_u32_close args;  // the same header and cursor words as a u32 channel
  args.channel = kernel_buffers();
  encode(cb, 1, args);
}

std::shared_ptr<RecordReader> RecordChannel::reader() {
  device_->check_usable("get a channel's reader");
  return consumer_.get([this] { return std::make_shared<RecordReader>(shared_from_this()); });
}

ConsumerPosition RecordChannel::consumer_position() const { return consumer_.position(); }
void RecordChannel::save_consumer_position(const ConsumerPosition& p) { consumer_.save(p); }
void RecordChannel::forget_reader(const RecordReader* reader) { consumer_.forget(reader); }

}  // namespace fc
