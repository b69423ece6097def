// ChannelU32 and ChannelU32Reader.
#include <algorithm>
#include <chrono>

#include "bindings/bind_common.hpp"
#include "channel/channel.hpp"
#include "channel/poller.hpp"
#include "channel/reader.hpp"
#include "channel/record_reader.hpp"
#include "channel/wait_strategy.hpp"
#include "serving/request_stream.hpp"

namespace fc::bind {
namespace {

// Releasing the GIL costs ~100 ns; below this many items a copy is cheaper than that.
constexpr py::ssize_t kReleaseGilAboveItems = 4096;

// Checks `out` for drain_into and returns its writable u32 pointer.
uint32_t* checked_output(py::handle out, py::ssize_t& length) {
  if (!py::isinstance<py::array>(out)) {
    throw py::type_error("drain_into(out): out must be a numpy.ndarray of dtype uint32, got " +
                         std::string(py::str(py::type::of(out).attr("__name__"))));
  }
  auto arr = py::reinterpret_borrow<py::array>(out);
  if (!arr.dtype().is(py::dtype::of<uint32_t>())) {
    throw py::type_error("drain_into(out): out must have dtype uint32, got " +
                         std::string(py::str(arr.dtype())));
  }
  if (arr.ndim() != 1) {
    throw py::value_error("drain_into(out): out must be 1-dimensional, got ndim=" +
                          std::to_string(arr.ndim()));
  }
  if (!(arr.flags() & py::array::c_style)) {
    throw py::value_error("drain_into(out): out must be C-contiguous (a strided view would be "
                          "written out of order); pass np.ascontiguousarray-allocated storage");
  }
  if (!arr.writeable()) throw py::value_error("drain_into(out): out is read-only");
  length = arr.shape(0);
  return static_cast<uint32_t*>(arr.mutable_data());
}

// reader.stream(timeout): blocking iteration that ends once the channel is closed and drained;
// each wait (GIL released) is bounded by `timeout` (TimeoutError).
class ReaderStream {
 public:
  ReaderStream(std::shared_ptr<ChannelU32Reader> reader, py::object timeout)
      : reader_(std::move(reader)), timeout_(std::move(timeout)),
        seconds_(timeout_seconds(timeout_, "stream")) {}
  uint32_t next() {
    auto check = python_interrupt_check();
    for (;;) {
      if (auto v = reader_->try_next()) return *v;
      WaitResult res;
      {
        ReleaseGil nogil;
        res = reader_->wait(seconds_, check);
      }
      if (res == WaitResult::Closed) throw py::stop_iteration();
      if (res == WaitResult::Timeout) {
        throw fc::TimeoutError("stream(): no item within " + std::string(py::str(timeout_)) +
                               " s (position " + std::to_string(reader_->position()) + ")");
      }
    }
  }

