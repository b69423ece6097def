"""foundry-channels: GPU<->CPU stream channels.

A channel is a small ring plus header in memory that the device and the CPU both see. Device
kernels push items (token ids) while the device is still executing; the CPU drains them without
waiting for the command buffer.

    import numpy as np
    import foundry_channels as fc

    dev = fc.Device()                    # "cpu" (default), "cuda", "metal"
    ch = fc.ChannelU32(dev, capacity=1024)
    cb = dev.new_queue().command_buffer()
    cb.channel_init(ch)
    for token in (7, 8, 9):
        cb.channel_push(ch, token)
    cb.commit()                          # returns at once; the device runs it
    reader = ch.reader()
    print(reader.next(timeout=1.0))      # 7, as soon as the device pushed it
"""

from ._core import (
    CHANNEL_MAGIC,
    CONTROL_NO_LIMIT,
    HEADER_WORDS,
    MAX_CAPACITY,
    BackendUnavailableError,
    Buffer,
    ChannelError,
    ChannelU32,
    ChannelU32Reader,
    CommandBuffer,
    CommandBufferError,
    ConcurrentUseError,
    ControlBlock,
    Device,
    DeviceClosedError,
    DeviceError,
    FoundryChannelsError,
    Queue,
    Window,
    control_layout,
    header_layout,
    kernel_names,
    kernel_signature,
    poller_stats,
)
from ._backends import available_backends, backend_status
from .torch_interop import stream_write
from .driver import DriveResult, launch_and_drain
from ._poll import Poll, PollState
from .byte_channel import ByteChannel, ByteReader


__version__ = "0.1.0"

__all__ = [
    "CHANNEL_MAGIC",
    "CONTROL_NO_LIMIT",
    "HEADER_WORDS",
    "MAX_CAPACITY",
    "BackendUnavailableError",
    "ByteChannel",
    "ByteReader",
    "Channel",
    "Buffer",
    "ChannelError",
    "ChannelU32",
    "ChannelU32Reader",
    "CommandBuffer",
    "CommandBufferError",
    "ConcurrentUseError",
    "ControlBlock",
    "Device",
    "DeviceClosedError",
    "DeviceError",
    "FoundryChannelsError",
    "Poll",
    "PollState",
    "Queue",
    "Window",
    "available_backends",
    "backend_status",
    "control_layout",
    "header_layout",
    "kernel_names",
    "kernel_signature",
    "poller_stats",
    "launch_and_drain",
    "DriveResult",
    "stream_write",
]


def __getattr__(name: str):
    # Record channels need numpy, whose import is slow (and turns a Ctrl-C during its C start-up
    # into an ImportError): `import foundry_channels` stays light, fc.Channel imports it on use.
    if name in ("Channel", "RecordReader"):
        from . import record_channel

        return getattr(record_channel, name)
    raise AttributeError(f"module 'foundry_channels' has no attribute {name!r}")

