// Counts real heap allocations on the hot paths and asserts there are none in steady state:
//   push  - the channel_u32_push kernel as the host device runs it
//   drain - ChannelU32Reader::drain_into and try_next
//   records - the record_push kernel and RecordReader::try_read / drain_into, laps included
//   h2d - H2DWriter::try_push / push / push_many and the h2d_try_pop kernel, laps included
// Every global operator new in this binary goes through the counting versions below.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <vector>

#include "channel/channel.hpp"
#include "channel/h2d_channel.hpp"
#include "channel/reader.hpp"
#include "channel/record_channel.hpp"
#include "channel/record_reader.hpp"
#include "host/host_kernels.hpp"
#include "stress_support.hpp"

static std::atomic<long> g_allocations{0};

void* operator new(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return operator new(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

using fc_test::expect;
using fc_test::failures;

int main() {
  auto device = fc::make_host_device();
  auto channel = std::make_shared<fc::ChannelU32>(device, 1024);
  auto queue = device->new_queue();
  auto cb = queue->command_buffer();
  channel->encode_init(*cb);
  channel->encode_push(*cb, 7);  // a recorded push dispatch we can run directly below
  auto source = device->new_buffer(64, fc::Storage::Shared);
  channel->encode_push_from(*cb, source, 4, 1, 0);
  cb->commit();
  cb->wait_until_completed(-1);
  const fc::Dispatch push_immediate = cb->dispatches()[1];
  const fc::Dispatch push_from_buffer = cb->dispatches()[2];

  auto reader = channel->reader();
  std::vector<uint32_t> out(4096);
  reader->drain_into(out.data(), out.size());  // attach (first read) outside the measurement

  long before = g_allocations.load();
  for (int round = 0; round < 1000; ++round) {
    for (int i = 0; i < 1500; ++i) fc::host::run_dispatch(push_immediate);  // laps the ring
    fc::host::run_dispatch(push_from_buffer);
    size_t n = reader->drain_into(out.data(), 100);
    while (auto v = reader->try_next()) n += 1;
    (void)n;
  }
  long during = g_allocations.load() - before;
  std::printf("allocations during 1504000 pushes and 2000 drains: %ld\n", during);
  expect(during == 0, "push and drain paths allocate nothing in steady state");
  expect(reader->dropped() > 0, "the measurement included the lapped (drop) path");

  // Records: a 1 KiB record channel of 4 slots, lapped by every round.
  auto records = std::make_shared<fc::RecordChannel>(device, 4, 1024);
  auto record_source = device->new_buffer(1024, fc::Storage::Shared);
  auto rcb = queue->command_buffer();
  records->encode_init(*rcb);
  records->encode_push(*rcb, record_source, 0);
  rcb->commit();
  rcb->wait_until_completed(-1);
  const fc::Dispatch push_record = rcb->dispatches()[1];
  auto record_reader = records->reader();
  std::vector<uint8_t> record_out(4 * 1024);
  record_reader->drain_into(record_out.data(), 4);  // attach outside the measurement

  before = g_allocations.load();
  for (int round = 0; round < 1000; ++round) {
    for (int i = 0; i < 6; ++i) fc::host::run_dispatch(push_record);  // laps the 4 slots
    size_t n = record_reader->drain_into(record_out.data(), 2);
    while (record_reader->try_read(record_out.data())) ++n;
    (void)n;
  }
  during = g_allocations.load() - before;
  std::printf("allocations during 6000 record pushes and 1000 record drains: %ld\n", during);
  expect(during == 0, "record push and read paths allocate nothing in steady state");
  expect(record_reader->dropped() > 0, "the record measurement included the lapped path");

  // Host-to-device: a 4-slot ring that the writer fills and the pop kernel empties, lapped by
  // every round; the kernel runs directly, as the device thread would.
  auto h2d = std::make_shared<fc::H2DChannel>(device, 4);
  auto popped = device->new_buffer(4, fc::Storage::Shared);
  auto got = device->new_buffer(4, fc::Storage::Shared);
  auto hcb = queue->command_buffer();
  h2d->encode_init(*hcb);
  fc::H2DChannel::PopTarget target;
  target.out = popped;
  target.got = got;
  h2d->encode_try_pop(*hcb, target);
  hcb->commit();
  hcb->wait_until_completed(-1);
  const fc::Dispatch pop = hcb->dispatches()[1];
  fc::H2DWriter& writer = h2d->writer();
  const uint32_t batch[3] = {1, 2, 3};
  writer.push(batch, -1, {});  // the first push starts the writer's epoch outside the measurement
  fc::host::run_dispatch(pop);

  before = g_allocations.load();
  for (uint32_t round = 0; round < 1000; ++round) {
    writer.try_push(&round);
    writer.push(&round, 0, {});
    writer.push_many(batch, 2, 0, {});
    for (int i = 0; i < 4; ++i) fc::host::run_dispatch(pop);
  }
  during = g_allocations.load() - before;
  std::printf("allocations during 4000 H2D pushes and 4000 pops: %ld\n", during);
  expect(during == 0, "H2D push and pop paths allocate nothing in steady state");
  expect(writer.taken() == 4001 && writer.pushed() == 4001, "every H2D item was taken");

  device->close();
  return failures == 0 ? 0 : 1;
}