 private:
  std::shared_ptr<ChannelU32Reader> reader_;
  py::object timeout_;
  double seconds_;
};

// The Python-level helpers these methods return live in small Python modules, imported when
// first used (asyncio only by a program that awaits a reader) and kept: poll_next and
// __anext__ run for every awaited item, and importing per call made a pending poll_next
// 0.66 us instead of 0.10 us (2-vCPU VM). gil_safe_call_once_and_store never destroys them
// (safe at interpreter exit).
struct PollValues {
  py::object poll, ready, pending, closed;
};

const PollValues& poll_values() {
  PYBIND11_CONSTINIT static py::gil_safe_call_once_and_store<PollValues> storage;
  return storage
      .call_once_and_store_result([] {
        py::module_ m = py::module_::import("foundry_channels._poll");
        return PollValues{m.attr("Poll"), m.attr("PollState").attr("READY"), m.attr("PENDING"),
                          m.attr("CLOSED")};
      })
      .get_stored();
}

const py::object& next_async_helper() {
  PYBIND11_CONSTINIT static py::gil_safe_call_once_and_store<py::object> storage;
  return storage
      .call_once_and_store_result([] {
        return py::module_::import("foundry_channels._reader_async").attr("next_async");
      })
      .get_stored();
}

// The Python exception for an error a poller wait ended with (the classes the module
// registered for the core's exceptions).
py::object python_error(const std::exception_ptr& error) {
  py::module_ core = py::module_::import("foundry_channels._core");
  try {
    std::rethrow_exception(error);
  } catch (const DeviceClosedError& e) {
    return core.attr("DeviceClosedError")(e.what());
  } catch (const DeviceError& e) {
    return core.attr("DeviceError")(e.what());
  } catch (const ChannelError& e) {
    return core.attr("ChannelError")(e.what());
  } catch (const ConcurrentUseError& e) {
    return core.attr("ConcurrentUseError")(e.what());
  } catch (const CommandBufferError& e) {
    return core.attr("CommandBufferError")(e.what());
  } catch (const Error& e) {
    return core.attr("FoundryChannelsError")(e.what());
  } catch (const std::exception& e) {
    return py::module_::import("builtins").attr("RuntimeError")(e.what());
  }
}

// One per asyncio event loop (foundry_channels._reader_async): the loop watches `fd` with
// add_reader and calls dispatch(), which resolves the futures of finished waits. The poller
// thread only writes the fd (FdTarget): it never takes the GIL. While the loop awaits a single
// reader it accepts hand-overs (poller.hpp): such a future gets the seconds left in the window
// in which the item is due, and next_async finishes the wait in place.
class AsyncWaker {
 public:
  AsyncWaker() : target_(std::make_shared<FdTarget>()) {}
  ~AsyncWaker() {
    for (auto& item : futures_) Poller::instance().disarm(item.first.cast<uint64_t>());
  }
  int fd() const { return target_->fd(); }
  // `reader`: a ChannelU32Reader, a RecordReader or a serving RequestStream (anything the
  // poller can probe).
  uint64_t arm(const py::object& reader, const py::object& timeout, py::object future) {
    std::shared_ptr<Pollable> pollable;
    if (py::isinstance<ChannelU32Reader>(reader)) {
      pollable = reader.cast<std::shared_ptr<ChannelU32Reader>>();
    } else if (py::isinstance<RecordReader>(reader)) {
      pollable = reader.cast<std::shared_ptr<RecordReader>>();
    } else if (py::isinstance<RequestStream>(reader)) {
      pollable = reader.cast<std::shared_ptr<RequestStream>>();
    } else {
      throw py::type_error("AsyncWaker.arm: reader must be a ChannelU32Reader, a RecordReader "
                           "or a RequestStream");
    }
    const double t = timeout_seconds(timeout, "next_async");
    // Before arming: the poller may probe the new wait at once, and a hand-over it misses
    // then waits for the next window.
    target_->set_accepts_handover(futures_.empty());
    const uint64_t id = Poller::instance().arm(std::move(pollable), t, target_);
    futures_[py::int_(id)] = std::move(future);  // dispatch() runs on this thread: no race
    note_armed();
    return id;
  }
  bool disarm(uint64_t id) {
    if (futures_.contains(py::int_(id))) PyDict_DelItem(futures_.ptr(), py::int_(id).ptr());
    note_armed();
    return Poller::instance().disarm(id);
  }
  size_t dispatch() {
    scratch_.clear();
    target_->take(scratch_);
    for (auto& c : scratch_) {
      py::int_ key(c.id);
      if (!futures_.contains(key)) continue;  // disarmed (cancelled) meanwhile
      py::object future = futures_[key];
      PyDict_DelItem(futures_.ptr(), key.ptr());
      if (future.attr("done")().cast<bool>()) continue;
      if (c.error) {
        future.attr("set_exception")(python_error(c.error));
      } else if (c.handover_until != std::chrono::steady_clock::time_point{}) {
        const auto left = c.handover_until - std::chrono::steady_clock::now();
        future.attr("set_result")(std::max(0.0, std::chrono::duration<double>(left).count()));
      } else {
        const char* name = c.result == WaitResult::Ready    ? "ready"
                           : c.result == WaitResult::Closed ? "closed"
                                                            : "timeout";
        future.attr("set_result")(name);
      }
    }
    const size_t n = scratch_.size();
    scratch_.clear();
    note_armed();
    return n;
  }
  size_t pending() const { return futures_.size(); }

 private:
  // A bounded in-place wait blocks this loop: only a loop with a single awaited reader takes it.
  void note_armed() { target_->set_accepts_handover(futures_.size() == 1); }

