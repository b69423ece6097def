"""Push into a channel from a framework's CUDA stream (torch, or anything with
``__cuda_array_interface__``).

``stream_write(channel, tensor)`` enqueues, on the caller's CUDA stream, a push of the
tensor's values into a ``cuda`` channel. It launches one kernel and returns: no
synchronisation, no copy through the CPU, no allocation, so it runs inside a decode loop with
``torch.cuda.set_sync_debug_mode("error")`` and inside ``torch.cuda.graph`` capture.

torch is optional: this module never imports it at import time.
"""

from __future__ import annotations

from typing import Any

# Names, not `from . import _core` (see _backends.py: a loop to import-linter).
from ._core import ChannelU32, cuda_device_ordinal, cuda_stream_push, cuda_stream_push_record

# u32 words per element and a readable name, by __cuda_array_interface__ typestr.
_TYPESTRS = {"<u4": (1, "uint32"), "<i4": (1, "int32"), "<i8": (2, "int64")}
_TORCH_DTYPES = {"torch.uint32": "<u4", "torch.int32": "<i4", "torch.int64": "<i8"}


def _is_torch_tensor(obj: Any) -> bool:
    # No import of torch: a torch tensor is recognised by its type's module.
    return type(obj).__module__.startswith("torch") and hasattr(obj, "data_ptr")


