// Slot protocol 2 (docs/protocol.md: 32-bit stores only, the tag read before and after the value)
// on the host backend, where it runs when a channel asks for it.
//
//   1. The reader's decisions on hand-made slot states: a slot whose tag is the invalid (init)
//      tag is "not yet", a newer tag "overwritten", the expected tag the item.
//   2. A real concurrent producer (the device thread running channel_u32_push_sequence with
//      protocol 2) and a consumer draining at the same time, lapped again and again: every value
//      delivered equals its index (value i is pushed as item i), so a value taken from a slot
//      the producer was rewriting would show; received + dropped == pushed.
//   3. Re-initialisation under a live protocol-2 reader, and protocol 1 and 2 channels side by
//      side on one device.
// Built with -fsanitize=thread and with ASan+UBSan by .ci/run: every shared word is an atomic, so
// ThreadSanitizer must report nothing.
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "channel/channel.hpp"
#include "channel/reader.hpp"
#include "stress_support.hpp"
#include "common/atomic_word.hpp"

using fc_test::expect;
using fc_test::failures;

namespace aw = fc::atomic_word;

// Hand-made ring states, read by a protocol-2 reader (the device is idle: this thread plays the
// producer, storing the words in the protocol's order).
static void reader_decisions() {
  auto device = fc::make_host_device();
  auto channel = std::make_shared<fc::ChannelU32>(device, 8, 2);
  auto cb = device->new_queue()->command_buffer();
  channel->encode_init(*cb);
  cb->commit();
  cb->wait_until_completed(-1);
  uint32_t* header = channel->header_words();
  uint32_t* ring = channel->ring_words();
  expect((aw::load_relaxed(&header[fc::layout::kFLAGS]) & fc::layout::kFlagSlotProtocol2) != 0,
         "init of a protocol-2 channel sets FLAGS bit 1");
  auto reader = channel->reader();
  uint32_t out[16];
  expect(reader->drain_into(out, 16) == 0, "a fresh protocol-2 ring reads as empty");
  expect(reader->slot_protocol() == 2, "the reader took protocol 2 from the header");

  // Item 0 half-written: tag still the invalid tag (slot 0), value already there, count says 1.
  aw::store_relaxed(&ring[0], 1234);
  aw::store_relaxed(&header[fc::layout::kWRITE_IDX], 1);
  expect(reader->drain_into(out, 16) == 0 && reader->dropped() == 0,
         "a slot with the invalid tag is 'not yet', not dropped");
  aw::store_relaxed(&ring[1], 1);  // tag := 0 + 1
  expect(reader->drain_into(out, 16) == 1 && out[0] == 1234, "the expected tag delivers the value");

  // Items 1..8 published, item 9 (slot 1) overwrote item 1: item 1 is dropped, 2..8 delivered.
  for (uint32_t i = 1; i <= 9; ++i) {
    const uint32_t s = i & 7;
    aw::store_relaxed(&ring[2 * s + 1], s);
    aw::store_relaxed(&ring[2 * s], 1000 + i);
    aw::store_relaxed(&ring[2 * s + 1], i + 1);
  }
  aw::store_relaxed(&header[fc::layout::kWRITE_IDX], 10);
  const size_t n = reader->drain_into(out, 16);
  bool values = n == 8;
  for (size_t k = 0; values && k < n; ++k) values = out[k] == 1002 + k;
  expect(values && reader->dropped() == 1,
         "a lap: the overwritten item counted as dropped, the rest in order (2..9)");
  device->close();
}

// One device, one channel of each protocol, pushed in the same command buffer.
static void side_by_side() {
  auto device = fc::make_host_device();
  auto one = std::make_shared<fc::ChannelU32>(device, 64, 1);
  auto two = std::make_shared<fc::ChannelU32>(device, 64, 2);
  auto cb = device->new_queue()->command_buffer();
  one->encode_init(*cb);
  two->encode_init(*cb);
  for (uint32_t i = 0; i < 40; ++i) {
    one->encode_push(*cb, 100 + i);
    two->encode_push(*cb, 200 + i);
  }
  one->encode_close(*cb);
  two->encode_close(*cb);
  cb->commit();
  cb->wait_until_completed(-1);
  uint32_t a[64], b[64];
  auto ra = one->reader();
  auto rb = two->reader();
  const size_t na = ra->drain_into(a, 64), nb = rb->drain_into(b, 64);
  bool ok = na == 40 && nb == 40 && ra->slot_protocol() == 1 && rb->slot_protocol() == 2 &&
            ra->exhausted() && rb->exhausted();
  for (uint32_t i = 0; ok && i < 40; ++i) ok = a[i] == 100 + i && b[i] == 200 + i;
  const uint32_t flags_two = aw::load_relaxed(&two->header_words()[fc::layout::kFLAGS]);
  const uint32_t flags_one = aw::load_relaxed(&one->header_words()[fc::layout::kFLAGS]);
  ok = ok && flags_one == fc::layout::kFlagClosed &&
       flags_two == (fc::layout::kFlagClosed | fc::layout::kFlagSlotProtocol2);
  expect(ok, "protocol 1 and 2 channels side by side: both streams whole, FLAGS 0x1 and 0x3");
  device->close();
}

int main() {
  reader_decisions();
  side_by_side();
  fc_test::run_reinit(2, 64, 100, 5000);
  fc_test::run_concurrent(2, 1u << 12, 1024, 1'000'000);
  fc_test::run_concurrent(2, 16, 3, 1'000'000);  // lapped again and again
  fc_test::run_concurrent(2, 2, 1, 300'000);  // the smallest ring a tag can validate: every push laps
  return failures == 0 ? 0 : 1;
}
