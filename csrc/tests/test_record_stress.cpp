// Record channels with a real concurrent producer (the host device thread filling and pushing
// records) and a consumer thread draining at the same time. Built with -fsanitize=thread (and
// ASan+UBSan) by .ci/run: every shared word is accessed atomically (the payload copy too, under
// TSan), so ThreadSanitizer must report nothing, and every record read must be one whole
// pattern (seed ^ position): a record mixed from two pushes would fail the check.
#include <cstdio>
#include <thread>
#include <vector>

#include "channel/record_channel.hpp"
#include "channel/record_reader.hpp"
#include "stress_support.hpp"

using fc_test::expect;
using fc_test::failures;

// threads 0: the channel's own push (one thread on the host, 16-byte vectors); otherwise a
// named record_push of `threads` threads (each fences and counts itself done, the last commits)
// from word `offset` of the staging buffer (1: the word-by-word copy).
static void run(uint32_t capacity, uint32_t words, uint32_t records, uint32_t threads = 0,
                uint32_t offset = 0) {
  auto device = fc::make_host_device();
  auto channel = std::make_shared<fc::RecordChannel>(device, capacity, uint64_t{words} * 4);
  auto staging = device->new_buffer(uint64_t{words + offset} * 4, fc::Storage::Private);
  auto cb = device->new_queue()->command_buffer();
  channel->encode_init(*cb);
  for (uint32_t k = 0; k < records; ++k) {
    fc::kernel_args::fill_pattern_u32 fill;
    fill.out = staging;
    fill.seed = k + 1;
    fill.words = words + offset;
    fc::encode(*cb, words + offset, fill);
    if (threads == 0) {
      channel->encode_push(*cb, staging, 0);
      continue;
    }
    fc::kernel_args::record_push push;
    push.channel = channel->kernel_buffers();
    push.source = staging;
    push.capacity = capacity;
    push.record_words = words;
    push.stride = channel->stride_words();
    push.source_offset = offset;
    push.threads = threads;
    push.wide = 1;
    fc::encode(*cb, threads, push);
  }
  channel->encode_close(*cb);
  cb->commit();

  bool whole = true, in_order = true;
  uint64_t received = 0, dropped = 0;
  std::thread consumer([&] {
    auto reader = channel->reader();
    std::vector<uint32_t> out(words);
    int64_t last = -1;
    for (;;) {
      if (reader->drain_into(out.data(), 1) == 1) {
        const uint32_t seed = out[0] ^ (offset * 0x9e3779b1u);
        for (uint32_t i = 0; i < words; ++i) {
          if (out[i] != (seed ^ ((i + offset) * 0x9e3779b1u))) whole = false;
        }
        if (static_cast<int64_t>(seed) <= last) in_order = false;
        last = seed;
        ++received;
      } else if (reader->wait(10.0) != fc::WaitResult::Ready) {
        break;
      }
    }
    dropped = reader->dropped();
  });
  consumer.join();
  cb->wait_until_completed(-1);
  char what[200];
  std::snprintf(what, sizeof what,
                "capacity %u, %u-word records, %u threads, offset %u: %llu received + %llu "
                "dropped == %u, each whole, in order", capacity, words, threads, offset,
                (unsigned long long)received,
                (unsigned long long)dropped, records);
  expect(whole && in_order && received + dropped == records, what);
  device->close();
}

int main() {
  run(2, 256, 2000);     // 1 KiB records lapping a 2-slot ring
  run(4, 16384, 200);    // 64 KiB
  run(2, 262144, 20);    // 1 MiB
  run(2, 4099, 400, 7, 0);  // 16 KiB + 12 bytes, 7 threads: vectors, then the 3 words past them
  run(4, 4096, 400, 5, 1);  // 16 KiB from an odd word: word by word, 5 threads
  return failures == 0 ? 0 : 1;
}
