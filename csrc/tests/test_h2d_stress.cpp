// Host-to-device channels with a real concurrent producer on each side: a writer thread pushes
// sequence values into a small H2D ring while the host device thread runs one long
// h2d_relay_u32 kernel (pop_wait, then a push into a D2H channel) and a consumer thread drains
// the D2H channel. Built with -fsanitize=thread (and ASan+UBSan) by .ci/run: every shared word
// is an atomic, so ThreadSanitizer must report nothing, and the values must come back exactly
// (nothing lost, doubled or reordered). Records: pop_wait dispatches take 3-word records whose
// words all derive from the record's index, so a record mixed from two pushes fails the check.
// Control block: decode steps of a one-token model read it while another thread cancels; the
// run stops at the step that saw the cancel, with exactly the tokens it reported.
#include <algorithm>
#include <cstdio>
#include <thread>
#include <vector>

#include "channel/channel.hpp"
#include "channel/control_block.hpp"
#include "channel/h2d_channel.hpp"
#include "channel/reader.hpp"
#include "stress_support.hpp"

using fc_test::expect;
using fc_test::failures;

namespace {

constexpr uint32_t kWaitUs = 60'000'000;

std::shared_ptr<fc::H2DChannel> ready_channel(const std::shared_ptr<fc::Device>& device,
                                              uint32_t capacity, uint32_t record_words) {
  auto ch = std::make_shared<fc::H2DChannel>(device, capacity, record_words);
  auto cb = device->new_queue()->command_buffer();
  ch->encode_init(*cb);
  cb->commit();
  cb->wait_until_completed(-1);
  return ch;
}

void run_relay(uint32_t capacity, uint32_t n_items) {
  auto device = fc::make_host_device();
  auto ch = ready_channel(device, capacity, 1);
  const uint32_t sink_capacity = 1u << 20;  // holds every item: the check is exact
  auto sink = std::make_shared<fc::ChannelU32>(device, sink_capacity);
  auto taken = device->new_buffer(8, fc::Storage::Shared);
  auto cb = device->new_queue()->command_buffer();
  sink->encode_init(*cb);
  fc::kernel_args::h2d_relay_u32 relay;
  relay.source = ch->kernel_buffers();
  relay.sink = sink->kernel_buffers();
  relay.taken = taken;
  relay.count = n_items + 1;  // ends on the close
  relay.timeout_us = kWaitUs;
  relay.sink_capacity = sink_capacity;
  ch->before_encode(*cb, relay.id);
  fc::encode(*cb, 1, relay);
  sink->encode_close(*cb);
  cb->commit();

  std::thread writer([&] {
    std::vector<uint32_t> batch(37);
    uint32_t next = 0;
    while (next < n_items) {
      if (next % 3 == 0) {  // single pushes and batches, both waiting for room
        ch->writer().push(&next, -1, {});
        ++next;
        continue;
      }
      const uint32_t n = std::min<uint32_t>(static_cast<uint32_t>(batch.size()), n_items - next);
      for (uint32_t i = 0; i < n; ++i) batch[i] = next + i;
      ch->writer().push_many(batch.data(), n, -1, {});
      next += n;
    }
    ch->writer().close(-1, {});
  });
  uint64_t received = 0;
  bool exact = true;
  std::thread consumer([&] {
    auto reader = sink->reader();
    std::vector<uint32_t> out(4096);
    for (;;) {
      const size_t n = reader->drain_into(out.data(), out.size());
      for (size_t i = 0; i < n; ++i) exact = exact && out[i] == received + i;
      received += n;
      if (n == 0 && reader->wait(60.0) != fc::WaitResult::Ready) break;
    }
    exact = exact && reader->dropped() == 0;
  });
  writer.join();
  consumer.join();
  cb->wait_until_completed(-1);
  const uint32_t forwarded = static_cast<uint32_t*>(taken->host_ptr())[0];
  char what[200];
  std::snprintf(what, sizeof what,
                "u32 relay, capacity %u: %llu of %u items back, each once, in order (%u taken)",
                capacity, (unsigned long long)received, n_items, forwarded);
  expect(exact && received == n_items && forwarded == n_items, what);
  device->close();
}

void run_records(uint32_t capacity, uint32_t n_records) {
  constexpr uint32_t kWords = 3;
  auto device = fc::make_host_device();
  auto ch = ready_channel(device, capacity, kWords);
  auto out = device->new_buffer(uint64_t{n_records} * kWords * 4, fc::Storage::Shared);
  auto got = device->new_buffer(4, fc::Storage::Shared);
  auto cb = device->new_queue()->command_buffer();
  fc::H2DChannel::PopTarget target;
  target.out = out;
  target.got = got;
  for (uint32_t k = 0; k < n_records; ++k) {
    target.out_offset = k * kWords;
    ch->encode_pop_wait(*cb, target, kWaitUs);
  }
  cb->commit();
  std::thread writer([&] {
    uint32_t record[kWords];
    for (uint32_t k = 0; k < n_records; ++k) {
      for (uint32_t w = 0; w < kWords; ++w) record[w] = (k * kWords + w) ^ 0x5a5a5a5au;
      ch->writer().push(record, -1, {});
    }
  });
  writer.join();
  cb->wait_until_completed(-1);
  bool whole = true;
  const auto* words = static_cast<const uint32_t*>(out->host_ptr());
  for (uint32_t i = 0; i < n_records * kWords; ++i) whole = whole && words[i] == (i ^ 0x5a5a5a5au);
  char what[160];
  std::snprintf(what, sizeof what, "%u-word records, capacity %u: %u records whole and in order",
                kWords, capacity, n_records);
  expect(whole, what);
  device->close();
}

// A model of the sample LM's table format (lm_kernels.inc) that always samples token 65: one
// order-0 context with one entry.
std::shared_ptr<fc::Buffer> one_token_model(const std::shared_ptr<fc::Device>& device) {
  constexpr uint32_t kSlotsLog2 = 4, kKeys = 8, kSpans = kKeys + 16, kEntries = kSpans + 16;
  auto model = device->new_buffer((kEntries + 1) * 4, fc::Storage::Shared);
  auto* w = static_cast<uint32_t*>(model->host_ptr());
  const uint32_t header[8] = {0x464c4d31u, kSlotsLog2, 0, kKeys, kSpans, kEntries, 1, 8};
  for (uint32_t i = 0; i < 8; ++i) w[i] = header[i];
  for (uint32_t s = 0; s < 16; ++s) w[kKeys + s] = 0xffffffffu;
  w[kKeys + 0] = 0;              // the order-0 context hashes to slot 0
  w[kSpans + 0] = (0u << 9) | 1;  // first entry 0, one entry
  w[kEntries] = (1u << 8) | 65;  // cumulative count 1, token 65
  return model;
}

void run_control_cancel(uint32_t steps) {
  auto device = fc::make_host_device();
  auto control = std::make_shared<fc::ControlBlock>(device);
  auto model = one_token_model(device);
  auto state = device->new_buffer(16, fc::Storage::Shared);
  auto history = device->new_buffer(uint64_t{steps} * 4, fc::Storage::Shared);
  auto out = device->new_buffer(4, fc::Storage::Shared);
  auto stop = device->new_buffer(4, fc::Storage::Shared);
  auto cb = device->new_queue()->command_buffer();
  fc::kernel_args::lm_decode_step step;
  step.model = model;
  step.state = state;
  step.history = history;
  step.out = out;
  step.stop = stop;
  step.eos = 0xffffffffu;
  step.history_capacity = steps;
  step.control = control->buffer();
  step.use_control = 1;
  for (uint32_t i = 0; i < steps; ++i) fc::encode(*cb, 1, step);
  cb->commit();
  std::thread canceller([&] {
    while (control->generated() < steps / 50) std::this_thread::yield();
    control->stop_after(steps);  // a limit far away, then the cancel that ends the run
    control->cancel();
  });
  canceller.join();
  cb->wait_until_completed(-1);
  const auto* st = static_cast<const uint32_t*>(state->host_ptr());
  const uint32_t flag = static_cast<const uint32_t*>(stop->host_ptr())[0];
  char what[200];
  std::snprintf(what, sizeof what,
                "control block: cancelled from another thread after %u of %u steps, stop flag %u, "
                "reported count = tokens made", st[1], steps, flag);
  expect(flag == fc::control::kStopCancelled && control->stopped() == flag &&
             control->generated() == st[1] && st[1] >= steps / 50 && st[1] < steps,
         what);
  device->close();
}

}  // namespace

int main() {
  run_control_cancel(200'000);
  run_relay(4, 200'000);     // a tiny ring: the writer waits for room all the time
  run_relay(256, 200'000);
  run_records(2, 20'000);
  return failures == 0 ? 0 : 1;
}
