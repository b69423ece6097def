"""The value kinds a workflow passes between steps.

A value is one of:
  u32       a Python int in 0..2^32-1 (a scalar known on the CPU)
  bool, str CPU constants (flags, prompts)
  tensor    `TensorArg`: a device buffer with a dtype and a shape
  channel   `Channel`: a ChannelU32 registered in the run's `ctx.channels`; its item type
            (ValueType.dtype) is "u32" (tokens), "bytes" (a ByteChannel: text) or
            "record/<dtype>" with the record's shape as ValueType.shape (a record Channel:
            tensors)

Channel is its own variant, not a tensor: its buffers have a moving cursor and drop-oldest
validity, so reading one as a tensor (or writing a tensor op's output into one) is an error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional, Union

import numpy as np

from .._core import Buffer, ChannelU32, ChannelU32Reader
from ..byte_channel import ByteChannel, ByteReader
from ..record_channel import Channel as RecordChannel
from ..record_channel import RecordReader

U32_MAX = 0xFFFFFFFF
DTYPES = {"u32": np.uint32, "i32": np.int32, "f32": np.float32}
VALUE_KINDS = ("u32", "bool", "str", "tensor", "channel")
CHANNEL_ITEMS = ("u32", "bytes")  # a channel value's dtype: what its items are ...
RECORD_ITEMS = "record/"          # ... or "record/<dtype>", records of ValueType.shape


def record_items(dtype: str) -> str:
    """The item type of a channel of `dtype` records."""
    return RECORD_ITEMS + dtype


@dataclass(frozen=True)
class ValueType:
    """What is known of a value before the run: its kind, a tensor's dtype and shape (shape
    None: only known at run time), a channel's item type as its dtype (None: only known at
    run time)."""

    kind: str
    dtype: Optional[str] = None
    shape: Optional[tuple[int, ...]] = None

    def describe(self) -> str:
        if self.kind == "channel":
            if self.dtype and self.dtype.startswith(RECORD_ITEMS):
                shape = "" if self.shape is None else "[" + ", ".join(map(str, self.shape)) + "]"
                return f"channel of {self.dtype[len(RECORD_ITEMS):]}{shape} records"
            items = {"u32": " of u32 items", "bytes": " of bytes"}.get(self.dtype, "")
            return "channel" + items
        if self.kind != "tensor":
            return self.kind
        shape = "" if self.shape is None else "[" + ", ".join(map(str, self.shape)) + "]"
        return f"tensor {self.dtype or ''}{shape}".rstrip()


@dataclass(frozen=True)
class TensorArg:
    """A device buffer seen as a tensor: dtype and shape over its first bytes."""

    buffer: Buffer
    dtype: str
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"TensorArg: dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")
        if self.nbytes > self.buffer.nbytes:
            raise ValueError(f"TensorArg: {self.describe()} needs {self.nbytes} bytes, the "
                             f"buffer has {self.buffer.nbytes}")

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.numel * np.dtype(DTYPES[self.dtype]).itemsize

    def numpy(self) -> np.ndarray:
        """A zero-copy view (shared buffers only); the device may write it while work runs."""
        flat = self.buffer.numpy(DTYPES[self.dtype])
        return flat[: self.numel].reshape(self.shape)

    def tolist(self) -> list:
        return self.numpy().tolist()

    def describe(self) -> str:
        return ValueType("tensor", self.dtype, self.shape).describe()

    @classmethod
    def zeros(cls, device, dtype: str, shape: tuple[int, ...], storage: str = "shared") -> "TensorArg":
        itemsize = np.dtype(DTYPES[dtype]).itemsize
        buffer = device.buffer(max(1, math.prod(shape)) * itemsize, storage=storage)
        if storage == "shared":
            buffer.numpy("uint8")[:] = 0  # fresh device memory is not zeroed on every backend
        # private buffers are zero-filled by every backend when allocated (no CPU view)
        return cls(buffer, dtype, tuple(shape))

    @classmethod
    def upload_private(cls, device, cb, array, dtype: str = "u32") -> "TensorArg":
        """`array` copied into device-local (private) memory by a copy encoded into `cb`, for
        data every step reads: on a discrete GPU each read of shared (host-mapped) memory
        crosses the bus (~1 us, and a kernel's dependent reads pay it one after another).
        The copy reads a shared staging buffer, which the command buffer keeps alive until
        the copy is done."""
        staging = cls.from_array(device, array, dtype)
        tensor = cls(device.buffer(staging.nbytes, storage="private"), dtype, staging.shape)
        words = staging.nbytes // 4  # buffer_copy_u32 copies words: every dtype is 4 bytes
        cb.dispatch("buffer_copy_u32", words, source=staging.buffer,
                    destination=tensor.buffer, words=words)
        return tensor

    @classmethod
    def from_array(cls, device, array, dtype: str = "u32") -> "TensorArg":
        data = np.ascontiguousarray(array, dtype=DTYPES[dtype])
        tensor = cls.zeros(device, dtype, data.shape or (1,))
        tensor.numpy()[...] = data.reshape(tensor.shape)
        return tensor


@dataclass(frozen=True)
class Channel:
    """A channel as a workflow value, registered by name in ctx.channels. `channel` is the
    ChannelU32 the device pushes into (init, close and pushes take it); a byte channel also
    has `bytes`, the ByteChannel over it (its items pack the bytes of strings); a record
    channel has `records` instead (and no ChannelU32)."""

    name: str
    channel: Optional[ChannelU32]
    bytes: Optional[ByteChannel] = None
    records: Optional[RecordChannel] = None

    @classmethod
    def of_records(cls, name: str, channel: RecordChannel) -> "Channel":
        return cls(name, None, None, channel)

    def encode_init(self, cb) -> None:
        if self.records is not None:
            self.records.encode_init(cb)
        else:
            cb.channel_init(self.channel)

    def encode_close(self, cb) -> None:
        if self.records is not None:
            self.records.encode_close(cb)
        else:
            cb.channel_close(self.channel)

    @classmethod
    def of_bytes(cls, name: str, channel: ByteChannel) -> "Channel":
        return cls(name, channel.channel, channel)

    @property
    def items(self) -> str:
        """The item type: "bytes" for a byte channel, "record/<dtype>" for records, else
        "u32"."""
        if self.records is not None:
            return record_items(self.records.dtype)
        return "bytes" if self.bytes is not None else "u32"

    @property
    def capacity(self) -> int:
        """In items (u32 slots, or records), as the runners size their windows."""
        return (self.records or self.channel).capacity

    def reader(self, **options) -> Union[ChannelU32Reader, ByteReader, RecordReader]:
        """A reader of the items (u32), of the strings and text (byte channel) or of the
        records (numpy arrays); `options` go to ChannelU32.reader."""
        if self.records is not None:
            return self.records.reader()
        if self.bytes is not None:
            return ByteReader(self.bytes, **options)
        return self.channel.reader(**options)


Value = Union[int, bool, str, TensorArg, Channel]


def type_of(value: Any) -> ValueType:
    """The ValueType of a run-time value; TypeError for anything that is not a value."""
    if isinstance(value, bool):
        return ValueType("bool")
    if isinstance(value, (int, np.integer)):
        return ValueType("u32")
    if isinstance(value, str):
        return ValueType("str")
    if isinstance(value, TensorArg):
        return ValueType("tensor", value.dtype, value.shape)
    if isinstance(value, Channel):
        shape = value.records.shape if value.records is not None else None
        return ValueType("channel", value.items, shape)
    raise TypeError(f"{type(value).__name__} is not a workflow value (kinds: {', '.join(VALUE_KINDS)})")


def to_python(value: Value) -> Any:
    """A workflow output as plain Python/JSON data."""
    if isinstance(value, TensorArg):
        return value.tolist()
    if isinstance(value, Channel):
        return {"channel": value.name, "capacity": value.capacity, "items": value.items}
    if isinstance(value, np.integer):
        return int(value)
    return value
