// A real concurrent producer (the host device thread running channel_u32_push_sequence) and
// a consumer thread draining at the same time. Built with -fsanitize=thread by .ci/run: the
// shared header and ring words are only ever accessed as atomics, so ThreadSanitizer must
// report nothing, and every value must equal its index (a torn read would break the order).
#include <cstdio>
#include <thread>
#include <vector>

#include "channel/channel.hpp"
#include "channel/reader->hpp"

static int failures = 0;
static void expect(bool ok, const char* what) {
  std::printf("%s: %s\n", ok ? "ok  " : "FAIL", what);
  if (!ok) ++failures;
}

static void run(uint32_t capacity, size_t batch, uint32_t n_items) {
  auto device = fc::make_host_device();
  auto channel = std::make_shared<fc::ChannelU32>(device, capacity);
  auto cb = device->new_queue()->command_buffer();
  channel->encode_init(*cb);
  channel->encode_push_sequence(*cb, 0, n_items);
  channel->encode_close(*cb);
  cb->commit();

  uint64_t received = 0, dropped = 0;
  bool in_order = true;
  int64_t last = -1;
  std::thread consumer([&] {
    auto reader = channel->reader();
    std::vector<uint32_t> out(batch);
    for (;;) {
      size_t n = reader->drain_into(out.data(), out.size());
      for (size_t i = 0; i < n; ++i) {
        if (static_cast<int64_t>(out[i]) <= last) in_order = false;
        last = out[i];
      }
      received += n;
      if (n == 0 && reader->wait(10.0) != fc::WaitResult::Ready) break;
    }
    dropped = reader->dropped();
  });
  consumer.join();
  cb->wait_until_completed(-1);
  char what[160];
  std::snprintf(what, sizeof what,
                "capacity %u batch %zu: %llu received + %llu dropped == %u, in order, last item",
                capacity, batch, (unsigned long long)received, (unsigned long long)dropped,
                n_items);
  expect(in_order && received + dropped == n_items && last == int64_t{n_items} - 1, what);
  device->close();
}

int main() {
  run(1u << 16, 4096, 2'000'000);
  run(1024, 64, 2'000'000);
  run(16, 3, 1'000'000);  // lapped again and again
  return failures == 0 ? 0 : 1;
}