def _describe(tensor: Any) -> tuple[int, str, tuple[int, ...], tuple[int, ...], int | None]:
    """(device pointer, typestr, shape, strides in elements, device index or None)."""
    if _is_torch_tensor(tensor):
        if not tensor.is_cuda:
            raise ValueError(
                f"stream_write: tensor is on {tensor.device}; it must be a CUDA tensor "
                "(the GPU reads the value; a CPU value would need a copy and a sync)"
            )
        typestr = _TORCH_DTYPES.get(str(tensor.dtype))
        if typestr is None:
            raise TypeError(
                f"stream_write: tensor dtype {tensor.dtype} is not supported; "
                "use torch.uint32, torch.int32 or torch.int64 (token ids)"
            )
        return (tensor.data_ptr(), typestr, tuple(tensor.shape), tuple(tensor.stride()),
                tensor.device.index)
    cai = getattr(tensor, "__cuda_array_interface__", None)
    if cai is None:
        raise TypeError(
            f"stream_write: expected a CUDA tensor (torch, or an object with "
            f"__cuda_array_interface__), got {type(tensor).__name__}"
        )
    typestr = cai["typestr"]
    if typestr not in _TYPESTRS:
        raise TypeError(
            f"stream_write: array typestr {typestr!r} is not supported; use uint32, int32 or int64"
        )
    shape = tuple(cai["shape"])
    itemsize = 8 if typestr == "<i8" else 4
    strides_bytes = cai.get("strides")
    if strides_bytes is None:  # C-contiguous
        strides = tuple(1 for _ in shape)
    else:
        if any(s % itemsize for s in strides_bytes):
            raise ValueError("stream_write: array strides are not a multiple of its item size")
        strides = tuple(s // itemsize for s in strides_bytes)
    return int(cai["data"][0]), typestr, shape, strides, None


def _stream_handle(stream: Any, tensor: Any) -> int:
    if stream is None:
        if _is_torch_tensor(tensor):
            import torch  # present: the tensor is a torch tensor

            return int(torch.cuda.current_stream(tensor.device).cuda_stream)
        return 0  # the legacy default stream
    if isinstance(stream, int):
        return stream
    for attr in ("cuda_stream", "ptr", "handle"):  # torch.cuda.Stream, cupy.cuda.Stream, ...
        if hasattr(stream, attr):
            return int(getattr(stream, attr))
    raise TypeError(
        f"stream_write: stream must be None, an integer cudaStream_t or a stream object with "
        f".cuda_stream, got {type(stream).__name__}"
    )


# torch dtypes of record channels (record_channel.DTYPES names); bf16 records hold bf16 bits.
_TORCH_RECORD_DTYPES = {"torch.uint8": "u8", "torch.int32": "i32", "torch.uint32": "u32",
                        "torch.float16": "f16", "torch.bfloat16": "bf16", "torch.float32": "f32",
                        "torch.int64": "i64", "torch.float64": "f64"}


def _check_record_tensor(channel, tensor: Any, ordinal: int) -> int:
    """The device address of a torch tensor that is one record of `channel`."""
    if not _is_torch_tensor(tensor) or not tensor.is_cuda:
        raise TypeError("stream_write: a record channel takes a CUDA torch tensor, got "
                        f"{type(tensor).__name__}")
    dtype = _TORCH_RECORD_DTYPES.get(str(tensor.dtype))
    if dtype != channel.dtype:
        raise TypeError(f"stream_write: tensor dtype {tensor.dtype} does not match the channel's "
                        f"{channel.dtype}")
    if tuple(tensor.shape) != channel.shape:
        raise ValueError(f"stream_write: tensor shape {list(tensor.shape)} does not match the "
                         f"channel's {list(channel.shape)}")
    if not tensor.is_contiguous():
        raise ValueError("stream_write: a record tensor must be contiguous (call .contiguous() "
                         "first: inside a graph capture that copy is captured too)")
    if tensor.device.index != ordinal:
        raise ValueError(f"stream_write: tensor is on cuda:{tensor.device.index} but the "
                         f"channel is on cuda:{ordinal}")
    return int(tensor.data_ptr())


def stream_write(channel: Any, tensor: Any, stream: Any = None) -> None:
    """Pushes the values of a CUDA tensor into ``channel``, enqueued on ``stream``.

    A record ``Channel`` (fc.Channel) takes one record: a contiguous torch CUDA tensor of the
    channel's dtype and shape (any supported dtype).

    ``tensor``: uint32, int32 or int64; shape [1] or [B] (a 0-d tensor counts as [1]); any
    stride. int64 values are pushed as their low 32 bits. ``stream``: None for
    ``torch.cuda.current_stream()`` (torch tensors; the legacy default stream otherwise), a
    ``torch.cuda.Stream`` or an integer handle.

    The push is ordered after earlier work on that stream (the kernel that produced the
    token) and the GPU reads the value when it runs; the caller keeps the tensor's memory
    unchanged until then (stream order does that for torch's allocator on the same stream).
    The channel's init must have completed before the first stream_write, and a channel has
    one producer: do not push to it from two streams without ordering them.
    """
    from .record_channel import Channel

    if not isinstance(channel, (ChannelU32, Channel)):
        raise TypeError("stream_write: channel must be a ChannelU32 or a record Channel, got "
                        f"{type(channel).__name__}")
    ordinal = cuda_device_ordinal(channel.device)
    if ordinal < 0:
        raise ValueError(
            f"stream_write: the channel lives on a '{channel.device.backend}' device; "
            "pushing from a CUDA stream needs a channel made with Device('cuda')"
        )
    if isinstance(channel, Channel):
        ptr = _check_record_tensor(channel, tensor, ordinal)
        handle = _stream_handle(stream, tensor)
        if stream is not None and not isinstance(stream, int):
            tensor.record_stream(stream)
        cuda_stream_push_record(channel.core, handle, ptr)
        return
    ptr, typestr, shape, strides, index = _describe(tensor)
    if len(shape) > 1:
        raise ValueError(f"stream_write: tensor shape {list(shape)}: expected [1] or [B]")
    count = shape[0] if shape else 1
    if count < 1:
        raise ValueError("stream_write: tensor is empty (shape [0]); nothing to push")
    stride = strides[0] if shape else 1
    if stride < 1 and count > 1:
        raise ValueError(f"stream_write: tensor stride {stride} is not supported (must be >= 1)")
    if index is not None and index != ordinal:
        raise ValueError(
            f"stream_write: tensor is on cuda:{index} but the channel is on cuda:{ordinal}"
        )
    words_per_item, _ = _TYPESTRS[typestr]
    handle = _stream_handle(stream, tensor)
    if stream is not None and _is_torch_tensor(tensor) and not isinstance(stream, int):
        # A stream other than the tensor's: keep torch's allocator from reusing the memory
        # before the push on `stream` has read it.
        tensor.record_stream(stream)
    cuda_stream_push(channel, handle, ptr, count, max(stride, 1) * words_per_item)
