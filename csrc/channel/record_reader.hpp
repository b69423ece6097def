// RecordReader: the CPU side of a record channel (RecordChannel::reader(): one consumer per
// channel). Copies each record straight into the caller's memory and keeps it only when the
// slot's tags prove no producer touched it meanwhile (docs/protocol.md, "Record channels").
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>

#include "channel/channel_cursor.hpp"
#include "channel/pollable.hpp"
#include "channel/reader.hpp"
#include "channel/record_channel.hpp"
#include "channel/wait_strategy.hpp"

namespace fc {

class RecordReader : public Pollable {
 public:
  explicit RecordReader(std::shared_ptr<RecordChannel> channel);
  ~RecordReader();
  RecordReader(const RecordReader&) = delete;
  RecordReader& operator=(const RecordReader&) = delete;

  // Copies the next whole record into `out` (record_bytes of it); false when none is readable
  // now. Never blocks, never returns a record the producer was overwriting.
  bool try_read(void* out);
  // Copies up to `max_records` records into `out` (max_records * record_bytes); the count.
  size_t drain_into(void* out, size_t max_records);
  // As ChannelU32Reader::wait: Ready when the next record's end tag is there (the next
  // try_read most likely returns it; a record overwritten meanwhile is counted as dropped).
  WaitResult wait(double timeout_s, const std::function<bool()>& interrupted = {},
                  const CommandBuffer* until = nullptr);
  void close();
  bool closed() const { return closed_; }

  uint64_t dropped() const { return dropped_; }
  uint64_t delivered() const { return delivered_; }
  uint64_t position() const { return cursor_.index(); }
  uint64_t last_index() const { return last_index_; }
  bool exhausted();
  const std::shared_ptr<RecordChannel>& channel() const { return channel_; }
  void set_wait_strategy(WaitStrategyKind kind);
  WaitStrategyKind wait_strategy() const { return strategy_.kind(); }
  // For the poller thread (awaited readers): see Pollable.
  Probe probe(bool first, IdlePlan& plan, std::exception_ptr& error) override;

 private:
  enum class Slot { Record, Dropped, NotYet };
  // Record `index` into `out`: Record (copied whole), Dropped (overwritten first), NotYet.
  Slot copy_record(uint64_t index, void* out);
  // Copies up to `max` records; 0 when none is readable (or the channel must wait for init).
  size_t read(void* out, size_t max);
  bool next_ready();     // the next record's end tag is there (or it was lapped)
  bool closed_at_end();  // closed by the producer and read to its end
  void check_usable() const;

  std::shared_ptr<RecordChannel> channel_;
  ChannelCursor cursor_;
  const uint32_t* tags_;
  const uint8_t* payload_;
  uint32_t mask_;
  uint64_t record_bytes_;
  uint64_t stride_bytes_;
  bool closed_ = false;
  uint64_t dropped_ = 0;
  uint64_t delivered_ = 0;
  uint64_t last_index_ = 0;
  std::atomic_flag busy_ = ATOMIC_FLAG_INIT;
  WaitStrategy strategy_;
};

}  // namespace fc
