"""Record channels: a device pushes fixed-size records (a tensor of one dtype and shape:
latents, logits, previews, embeddings) while it runs; the CPU reads numpy arrays.

    ch = fc.Channel(dev, dtype="f32", shape=(64, 64, 3), capacity=8)
    cb = dev.new_queue().command_buffer()
    ch.encode_init(cb)
    ch.encode_push(cb, device_buffer)        # one record from a buffer an earlier kernel wrote
    ch.encode_close(cb)
    cb.commit()
    for preview in ch.reader().stream(timeout=5):
        ...                                  # numpy arrays of shape (64, 64, 3), float32

Never a torn record: a record the producer was overwriting is never returned, whatever its
size (per-slot tags around the payload, docs/protocol.md "Record channels"). Drop-oldest counts
whole records. One consumer per channel; every wait is bounded and ends on Ctrl-C.
"""

from __future__ import annotations

from typing import AsyncIterator, Iterator, Optional, Sequence

import numpy as np

from ._core import Buffer, ChannelError, CommandBuffer, Device, RecordChannel
from ._poll import CLOSED as _CLOSED
from ._poll import PENDING as _PENDING
from ._poll import Poll, PollState

# The record dtypes, by the names the workflows use, and their numpy types. bf16 has no numpy
# type: its records are read as uint16 words (the bit patterns), which torch.from_numpy(...).
# view(torch.bfloat16) turns back into bf16 without a copy.
DTYPES = {
    "u8": np.dtype(np.uint8), "i32": np.dtype(np.int32), "u32": np.dtype(np.uint32),
    "f16": np.dtype(np.float16), "bf16": np.dtype(np.uint16), "f32": np.dtype(np.float32),
    "i64": np.dtype(np.int64), "f64": np.dtype(np.float64),
}


def record_shape(shape, where: str = "Channel", allow_scalar: bool = False) -> tuple[int, ...]:
    """A record's shape as a tuple of ints >= 1 (an int is a 1-D shape; () a scalar record
    where `allow_scalar`); TypeError / ValueError naming `where` otherwise."""
    if isinstance(shape, int):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        raise TypeError(f"{where}(shape) must be a tuple of ints, got {shape!r}") from None
    if (not dims and not allow_scalar) or any(
            isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1 for d in dims):
        raise ValueError(f"{where}(shape) must be a {'' if allow_scalar else 'non-empty '}tuple "
                         f"of ints >= 1, got {shape!r}")
    return tuple(int(d) for d in dims)


class Channel:
    """A device-to-host channel of records of one dtype and shape: `capacity` slots (a power of
    two >= 2), of which capacity - 1 hold readable records at any time (each commit marks the
    next slot for the record after it: docs/protocol.md)."""

    def __init__(self, device: Device, dtype: str, shape: Sequence[int] | int,
                 capacity: int) -> None:
        if dtype not in DTYPES:
            raise ValueError(f"Channel(dtype): expected one of {', '.join(DTYPES)}, got {dtype!r}")
        self.dtype = dtype
        self.numpy_dtype = DTYPES[dtype]
        self.shape = record_shape(shape)
        record_bytes = int(np.prod(self.shape)) * self.numpy_dtype.itemsize
        if record_bytes % 4:
            raise ValueError(f"Channel: a record of {self.shape} {dtype} is {record_bytes} bytes; "
                             "records must be a multiple of 4 bytes (the device copies u32 words)")
        self.core = RecordChannel(device, capacity, record_bytes)

    @property
    def capacity(self) -> int:
        return self.core.capacity

    @property
    def record_bytes(self) -> int:
        return self.core.record_bytes

    @property
    def device(self) -> Device:
        return self.core.device

    def encode_init(self, cb: CommandBuffer) -> None:
        self.core.encode_init(cb)

    def encode_push(self, cb: CommandBuffer, source: Buffer, offset: int = 0,
                    stop_flag: Optional[Buffer] = None) -> None:
        """Pushes one record read on the device from `source` at byte `offset` (a buffer an
        earlier kernel wrote); with `stop_flag`, skipped on the device once stop_flag[0] != 0."""
        self.core.encode_push(cb, source, offset, stop_flag)

    def encode_close(self, cb: CommandBuffer) -> None:
        self.core.encode_close(cb)

    def reader(self) -> "RecordReader":
        return RecordReader(self)


