"""Channel ops: stream_init, stream_write_u32, stream_flush, stream_close."""

from __future__ import annotations

from ..._core import ChannelU32
from ...limits import capacity_problem
from ..registry import Arg, register_op
from ..values import Channel, TensorArg, ValueType

U32_1 = dict(dtype="u32", shape=(1,))


def _capacity(step: dict) -> list[tuple[str, str]]:
    """A literal capacity is checked at load time; one given by name when the step runs."""
    capacity = step.get("capacity")
    problem = None if isinstance(capacity, str) else capacity_problem(capacity)
    return [(".capacity", f"capacity {problem}")] if problem else []


@register_op(
    "stream_init",
    args={"capacity": Arg(("u32",), minimum=1, doc="ring size in items, a power of two")},
    output=ValueType("channel"),
    category="setup",
    check=_capacity,
)
def stream_init(ctx, args, step):
    """Allocates a ChannelU32, encodes its init and registers it as ctx.channels[out]."""
    problem = capacity_problem(args["capacity"])
    if problem:
        raise ValueError(f"capacity {problem}")
    channel = Channel(step.out, ChannelU32(ctx.device, args["capacity"]))
    ctx.command_buffer().channel_init(channel.channel)
    ctx.channels[step.out] = channel
    return channel


@register_op(
    "stream_write_u32",
    args={"channel": Arg(("channel",)),
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
