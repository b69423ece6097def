"""Host-to-device channels: the CPU pushes items that kernels of an already running command
buffer take (cancel, feed, sample from the CPU without ending the command buffer).

    ch = fc.H2DChannel(dev, capacity=64)            # u32 items; or dtype="f32", shape=(4,)
    cb = dev.new_queue().command_buffer()
    ch.encode_init(cb)
    ch.encode_pop_wait(cb, out, got, timeout_us=100_000)  # the device waits for the CPU's item
    cb.commit()
    w = ch.writer()
    w.push(7)                                        # waits for room, or timeout=0 raises
    w.close()                                        # a pop of the closed, empty channel: got 0

The CPU is the single producer, a kernel the single consumer; the CPU never overwrites an item
the device has not taken (docs/protocol.md "Host-to-device channels"). `h2d_pop_wait` is refused
on Metal, where a kernel must not wait for a CPU write; `h2d_try_pop` works everywhere.
"""

from __future__ import annotations

from typing import Optional, Sequence

from ._core import Buffer, CommandBuffer, Device, H2DChannelCore

MAX_RECORD_BYTES = 64


class H2DChannel(H2DChannelCore):
    """A host-to-device channel of `capacity` items (a power of two, at most 65536), each one
    record of `dtype` and `shape` (default: one u32 word; records of 4 to 64 bytes)."""

    def __init__(self, device: Device, capacity: int = 256, dtype: str = "u32",
                 shape: Sequence[int] | int = ()) -> None:
        self.dtype, self.shape, self.numpy_dtype, record_bytes = _item_type(dtype, shape)
        super().__init__(device, capacity, record_bytes // 4)

    @property
    def record_bytes(self) -> int:
        return 4 * self.record_words

    def writer(self) -> "H2DWriter":
        """The channel's single producer (any number of handles share it; two threads pushing
        at once get ConcurrentUseError)."""
        return H2DWriter(self)

    def encode_init(self, cb: CommandBuffer) -> None:
        """A new epoch: an empty, open ring, the device at item 0. The writer's first push of
        the epoch waits until this has run on the device."""
        super().encode_init(cb)

    def encode_try_pop(self, cb: CommandBuffer, out: Buffer, got: Buffer, *, out_offset: int = 0,
                       stop_flag: Optional[Buffer] = None, stop_code: int = 0,
                       predicated: bool = False) -> None:
        """Takes the next item if there is one now (never waits): its words into `out` at word
        `out_offset`, got[0] = 1 (else 0). `predicated`: skip while stop_flag[0] != 0;
        `stop_code`: set stop_flag[0] when the channel is closed and empty or the pop fails."""
        super().encode_try_pop(cb, out, got, out_offset=out_offset, stop_flag=stop_flag,
                               stop_code=stop_code, predicated=predicated)

    def encode_pop_wait(self, cb: CommandBuffer, out: Buffer, got: Buffer, *, timeout_us: int,
                        out_offset: int = 0, stop_flag: Optional[Buffer] = None,
                        stop_code: int = 0, predicated: bool = False) -> None:
        """As encode_try_pop, but the device waits for the item, at most `timeout_us`
        microseconds; a timeout fails the command buffer when it completes (got 0). Raises
        CommandBufferError on Metal."""
        super().encode_pop_wait(cb, out, got, timeout_us=timeout_us, out_offset=out_offset,
                                stop_flag=stop_flag, stop_code=stop_code, predicated=predicated)

    def __repr__(self) -> str:
        return (f"<foundry_channels.H2DChannel {self.dtype}{list(self.shape)} x {self.capacity}"
                f" on {self.device.backend}>")


class H2DWriter:
    """The CPU side of an H2DChannel. Every push waits for room up to `timeout` seconds (None:
    no limit; 0: raise TimeoutError at once) with the GIL released; Ctrl-C ends a wait."""

    def __init__(self, channel: H2DChannel) -> None:
        self.channel = channel
        self.core = channel.writer_core()
        self._u32 = channel.dtype == "u32" and channel.shape == ()

    def push(self, value, timeout: Optional[float] = None) -> None:
        """Pushes one item: an int for a u32 channel, else a numpy array (or numpy scalar) of
        the channel's dtype and shape. ChannelError when closed or never initialised."""
        if self._u32:
            self.core.push_u32(value, timeout)
            return
        self.core.push_words(self._words(value, True, "push"), timeout, self.channel.record_words)

    def push_many(self, values, timeout: Optional[float] = None) -> int:
        """Pushes every item of `values` (shape (n, *shape), the channel's dtype; for a u32
        channel also a sequence of ints) in order, waiting for room as the device takes them,
        within one overall timeout (TimeoutError says how many went in). Returns n."""
        import numpy as np

        if self._u32 and not isinstance(values, np.ndarray):
            values = _u32_array(values)
        words = self._words(values, False, "push_many")
        return self.core.push_many_words(words, timeout, self.channel.record_words)

    def close(self, timeout: Optional[float] = None) -> None:
        """No more items in this epoch: a pop that finds the channel empty then ends (got 0,
        no error). Idempotent."""
        self.core.close(timeout)

    @property
    def pushed(self) -> int:
        """Items pushed in the current epoch."""
        return self.core.pushed

    @property
    def taken(self) -> int:
        """Items the device has taken in the current epoch."""
        return self.core.taken

    @property
    def closed(self) -> bool:
        return self.core.closed

    def _words(self, values, single: bool, where: str):
        """`values` as the flat uint32 words the channel's slots hold; ValueError naming the
        dtype and shape expected unless it is exactly one item (`single`) or (n, *shape)."""
        import numpy as np

        ch = self.channel
        arr = values if isinstance(values, np.ndarray) else (
            np.asarray(values) if isinstance(values, np.generic) else None)
        fits = arr is not None and arr.dtype == ch.numpy_dtype and (
            arr.shape == ch.shape if single else arr.shape[1:] == ch.shape and arr.ndim >= 1)
        if not fits:
            got = (f"a {arr.dtype} array of shape {arr.shape}" if arr is not None
                   else type(values).__name__)
            want = ch.shape if single else ("n", *ch.shape)
            raise ValueError(f"{where}: expected a {ch.numpy_dtype} array of shape {want} "
                             f"(the channel's {ch.dtype} items), got {got}")
        return np.ascontiguousarray(arr).reshape(-1).view(np.uint32)

    def __enter__(self) -> "H2DWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _u32_array(values):
    import numpy as np

    arr = np.asarray(values)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise ValueError(f"push_many: expected a sequence of ints, got {type(values).__name__}")
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) > 0xFFFFFFFF):
        raise ValueError("push_many: every value must be between 0 and 4294967295")
    return arr.astype(np.uint32)


def _item_type(dtype: str, shape):
    """(dtype, shape, numpy dtype or None, item bytes) of an H2D channel's items."""
    from .record_channel import DTYPES, record_shape

    if dtype not in DTYPES:
        raise ValueError(f"H2DChannel(dtype): expected one of {', '.join(DTYPES)}, got {dtype!r}")
    dims = record_shape(shape, "H2DChannel", allow_scalar=True)
    count = 1
    for d in dims:
        count *= d
    nbytes = count * DTYPES[dtype].itemsize
    if nbytes % 4 or nbytes > MAX_RECORD_BYTES:
        raise ValueError(f"H2DChannel: an item of shape {dims} {dtype} is {nbytes} bytes; items "
                         f"are 4 to {MAX_RECORD_BYTES} bytes, a multiple of 4 (u32 words)")
    return dtype, dims, DTYPES[dtype], nbytes
