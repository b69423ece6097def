"""Channel ops: stream_init (u32 or byte channels), stream_write_u32, stream_flush,
stream_close. A byte channel's text pushes are in ops/text.py (detok_push)."""

from __future__ import annotations

from ..._core import ChannelU32
from ...byte_channel import ByteChannel, byte_capacity_problem
from ...limits import capacity_problem
from ..registry import Arg, register_op
from ...record_channel import Channel as RecordChannel
from ..values import DTYPES, RECORD_ITEMS, Channel, TensorArg, ValueType, record_items

U32_1 = dict(dtype="u32", shape=(1,))


def _capacity_problem(capacity, of_bytes: bool):
    return byte_capacity_problem(capacity) if of_bytes else capacity_problem(capacity)


def _capacity(step: dict) -> list[tuple[str, str]]:
    """A literal capacity is checked at load time; one given by name when the step runs (as is
    a capacity whose `bytes` is given by name: its unit is known only then)."""
    capacity, of_bytes = step.get("capacity"), step.get("bytes", False)
    if isinstance(capacity, str) or isinstance(of_bytes, str):
        return []
    problem = _capacity_problem(capacity, of_bytes)
    return [(".capacity", f"capacity {problem}")] if problem else []


def _channel_type(step: dict) -> ValueType:
    """A literal `bytes` fixes the item type at load time; one given by name, at run time. A
    `dtype` (with `shape`) makes a channel of records of that tensor type."""
    if "dtype" in step:
        return ValueType("channel", record_items(step["dtype"]), tuple(step.get("shape", ())))
    of_bytes = step.get("bytes", False)
    if isinstance(of_bytes, str):
        return ValueType("channel")
    return ValueType("channel", "bytes" if of_bytes else "u32")


def _record_arguments(step: dict) -> list[tuple[str, str]]:
    """`dtype` and `shape` come together, and never with `bytes`."""
    if ("dtype" in step) != ("shape" in step):
        return [("", "a channel of records takes both `dtype` and `shape` (a tensor type)")]
    if "dtype" in step and step.get("bytes", False):
        return [(".bytes", "a channel carries records (dtype, shape) or bytes, not both")]
    return []


@register_op(
    "stream_init",
    args={"capacity": Arg(("u32",), minimum=1,
                          doc="ring size: in items, a power of two; with bytes, in bytes (the "
                              "ring holds at least that many)"),
          "bytes": Arg(("bool",), required=False, default=False,
                       doc="a byte channel (byte strings, read as text) instead of u32 items"),
          "dtype": Arg(("choice",), required=False, choices=tuple(DTYPES),
                       doc="a channel of records of this dtype (with shape): tensors"),
          "shape": Arg(("shape",), required=False, doc="the records' shape (with dtype)")},
    output=_channel_type,
    category="setup",
    check=lambda step: _capacity(step) + _record_arguments(step),
)
def stream_init(ctx, args, step):
    """Allocates a ChannelU32 (or a ByteChannel), encodes its init and registers it as
    ctx.channels[out]."""
    if args["dtype"] is not None:
        channel = Channel.of_records(step.out, RecordChannel(
            ctx.device, dtype=args["dtype"], shape=tuple(args["shape"]),
            capacity=args["capacity"]))
        channel.encode_init(ctx.command_buffer())
        ctx.channels[step.out] = channel
        return channel
    problem = _capacity_problem(args["capacity"], args["bytes"])
    if problem:
        raise ValueError(f"capacity {problem}")
    if args["bytes"]:
        channel = Channel.of_bytes(step.out, ByteChannel(ctx.device, args["capacity"]))
    else:
        channel = Channel(step.out, ChannelU32(ctx.device, args["capacity"]))
    channel.encode_init(ctx.command_buffer())
    ctx.channels[step.out] = channel
    return channel


@register_op(
    "stream_write_u32",
    args={"channel": Arg(("channel",), dtype="u32",
                         doc="a u32 channel (a byte channel's items pack bytes: detok_push)"),
          "value": Arg(("u32", "tensor"), **U32_1,
                       doc="a u32 known on the CPU, or a u32[1] tensor written on the device"),
          "stop": Arg(("tensor",), required=False, **U32_1,
                      doc="device stop flag: the push is skipped once stop[0] != 0")},
)
def stream_write_u32(ctx, args, step):
    """Pushes one u32. A tensor value is read by the push kernel on the device, so a token
    sampled on the device never passes through the CPU."""
    cb = ctx.command_buffer()
    channel, value, stop = args["channel"].channel, args["value"], args["stop"]
    if isinstance(value, int) and stop is None:
        cb.channel_push(channel, value)
        return None
    source = value if isinstance(value, TensorArg) else ctx.constant_u32(value)
    cb.channel_push(channel, source.buffer, stop_flag=stop.buffer if stop is not None else None)
    return None


@register_op(
    "stream_flush",
    args={"wait": Arg(("bool",), required=False, default=False,
                      doc="block until the device finished everything committed")},
    category="control",
)
def stream_flush(ctx, args, step):
    """Commits the current capture window (the open command buffer)."""
    ctx.flush(wait=args["wait"])


def _record_matches_channel(types: dict) -> list[tuple[str, str]]:
    """stream_write pushes one record: the tensor's dtype and shape must be the channel's."""
    channel, value = types.get("channel"), types.get("value")
    if channel is None or channel.dtype is None:
        return []  # known only at run time
    if not channel.dtype.startswith(RECORD_ITEMS):
        return [(".channel", f"stream_write pushes records, but the channel is a "
                             f"{channel.describe()} (stream_write_u32 / detok_push push its items)")]
    want = ValueType("tensor", channel.dtype[len(RECORD_ITEMS):], channel.shape)
    if value is not None and value.dtype is not None and (
            value.dtype != want.dtype or (value.shape is not None and value.shape != want.shape)):
        return [(".value", f"the tensor is a {value.describe()}, but the channel's records are "
                           f"{want.describe()}")]
    return []


@register_op(
    "stream_write",
    args={"channel": Arg(("channel",), doc="a channel of records (stream_init with dtype, shape)"),
          "value": Arg(("tensor",), doc="the record: a tensor of the channel's dtype and shape"),
          "stop": Arg(("tensor",), required=False, **U32_1,
                      doc="device stop flag: the push is skipped once stop[0] != 0")},
    check_types=_record_matches_channel,
)
def stream_write(ctx, args, step):
    """Pushes one record (a tensor written on the device) into a record channel."""
    channel, value, stop = args["channel"], args["value"], args["stop"]
    problems = _record_matches_channel({"channel": ValueType("channel", channel.items, (
        channel.records.shape if channel.records is not None else None)),
        "value": ValueType("tensor", value.dtype, value.shape)})
    if problems:
        raise ValueError(problems[0][1])
    channel.records.encode_push(ctx.command_buffer(), value.buffer,
                                stop_flag=stop.buffer if stop is not None else None)


@register_op("stream_close", args={"channel": Arg(("channel",))}, category="setup")
def stream_close(ctx, args, step):
    """Encodes the channel's close: readers end once they drained every item."""
    args["channel"].encode_close(ctx.command_buffer())
