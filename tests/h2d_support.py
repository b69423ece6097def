"""Helpers of the host-to-device channel tests: a channel whose init ran, pops encoded into one
command buffer, and a relay run (one long kernel popping into a D2H channel)."""

from __future__ import annotations

import threading
from typing import Callable

import foundry_channels as fc

WAIT_US = 30_000_000  # a device wait long enough never to end a test by itself


def ready_channel(device: fc.Device, capacity: int = 8, **kwargs) -> fc.H2DChannel:
    """An H2D channel whose init has run on the device."""
    ch = fc.H2DChannel(device, capacity, **kwargs)
    cb = device.new_queue().command_buffer()
    ch.encode_init(cb)
    cb.commit()
    assert cb.wait_until_completed(timeout=30)
    return ch


class Pops:
    """`count` pops of `ch` in one command buffer, each into its own word(s) of `out` and
    `got` (got[k] = 1 when pop k took an item)."""

    def __init__(self, ch: fc.H2DChannel, count: int, *, wait_us: int | None = WAIT_US,
                 stop_flag=None, stop_code: int = 0, predicated: bool = False) -> None:
        dev = ch.device
        self.ch, self.count = ch, count
        self.out = dev.buffer(4 * ch.record_words * count)
        self.gots = [dev.buffer(4) for _ in range(count)]
        self.cb = dev.new_queue().command_buffer()
        for k, got in enumerate(self.gots):
            kwargs = dict(out_offset=k * ch.record_words, stop_flag=stop_flag,
                          stop_code=stop_code, predicated=predicated)
            if wait_us is None:
                ch.encode_try_pop(self.cb, self.out, got, **kwargs)
            else:
                ch.encode_pop_wait(self.cb, self.out, got, timeout_us=wait_us, **kwargs)

    def run(self, timeout: float = 60) -> "Pops":
        self.cb.commit()
        assert self.cb.wait_until_completed(timeout)
        return self

    def values(self, dtype="uint32"):
        return self.out.numpy(dtype)

    @property
    def got_flags(self) -> list[int]:
        return [int(g.numpy()[0]) for g in self.gots]


def in_thread(fn: Callable[[], None]) -> threading.Thread:
    """Runs fn on a new thread; join() re-raises what it raised."""
    errors: list[BaseException] = []

    def run():
        try:
            fn()
        except BaseException as e:  # noqa: BLE001 - handed to join()
            errors.append(e)

    t = threading.Thread(target=run, daemon=True)
    join = t.join

    def checked_join(timeout=None):
        join(timeout)
        assert not t.is_alive(), "the thread did not finish"
        if errors:
            raise errors[0]

    t.join = checked_join
    t.start()
    return t


def relay(ch: fc.H2DChannel, count: int, *, sink_capacity: int = 1 << 12,
          wait_us: int = WAIT_US, stamp: bool = False):
    """Encodes and commits one h2d_relay_u32 kernel that pops up to `count` items of `ch` and
    pushes each into a new D2H channel; returns (command buffer, sink, taken, stamps)."""
    dev = ch.device
    sink = fc.ChannelU32(dev, sink_capacity)
    taken = dev.buffer(8)
    stamps = dev.buffer(8 * max(count, 1)) if stamp else None
    cb = dev.new_queue().command_buffer()
    cb.channel_init(sink)
    cb.dispatch("h2d_relay_u32", 1, source=ch, sink=sink, taken=taken, stamps=stamps,
                count=count, timeout_us=wait_us, sink_capacity=sink_capacity,
                stamp=1 if stamp else 0)
    cb.channel_close(sink)
    cb.commit()
    return cb, sink, taken, stamps
