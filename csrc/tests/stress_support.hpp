// What the C++ tests share: a check that prints and counts, and the concurrent runs both slot
// protocols are stressed with (test_concurrent_stress.cpp: protocol 1, test_slot_protocol.cpp:
// protocol 2): a real producer (the host device thread) and a consumer thread at once.
#pragma once

#include <cstdio>
#include <thread>
#include <vector>

#include "channel/channel.hpp"
#include "channel/reader.hpp"

namespace fc_test {

inline int failures = 0;
inline void expect(bool ok, const char* what) {
  std::printf("%s: %s\n", ok ? "ok  " : "FAIL", what);
  if (!ok) ++failures;
}

inline void run_concurrent(uint32_t protocol, uint32_t capacity, size_t batch, uint32_t n_items) {
  auto device = fc::make_host_device();
  auto channel = std::make_shared<fc::ChannelU32>(device, capacity, protocol);
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
                "protocol %u, capacity %u batch %zu: %llu received + %llu dropped == %u, in order, "
                "last item",
                protocol, capacity, batch, (unsigned long long)received, (unsigned long long)dropped,
                n_items);
  expect(in_order && received + dropped == n_items && last == int64_t{n_items} - 1, what);
  device->close();
}

// Re-initialisation under a live reader, concurrently: the device runs epochs of
// init + push_sequence(base_e, n) back to back while the consumer drains. Every item the reader
// delivers between two ChannelErrors must come from one epoch, in order: an old reader never
// takes a new run's item for one of its own.
inline void run_reinit(uint32_t protocol, uint32_t capacity, uint32_t epochs, uint32_t n_items) {
  auto device = fc::make_host_device();
  auto channel = std::make_shared<fc::ChannelU32>(device, capacity, protocol);
  auto queue = device->new_queue();
  auto first = queue->command_buffer();
  channel->encode_init(*first);
  first->commit();
  first->wait_until_completed(-1);
  auto reader = channel->reader();
  reader->try_next();  // attaches to the first run before the re-inits (nothing to read yet)
  auto cb = queue->command_buffer();
  for (uint32_t e = 1; e < epochs; ++e) {
    channel->encode_init(*cb);
    channel->encode_push_sequence(*cb, e << 24, n_items);
  }
  channel->encode_close(*cb);
  cb->commit();
  bool consistent = true;
  uint32_t errors = 0;
  std::thread consumer([&] {
    std::vector<uint32_t> out(257);
    int64_t last = -1;
    for (;;) {
      try {
        size_t n = reader->drain_into(out.data(), out.size());
        for (size_t i = 0; i < n; ++i) {
          if (last >= 0 && (out[i] >> 24 != uint32_t(last) >> 24 || out[i] <= uint32_t(last))) {
            consistent = false;
          }
          last = out[i];
        }
        if (n == 0 && reader->wait(10.0) != fc::WaitResult::Ready) break;
      } catch (const fc::ChannelError&) {
        ++errors;
        last = -1;  // the next items belong to a newer epoch
      }
    }
  });
  consumer.join();
  cb->wait_until_completed(-1);
  char what[160];
  std::snprintf(what, sizeof what,
                "protocol %u: re-init x%u under a live reader (capacity %u): each run in order, "
                "%u re-inits reported", protocol, epochs, capacity, errors);
  expect(consistent && errors >= 1 && errors <= epochs, what);
  device->close();
}

}  // namespace fc_test
