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
channel drain (the streaming modes), never both.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional

from .._core import CommandBuffer, Window
from .context import WorkflowExecutionContext
from .values import Channel, TensorArg

MAX_WINDOW = 4096  # steps per command buffer: bounded so a window stays short (GPU watchdogs)
MODES = ("windowed", "throughput", "interactive")
STREAMING_MODES = ("throughput", "interactive")

# Refused rather than collect honouring EOS by itself: after the stop a decode step is a no-op
# that leaves its token tensor as it was, so a step that stopped and one that sampled the
# same token again look alike; the stop flag is the only record of the stop.
COLLECT_NEEDS_STOP = ("'collect' needs the loop's 'stop' flag: a step after the stop leaves "
                      "its token as it was, and without the flag the collect list would repeat "
                      "the last token for every later step")


@dataclass
class WindowReport:
    index: int  # window number in this loop, from 0
    steps: int  # steps encoded in this window
    steps_total: int  # steps encoded so far in this loop
    tokens: list[int]  # tokens collected by this window (empty without `collect`)
    tokens_total: int  # tokens collected by this window and the ones before it (<= steps_total)
    stop_flag: int  # the device stop flag after the window (0 without `stop`)
    replayed: bool  # True when the window was a replay of an encoded one
    elapsed_s: float  # since the loop started


@dataclass
class LoopResult:
    steps: int
    windows: int
    stop_flag: int
    tokens: Optional[TensorArg]  # u32[n]: every collected token (None without `collect`)
    replays: int = 0
    reports: list[WindowReport] = field(default_factory=list)
    mode: str = "windowed"
    delivered: int = 0  # tokens handed to on_token (streaming modes: drained from the channel)
    first_token_s: Optional[float] = None  # since the loop started (streaming modes)
    encode_s: float = 0.0  # time spent encoding windows the first time (not replays)
    cpu_s: float = 0.0  # CPU time of the runner's thread during the loop (polling included)


class WindowedLoop:
    """`encode_step(cb)` encodes one step of the body into `cb`; it must encode the same
    dispatches every time (the device state, not the CPU, changes between steps), and push
    `pushes_per_step` items into `stream` per step until the stop (the streaming modes size
    their windows by it, streaming.pipeline)."""

    def __init__(self, ctx: WorkflowExecutionContext, encode_step: Callable[[], None], *,
                 max_steps: int, window: int, stop: Optional[TensorArg] = None,
                 collect: Optional[TensorArg] = None, mode: str = "windowed",
                 stream: Optional[Channel] = None, pushes_per_step: int = 1) -> None:
        if not 1 <= window <= MAX_WINDOW:
            raise ValueError(f"window must be 1..{MAX_WINDOW}, got {window}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
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
        self._reported = 0  # collected tokens already handed out in window reports
        # Views made once: reading them after each window allocates nothing new.
        self._stop_view = stop.numpy() if stop is not None else None
        self._count_view = self.count.numpy() if self.count is not None else None
        self._collected_view = self.collected.numpy() if self.collected is not None else None

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
        while done < self.max_steps:
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
            from .streaming import run_streaming

            result = run_streaming(self)
        else:
            result = self._run_windowed()
        result.tokens = self.collected_tokens()
        result.encode_s = self.encode_s
        result.cpu_s = time.thread_time() - cpu_start
        return result

    def read_stop_flag(self) -> int:
        return int(self._stop_view[0]) if self._stop_view is not None else 0

    def collected_tokens(self) -> Optional[TensorArg]:
        """Every token collected so far (None without `collect`)."""
        if self.collected is None:
            return None
        return TensorArg(self.collected.buffer, "u32", (int(self._count_view[0]),))

    def window_completed(self, result: LoopResult, steps: int, replayed: bool,
                         start: float) -> WindowReport:
        """Records the completion of the oldest window not reported yet (windows complete
        in order) in `result`: in the windowed mode hands its collected tokens to on_token
        (that mode's one delivery path), then calls on_window; returns the report."""
        result.steps += steps
        result.replays += replayed
        tokens: list[int] = []
        if self._count_view is not None:
            # A window still running behind this one (streaming modes) may already have
            # collected more. Every step before the stop collects exactly one token and no
            # step after it does, so the windows completed so far collected the first
            # min(count, steps so far) tokens.
            total = min(int(self._count_view[0]), result.steps)
            tokens = self._collected_view[self._reported:total].tolist()
            self._reported = total
        flag = self.read_stop_flag()
        report = WindowReport(index=result.windows, steps=steps, steps_total=result.steps,
                              tokens=tokens, tokens_total=self._reported, stop_flag=flag,
                              replayed=replayed, elapsed_s=time.perf_counter() - start)
        result.windows += 1
        result.reports.append(report)
        if flag != 0:
            result.stop_flag = flag
        if self.mode == "windowed" and self.ctx.on_token is not None:
            for token in tokens:
                self.ctx.on_token(token)
            result.delivered += len(tokens)
        if self.ctx.on_window is not None:
            self.ctx.on_window(report)
        return report

    def _run_windowed(self) -> LoopResult:
        """The plan's on_token path: tokens reach the CPU once the window holding them
        completed, read from the device-side collect list (the channel is not drained)."""
        start = time.perf_counter()
        result = LoopResult(steps=0, windows=0, stop_flag=0, tokens=None)
        for steps, cb, replayed in self.windows():
            cb.wait_until_completed()
            if self.window_completed(result, steps, replayed, start).stop_flag != 0:
                break
        return result