class RecordReader:
    """The CPU side of a Channel: numpy arrays of the channel's dtype and shape."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.core = channel.core.reader()

    def _empty(self, *lead: int) -> np.ndarray:
        return np.empty((*lead, *self.channel.shape), dtype=self.channel.numpy_dtype)

    @property
    def dropped(self) -> int:
        return self.core.dropped

    @property
    def delivered(self) -> int:
        return self.core.delivered

    @property
    def exhausted(self) -> bool:
        return self.core.exhausted

    def wait(self, timeout: Optional[float] = None, until=None) -> str:
        """Blocks until a record is readable ('ready'), the channel is closed and drained
        ('closed'), the command buffer `until` finished ('finished') or `timeout` passed
        ('timeout'); the GIL is released while waiting."""
        return self.core.wait(timeout, until)

    def read_into(self, out: np.ndarray) -> bool:
        """Fills `out` (one record, the channel's dtype and shape, C-contiguous) with the next
        record; False when none is readable now. Allocates nothing."""
        self._check(out, single=True)
        return self.core.read_into(out)

    def drain_into(self, out: np.ndarray) -> int:
        """Fills out[0], out[1], ... (shape [n, *shape]) with the readable records; the count."""
        self._check(out, single=False)
        return self.core.drain_into(out)

    def _check(self, out: np.ndarray, single: bool) -> None:
        want = self.channel.shape if single else ("n", *self.channel.shape)
        if not isinstance(out, np.ndarray) or out.dtype != self.channel.numpy_dtype or \
                out.shape[-len(self.channel.shape):] != self.channel.shape or \
                out.ndim != len(self.channel.shape) + (0 if single else 1):
            got = f"{out.dtype} {out.shape}" if isinstance(out, np.ndarray) else type(out).__name__
            raise ValueError(f"out must be a {self.channel.numpy_dtype} array of shape {want}, "
                             f"got {got}")

    def try_next(self) -> Optional[np.ndarray]:
        """The next record as a new array, or None when none is readable now."""
        out = self._empty()
        return out if self.core.read_into(out) else None

    def next(self, timeout: Optional[float] = None) -> np.ndarray:
        """Blocks for the next record; TimeoutError after `timeout` s; ChannelError once the
        channel is closed and drained."""
        out = self._empty()
        while True:
            if self.core.read_into(out):
                return out
            state = self.core.wait(timeout)
            if state == "closed":
                raise ChannelError("next(): the channel is closed and every record was read")
            if state == "timeout":
                raise TimeoutError(f"next(): no record within {timeout} s")

    def __iter__(self) -> Iterator[np.ndarray]:
        """Non-blocking: the records readable now."""
        while (record := self.try_next()) is not None:
            yield record

    def stream(self, timeout: Optional[float] = None) -> Iterator[np.ndarray]:
        """Blocking iteration; ends once the channel is closed and drained."""
        while True:
            record = self.try_next()
            if record is not None:
                yield record
                continue
            state = self.core.wait(timeout)
            if state == "closed":
                return
            if state == "timeout":
                raise TimeoutError(f"stream(): no record within {timeout} s")

    @property
    def position(self) -> int:
        return self.core.position

    def poll_next(self) -> Poll:
        """Never blocks: Poll(READY, record), Poll(PENDING) or Poll(CLOSED)."""
        record = self.try_next()
        if record is not None:
            return Poll(PollState.READY, record)
        return _CLOSED if self.core.exhausted else _PENDING

    async def next_async(self, timeout: Optional[float] = None) -> np.ndarray:
        """Awaits the next record; StopAsyncIteration once closed and drained; TimeoutError
        after `timeout` seconds. The process's poller thread waits (no Python sleeps)."""
        from ._reader_async import next_async

        return await next_async(self, timeout, pollable=self.core)

    def __aiter__(self) -> AsyncIterator[np.ndarray]:
        return self

    async def __anext__(self) -> np.ndarray:
        return await self.next_async()

    def close(self) -> None:
        self.core.close()

    def __enter__(self) -> "RecordReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
