"""Channel ops: stream_init (u32 or byte channels), stream_write_u32, stream_flush,
stream_close. A byte channel's text pushes are in ops/text.py (detok_push)."""

from __future__ import annotations

from ..._core import ChannelU32
from ...byte_channel import ByteChannel, byte_capacity_problem
from ...limits import capacity_problem
from ..registry import Arg, register_op
from ..values import Channel, TensorArg, ValueType

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
    """A literal `bytes` fixes the item type at load time; one given by name, at run time."""
    of_bytes = step.get("bytes", False)
    if isinstance(of_bytes, str):
        return ValueType("channel")
    return ValueType("channel", "bytes" if of_bytes else "u32")


@register_op(
    "stream_init",
    args={"capacity": Arg(("u32",), minimum=1,
                          doc="ring size: in items, a power of two; with bytes, in bytes (the "
                              "ring holds at least that many)"),
          "bytes": Arg(("bool",), required=False, default=False,
                       doc="a byte channel (byte strings, read as text) instead of u32 items")},
    output=_channel_type,
    category="setup",
    check=_capacity,
)
def stream_init(ctx, args, step):
    """Allocates a ChannelU32 (or a ByteChannel), encodes its init and registers it as
    ctx.channels[out]."""
    problem = _capacity_problem(args["capacity"], args["bytes"])
    if problem:
        raise ValueError(f"capacity {problem}")
    if args["bytes"]:
        channel = Channel.of_bytes(step.out, ByteChannel(ctx.device, args["capacity"]))
    else:
        channel = Channel(step.out, ChannelU32(ctx.device, args["capacity"]))
    ctx.command_buffer().channel_init(channel.channel)
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


@register_op("stream_close", args={"channel": Arg(("channel",))}, category="setup")
def stream_close(ctx, args, step):
    """Encodes the channel's close: readers end once they drained every item."""
    ctx.command_buffer().channel_close(args["channel"].channel)
