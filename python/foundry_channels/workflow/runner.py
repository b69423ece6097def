"""The window loop of while_batched: run a body for up to `max_steps` decode steps, encoding
`window` steps per command buffer.

The first window of each size is encoded once and kept as a Window; every later window of
that size is a replay (CUDA: one graph launch), so steady state encodes and allocates
nothing. Tokens reach the CPU per window (the plan's `on_token` path): after a window
completes, the tokens it collected on the device are handed to ctx.on_token in order.
Stopping is decided on the device: a body step sets the stop flag (EOS, max tokens) and
every later step of the window is predicated off; the loop ends after that window.

Streaming modes (`mode`, an explicit runner option) drain a channel while the device runs
instead (streaming.py): "throughput" keeps two large windows in flight so the device never
idles; "interactive" grows the window 1, 2, 4, ... up to `window` for a fast first token;
both shrink the windows to what the channel holds (streaming.pipeline). A run delivers
tokens through exactly one path: the per-window collected tokens ("windowed") or the
channel drain (the streaming modes), never both; a loop streaming into a byte channel
delivers text (on_text, streaming modes only: text_delivery.py) instead of tokens. Either runner reports each completed window
through the loop's reporter (reporting.py); the results are plain data (results.py).
"""

from __future__ import annotations

import time
from typing import Callable, Iterator, Optional

from .._core import CommandBuffer, Window
from .context import WorkflowExecutionContext
from .loop_config import COLLECT_NEEDS_STOP, STREAMING_MODES, check_mode, check_window
from .reporting import WindowReporter
from .results import LoopResult
from .streaming import run_streaming
from .values import Channel, TensorArg


class WindowedLoop:
    """`encode_step(cb)` encodes one step of the body into `cb`; it must encode the same
    dispatches every time (the device state, not the CPU, changes between steps), and push
    `pushes_per_step` items into `stream` per step until the stop (the streaming modes size
    their windows by it, streaming.pipeline)."""

    def __init__(self, ctx: WorkflowExecutionContext, encode_step: Callable[[], None], *,
                 max_steps: int, window: int, stop: Optional[TensorArg] = None,
                 collect: Optional[TensorArg] = None, mode: str = "windowed",
                 stream: Optional[Channel] = None, pushes_per_step: int = 1) -> None:
        # A loop built in code is checked here; a workflow's loop was checked when loaded.
        check_window(window)
        check_mode(mode)
        if mode in STREAMING_MODES and stream is None:
            raise ValueError(f"mode '{mode}' drains a channel: give 'stream' (the channel the "
                             "body writes its tokens to)")
        if mode in STREAMING_MODES and stop is None:
            raise ValueError(f"mode '{mode}' pipelines windows and needs the device 'stop' flag "
                             "to end the loop without computing past EOS")
        if mode in STREAMING_MODES and pushes_per_step < 1:
            raise ValueError(f"mode '{mode}' drains 'stream', but the body pushes nothing into it")
        if collect is not None and stop is None:
            raise ValueError(COLLECT_NEEDS_STOP)
        if mode not in STREAMING_MODES and ctx.on_text is not None and stream is not None \
                and stream.bytes is not None:
            raise ValueError("on_text: a byte channel's text is delivered by the streaming modes "
                             "(throughput, interactive); mode 'windowed' hands over the "
                             "collected token ids (on_token)")
        self.mode = mode
        self.stream = stream
        self.pushes_per_step = pushes_per_step
        self.ctx = ctx
        self.encode_step = encode_step
        self.max_steps = max_steps
        self.window = window
        self.stop = stop
        self.collect = collect
        self.collected: Optional[TensorArg] = None
        self.count: Optional[TensorArg] = None
        if collect is not None:
            self.collected = TensorArg.zeros(ctx.device, "u32", (max(1, max_steps),))
            self.count = TensorArg.zeros(ctx.device, "u32", (1,))
        self._encoded: dict[int, Window] = {}
        self.encode_s = 0.0
        # Views made once: reading them after each window allocates nothing new.
        self._count_view = self.count.numpy() if self.count is not None else None
        self.reporter = WindowReporter(
            deliver_tokens=mode == "windowed", stop=stop.numpy() if stop is not None else None,
            count=self._count_view,
            collected=self.collected.numpy() if self.collected is not None else None,
            on_token=ctx.on_token, on_window=ctx.on_window)

    def encode_window(self, steps: int) -> tuple[CommandBuffer, bool]:
        """A committed command buffer running `steps` steps; True when it is a replay."""
        window = self._encoded.get(steps)
        if window is not None:
            cb = self.ctx.queue.replay(window)
            self.ctx._last_committed = cb
            return cb, True
        encode_start = time.perf_counter()
        cb = self.ctx.queue.command_buffer()
        with self.ctx.recording(cb):
            for _ in range(steps):
                self.encode_step()
                if self.collected is not None:
                    self._encode_collect(cb)
        self._encoded[steps] = cb.to_window()
        self.encode_s += time.perf_counter() - encode_start
        self.ctx.commit(cb)
        return cb, False

    def _encode_collect(self, cb: CommandBuffer) -> None:
        stop = self.stop.buffer if self.stop is not None else None
        cb.dispatch("decode_collect_u32", 1, source=self.collect.buffer,
                    list=self.collected.buffer, count=self.count.buffer, stop=stop,
                    list_capacity=self.collected.numel, predicated=1 if stop is not None else 0)

    def windows(self) -> Iterator[tuple[int, CommandBuffer, bool]]:
        """Commits the windows one after another: (steps, command buffer, replayed)."""
        done = 0
        while done < self.max_steps and not self.ctx.cancelled:
            steps = min(self.window, self.max_steps - done)
            cb, replayed = self.encode_window(steps)
            done += steps
            yield steps, cb, replayed

    def run(self) -> LoopResult:
        # Earlier work (prefill, channel init) runs first, in queue order. The streaming modes
        # also wait for it: only once it completed is everything pushed before the loop
        # visible, so that the reader can skip exactly that (one sync per loop, not per token).
        self.ctx.flush(wait=self.mode in STREAMING_MODES)
        cpu_start = time.thread_time()
        if self.mode in STREAMING_MODES:
            result = run_streaming(self)
        else:
            result = self._run_windowed()
        result.tokens = self.collected_tokens()
        result.cancelled = self.ctx.cancelled
        result.encode_s = self.encode_s
        result.cpu_s = time.thread_time() - cpu_start
        return result

    def collected_tokens(self) -> Optional[TensorArg]:
        """Every token collected so far (None without `collect`)."""
        if self.collected is None:
            return None
        return TensorArg(self.collected.buffer, "u32", (int(self._count_view[0]),))

    def _run_windowed(self) -> LoopResult:
        """The plan's on_token path: tokens reach the CPU once the window holding them
        completed, read from the device-side collect list (the channel is not drained)."""
        start = time.perf_counter()
        result = LoopResult(steps=0, windows=0, stop_flag=0, tokens=None)
        for steps, cb, replayed in self.windows():
            cb.wait_until_completed()
            if self.reporter.window_completed(result, steps, replayed, start).stop_flag != 0:
                break
        return result
