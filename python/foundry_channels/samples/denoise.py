"""Streaming previews from an iterative device loop: a toy denoiser in the spirit of diffusion.

An RGB image starts as seeded noise; each of `steps` kernels moves it towards a fixed,
procedurally defined target and, in the same kernel, pushes a preview of the image into a
record channel (csrc/kernels/denoise_kernels.inc). Every step is in ONE command buffer: the CPU
reads each preview while the device is still running the later steps.

    import foundry_channels as fc
    from foundry_channels.samples import denoise

    with fc.Device("cpu") as dev:
        result = denoise.run(dev, steps=50, seed=7,
                             on_preview=lambda step, image: print(step, image.mean()))
    result.image            # (64, 64, 3) float32 in [0, 1): the final image

Deterministic on every backend: the kernels use integer arithmetic only (16-bit fixed point)
and build the previews' f32 bits from the integers, so a seed gives bit-identical previews on
cpu, cuda and metal.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from .._core import CommandBufferError, Device
from ..record_channel import Channel

CHANNELS = 3  # RGB
FIXED_ONE = 65536  # the kernels' fixed point: a pixel value q means q / 65536
MAX_STEPS = 100_000  # keeps the kernel's noise term (4096 * steps) inside a 32-bit int
MAX_SIDE = 4096  # keeps the kernel's squared distances inside a 32-bit int
MAX_PUSH_THREADS = 1024  # threads of a step: each handles words gid, gid + 1024, ...
MAX_DEFAULT_CAPACITY = 256  # the default ring holds the whole run up to 255 steps

PreviewCallback = Callable[[int, np.ndarray], None]


@dataclass
class DenoiseResult:
    image: np.ndarray  # the final image, (height, width, 3) float32
    steps: int
    previews: int  # previews handed to on_preview
    dropped: int  # previews the ring overwrote before the CPU read them (drop-oldest)
    seconds: float  # from commit to the end of the command buffer
    backend: str

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds if self.seconds > 0 else 0.0


def check_arguments(steps: int, seed: int, width: int, height: int) -> None:
    """ValueError (one line) for arguments the kernels cannot take."""
    for name, value, lo, hi in (("steps", steps, 1, MAX_STEPS), ("seed", seed, 0, 0xFFFFFFFF),
                                ("width", width, 1, MAX_SIDE), ("height", height, 1, MAX_SIDE)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"denoise: {name} must be an int, got {type(value).__name__}")
        if not lo <= value <= hi:
            raise ValueError(f"denoise: {name} must be in {lo}..{hi}, got {value}")


def default_capacity(steps: int) -> int:
    """The smallest ring that keeps every preview of the run readable (capacity - 1 records
    are), capped at MAX_DEFAULT_CAPACITY: past that, a slow reader loses the oldest ones."""
    return min(1 << steps.bit_length(), MAX_DEFAULT_CAPACITY)


def from_fixed(words: np.ndarray, width: int, height: int) -> np.ndarray:
    """The kernels' fixed-point words as the f32 image the previews carry (exact: q < 2^16)."""
    return (words.astype(np.float32) / np.float32(FIXED_ONE)).reshape(height, width, CHANNELS)


class _Image:
    """The image in device-local memory, the dispatches that work on it and a shared buffer to
    read it back through."""

    def __init__(self, device: Device, seed: int, steps: int, width: int, height: int) -> None:
        self.seed, self.steps, self.width, self.height = seed, steps, width, height
        self.words = width * height * CHANNELS
        self.threads = min(self.words, MAX_PUSH_THREADS)
        self.device_buffer = device.buffer(self.words * 4, "private")
        self.readback = device.buffer(self.words * 4)

    def encode_init(self, cb) -> None:
        cb.dispatch("denoise_init", self.words, image=self.device_buffer, seed=self.seed,
                    words=self.words)

    def encode_step(self, cb, step: int, preview: Optional[Channel] = None) -> None:
        push = {} if preview is None else {"preview": preview.core, "capacity": preview.capacity,
                                           "stride": preview.core.stride_words}
        cb.dispatch("denoise_step", self.threads, image=self.device_buffer, seed=self.seed,
                    step=step, steps=self.steps, width=self.width, words=self.words,
                    threads=self.threads, **push)

    def encode_readback(self, cb) -> None:
        cb.dispatch("buffer_copy_u32", self.words, source=self.device_buffer,
                    destination=self.readback, words=self.words)

    def read(self) -> np.ndarray:
        """The image last copied by encode_readback (after its command buffer completed)."""
        return from_fixed(self.readback.numpy("uint32")[: self.words], self.width, self.height)


def run(device: Device, steps: int = 50, seed: int = 0,
        on_preview: Optional[PreviewCallback] = None, *, width: int = 64, height: int = 64,
        capacity: Optional[int] = None, timeout: float = 60.0) -> DenoiseResult:
    """Runs the denoiser in one command buffer and calls on_preview(step, image) for each
    preview as it arrives (step: 0-based; image: a new (height, width, 3) float32 array).
    Returns the final image (read back after the command buffer) and counts."""
    check_arguments(steps, seed, width, height)
    image = _Image(device, seed, steps, width, height)
    channel = Channel(device, "f32", (height, width, CHANNELS),
                      capacity or default_capacity(steps))
    cb = device.new_queue().command_buffer()
    channel.encode_init(cb)
    image.encode_init(cb)
    for step in range(steps):
        image.encode_step(cb, step, channel)
    image.encode_readback(cb)
    channel.encode_close(cb)
    reader = channel.reader()
    start = time.perf_counter()
    cb.commit()  # returns at once: the previews below arrive while the steps run
    previews = _read_previews(reader, cb, on_preview, timeout)
    if not cb.wait_until_completed(timeout):
        raise TimeoutError(f"denoise: the command buffer did not finish within {timeout} s")
    seconds = time.perf_counter() - start
    return DenoiseResult(image=image.read(), steps=steps, previews=previews,
                         dropped=reader.dropped, seconds=seconds, backend=device.backend)


def _read_previews(reader, cb, on_preview: Optional[PreviewCallback], timeout: float) -> int:
    """Hands every readable preview to on_preview until the channel is closed and drained."""
    count = 0
    while True:
        record = reader.try_next()
        if record is not None:
            count += 1
            if on_preview is not None:
                on_preview(reader.position - 1, record)  # the record's index is its step
            continue
        state = reader.wait(timeout, until=cb)
        if state == "closed":
            return count
        if state == "timeout":
            raise TimeoutError(f"denoise: no preview within {timeout} s")
        if state == "finished" and cb.status == "error":
            raise CommandBufferError(cb.error or "denoise: the command buffer failed")


def run_stepwise(device: Device, steps: int = 50, seed: int = 0, *, width: int = 64,
                 height: int = 64, timeout: float = 60.0) -> list[np.ndarray]:
    """The reference: one command buffer per step, no channel, the image read back after each
    step. Returns the image after every step; the streamed previews must equal these."""
    check_arguments(steps, seed, width, height)
    image = _Image(device, seed, steps, width, height)
    queue = device.new_queue()
    states = []
    for step in range(steps):
        cb = queue.command_buffer()
        if step == 0:
            image.encode_init(cb)
        image.encode_step(cb, step)
        image.encode_readback(cb)
        cb.commit()
        if not cb.wait_until_completed(timeout):
            raise TimeoutError(f"denoise: step {step} did not finish within {timeout} s")
        states.append(image.read())
    return states