  std::shared_ptr<FdTarget> target_;
  py::dict futures_;
  std::vector<PollCompletion> scratch_;
};

}  // namespace

void bind_channel(py::module_& m) {
  py::class_<AsyncWaker>(m, "AsyncWaker", "Internal: wakes one asyncio loop's awaited readers "
                                         "(foundry_channels._reader_async).")
      .def(py::init<>())
      .def_property_readonly("fd", &AsyncWaker::fd)
      .def("arm", &AsyncWaker::arm, py::arg("reader"), py::arg("timeout"), py::arg("future"))
      .def("disarm", &AsyncWaker::disarm, py::arg("id"))
      .def("dispatch", &AsyncWaker::dispatch)
      .def_property_readonly("pending", &AsyncWaker::pending);

  m.def(
      "poller_stats",
      [] {
        auto s = Poller::instance().stats();
        py::dict d;
        d["armed"] = s.armed;
        d["rounds"] = s.rounds;
        d["completions"] = s.completions;
        d["handovers"] = s.handovers;
        d["threads_started"] = s.threads_started;
        d["running"] = s.running;
        return d;
      },
      "The poller thread that serves every awaited reader of the process: armed waits, passes "
      "over them, completions (hand-overs among them: waits finished in place by a loop with "
      "a single awaited reader), threads started so far, whether it runs.");
  m.def(
      "_poller_shutdown",
      [] {
        ReleaseGil nogil;
        Poller::instance().shutdown();
      },
      "Ends the poller thread (registered with atexit); a later await starts it again.");

  py::class_<ReaderStream>(m, "ReaderStream", "reader.stream(): an iterator over the items.")
      .def("__iter__", [](py::object self) { return self; })
      .def("__next__", &ReaderStream::next);

  py::class_<ChannelU32, std::shared_ptr<ChannelU32>>(m, "ChannelU32", R"doc(
A device-to-host ring of u32 items (token ids). Drop-oldest: the producer never blocks; a
reader that falls more than `capacity` items behind loses the oldest and counts them.

ChannelU32(device, capacity) allocates it; encode CommandBuffer.channel_init(ch) before use.
A channel has one consumer: channel.reader() returns its reader.)doc")
      .def(py::init([](const py::object& device, const py::object& capacity,
                       const py::object& slot_protocol) {
             if (device.is_none() || !py::isinstance<Device>(device)) {
               throw py::type_error("ChannelU32(device, capacity): device must be a "
                                    "foundry_channels.Device, got " +
                                    std::string(py::str(py::type::of(device).attr("__name__"))));
             }
             uint64_t n = checked_uint(capacity, "ChannelU32(capacity)", UINT64_MAX);
             // None: the device's default (Device(slot_protocol=...)); else 1 or 2.
             uint64_t protocol = 0;
             if (!slot_protocol.is_none()) {
               protocol = checked_uint(slot_protocol, "ChannelU32(slot_protocol)", UINT64_MAX);
               if (protocol == 0 || protocol > 2) {
                 throw std::invalid_argument("ChannelU32(slot_protocol): 1 or 2, got " +
                                             std::to_string(protocol));
               }
             }
             return std::make_shared<ChannelU32>(device.cast<std::shared_ptr<Device>>(), n,
                                                 static_cast<uint32_t>(protocol));
           }),
           py::arg("device"), py::arg("capacity"), py::kw_only(),
           py::arg("slot_protocol") = py::none())
      .def_property_readonly("slot_protocol", &ChannelU32::slot_protocol,
                             "The slot protocol every channel_init of this channel starts: 1 "
                             "(one 8-byte store per slot) or 2 (32-bit stores, tag checked "
                             "before and after the value); docs/protocol.md.")
      .def_property_readonly("capacity", &ChannelU32::capacity)
      .def_property_readonly("device", &ChannelU32::device)
      .def_property_readonly(
          "header",
          [](py::object self) {
            auto& ch = self.cast<ChannelU32&>();
            ch.device()->check_usable("view a channel");
            return raw_view(ch.header_words(), layout::kHeaderWords, self);
          },
          "Raw read-only view of the header words (header_layout() names them). It changes "
          "under you while the device runs; use a reader to consume items.")
      .def_property_readonly(
          "ring",
          [](py::object self) {
            auto& ch = self.cast<ChannelU32&>();
            ch.device()->check_usable("view a channel");
            return raw_view(ch.ring_words(), ch.capacity(), self, layout::kSlotWords);
          },
          "Raw read-only view of the value word of each ring slot (item i in slot "
          "i % capacity); may be overwritten at any moment while the device runs (no "
          "validation: use a reader for items).")
      .def_property_readonly(
          "slots",
          [](py::object self) {
            auto& ch = self.cast<ChannelU32&>();
            ch.device()->check_usable("view a channel");
            return raw_view(ch.ring_words(), size_t{ch.capacity()} * layout::kSlotWords, self)
                .attr("reshape")(ch.capacity(), layout::kSlotWords);
          },
          "Raw read-only view of the ring as (capacity, 2) words: (value, tag) per slot, tag = "
          "item index + 1.")
      .def_property_readonly(
          "buffers",
          [](const ChannelU32& ch) {
            return py::make_tuple(ch.header_buffer(), ch.data_buffer(), ch.cursor_buffer());
          },
          "(header, data, producer cursor) as Buffers, for kernels that push from inside "
          "(the fused push of lm_decode_step; see csrc/kernels/channel_kernels.inc).")
      .def(
          "reader",
          [](ChannelU32& ch, const py::object& wait_strategy) {
            auto r = ch.reader();
            if (!wait_strategy.is_none()) r->set_wait_strategy(strategy_from(wait_strategy));
            return r;
          },
          py::arg("wait_strategy") = py::none(), R"doc(
The channel's one consumer. While a reader of this channel is alive (and not closed) this
returns that same reader, so two parts of a program never both receive every item: each item is
delivered once. Once the reader is closed or garbage collected, the next call makes a new reader
that continues where the last one stopped. A reader made after channel_init was encoded reads
the run that init starts (it waits for the init to run on the device). `wait_strategy`
('adaptive', 'spin' or 'backoff') sets the reader's wait_strategy.)doc");

  py::class_<ChannelU32Reader, std::shared_ptr<ChannelU32Reader>>(m, "ChannelU32Reader", R"doc(
The CPU side of a ChannelU32, from channel.reader() (there is no constructor: a channel has one
consumer); lock-free and allocation-free.

Iteration is non-blocking: it yields what is readable now and stops when the ring is empty.
next(timeout=...) blocks.)doc")
      .def("try_next", &ChannelU32Reader::try_next,
           "The next item, or None if nothing is readable now (never blocks).")
      .def(
          "drain_into",
          [](ChannelU32Reader& r, py::handle out) {
            py::ssize_t length = 0;
            uint32_t* data = checked_output(out, length);
            if (length >= kReleaseGilAboveItems) {
              ReleaseGil nogil;
              return r.drain_into(data, static_cast<size_t>(length));
            }
            return r.drain_into(data, static_cast<size_t>(length));
          },
          py::arg("out"),
          "Copies up to len(out) readable items into the front of `out` (a contiguous, "
          "writable 1-D numpy uint32 array); returns the count. Never blocks.")
      .def(
          "wait",
          [](ChannelU32Reader& r, const py::object& timeout, const std::shared_ptr<CommandBuffer>& until) {
            return wait_from_python(r, timeout, until);
          },
          py::arg("timeout") = py::none(), py::arg("until") = nullptr,
          "Blocks until an item is readable ('ready'), the channel is closed and drained "
          "('closed'), the command buffer `until` completed or failed ('finished'), or the "
          "timeout passes ('timeout').")
      .def(
          "next",
          [](ChannelU32Reader& r, const py::object& timeout) -> uint32_t {
            double t = timeout_seconds(timeout, "next");
            auto check = python_interrupt_check();
            for (;;) {
              if (auto v = r.try_next()) return *v;
              WaitResult res;
              {
                ReleaseGil nogil;
                res = r.wait(t, check);
              }
              if (res == WaitResult::Timeout) {
                throw fc::TimeoutError("next(): no item arrived within " +
                                       std::string(py::str(timeout)) + " s (position " +
                                       std::to_string(r.position()) + ")");
              }
              if (res == WaitResult::Closed) {
                throw ChannelError("next(): the channel is closed and every item was read");
              }
            }
          },
          py::arg("timeout") = py::none(),
          "Blocks for the next item; TimeoutError after `timeout` seconds; ChannelError once "
          "the channel is closed and drained.")
      .def("__iter__", [](py::object self) { return self; })
      .def("__next__",
           [](ChannelU32Reader& r) {
             if (auto v = r.try_next()) return *v;
             throw py::stop_iteration();
           })
      .def(
          "stream",
          [](const std::shared_ptr<ChannelU32Reader>& r, const py::object& timeout) {
            return ReaderStream(r, timeout);
          },
          py::arg("timeout") = py::none(),
          "Blocking iteration: yields items as they arrive and ends once the channel is closed "
          "and drained. `timeout` bounds each wait for the next item (TimeoutError).")
      .def(
          "poll_next",
          [](ChannelU32Reader& r) {
            const PollValues& values = poll_values();
            if (auto v = r.try_next()) return values.poll(values.ready, *v);
            // exhausted re-checks the write count after seeing the closed flag, so an item
            // pushed just before the close is never reported as CLOSED.
            return r.exhausted() ? values.closed : values.pending;
          },
          "Never blocks: Poll(READY, item), Poll(PENDING) or Poll(CLOSED).")
      .def(
          "next_async",
          [](py::object self, const py::object& timeout) {
            return next_async_helper()(self, timeout);
          },
          py::arg("timeout") = py::none(),
          "Awaitable: the next item; StopAsyncIteration once closed and drained; TimeoutError "
          "after `timeout` seconds.")
      .def("__aiter__", [](py::object self) { return self; })
      .def("__anext__", [](py::object self) {
        return next_async_helper()(self, py::none());
      })
      .def_property_readonly("dropped", &ChannelU32Reader::dropped,
                             "Items lost because the producer overwrote them first.")
      .def_property_readonly("delivered", &ChannelU32Reader::delivered)
      .def_property_readonly("position", &ChannelU32Reader::position)
      .def_property_readonly("last_index", &ChannelU32Reader::last_index,
                             "Index of the item try_next()/next() returned last (gaps show "
                             "where items were dropped).")
      .def_property_readonly("available", &ChannelU32Reader::available)
      .def_property_readonly("exhausted", &ChannelU32Reader::exhausted,
                             "True once the channel is closed and every item was read.")
      .def_property_readonly("channel", &ChannelU32Reader::channel)
      .def("skip_to_end", &ChannelU32Reader::skip_to_end,
           "Moves past every item published so far in the current run without delivering them "
           "(not counted as dropped); returns how many. 0 while the channel's init has not run.")
      .def("close", &ChannelU32Reader::close,
           "Ends this reader (later calls raise ChannelError); channel.reader() then makes a "
           "new one that continues at this reader's position.")
      .def_property_readonly("closed", &ChannelU32Reader::closed)
      .def_property(
          "wait_strategy",
          [](const ChannelU32Reader& r) { return wait_strategy_name(r.wait_strategy()); },
          [](ChannelU32Reader& r, const py::object& name) {
            r.set_wait_strategy(strategy_from(name));
          },
          "How blocking waits idle: 'adaptive' (default: learns the arrival rate, sleeps until "
          "just before the next item is due, spins right after a commit), 'spin' (lowest "
          "latency, a busy core) or 'backoff' (spin, yield, sleeps doubling to 1 ms).")
      .def_property_readonly(
          "wait_stats",
          [](const ChannelU32Reader& r) {
            const auto& s = r.strategy_state();
            py::dict d;
            d["strategy"] = wait_strategy_name(s.kind());
            d["samples"] = s.samples();
            d["mean_gap_s"] = s.mean_gap_s();
            d["jitter_s"] = s.jitter_s();
            d["commit_lag_s"] = s.commit_lag_s();
            d["commit_driven"] = s.commit_driven();
            d["commit_gap_s"] = s.commit_gap_s();
            d["oversleep_margin_s"] = std::chrono::duration<double>(s.oversleep_margin()).count();
            d["handover_lead_s"] = std::chrono::duration<double>(s.handover_lead()).count();
            return d;
          },
          "What the adaptive strategy learnt: inter-arrival mean and jitter, commit -> item lag, "
          "share of items that followed a commit, how early a predicted sleep ends (its timed "
          "wake-ups' lateness), and how early the poller hands a wait over to an awaiting loop.")
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](ChannelU32Reader& r, py::args) { r.close(); });
}

}  // namespace fc::bind
