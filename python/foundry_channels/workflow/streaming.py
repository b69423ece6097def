"""The streaming runner: tokens reach the consumer as the device produces them.

While windows execute, the CPU drains the loop's channel and hands each token to
ctx.on_token as soon as the reader sees it. Windows are pipelined: the next window is
committed before the current one finishes, so the device never waits for the CPU.

Safety does not depend on the CPU being quick: the step that samples EOS (or hits a bound)
sets the device stop flag, and every later step - in this window and in windows already
committed behind it - is predicated off on the device (no push, no state advance). The CPU
only learns of the stop after a window completes and then stops committing; the extra
windows in flight cost a few no-op dispatches, never a leaked token.
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING, Iterator

import numpy as np

from .runner import LoopResult, WindowReport

if TYPE_CHECKING:
    from .runner import WindowedLoop

MAX_IN_FLIGHT = 2  # windows committed ahead: one running, one queued behind it
WAIT_SLICE_S = 0.05  # upper bound of one wait; it also ends when the oldest window finishes
DRAIN_BATCH = 4096


def window_sizes(mode: str, window: int) -> Iterator[int]:
    """throughput: `window` every time. interactive: 1, 2, 4, ... then `window`: the first
    token needs only a one-step window to be encoded and run, later windows amortise."""
    size = 1 if mode == "interactive" else window
    while True:
        yield size
        size = min(size * 2, window)


class ChannelOverflowError(RuntimeError):
    """The reader fell more than the channel's capacity behind: tokens were overwritten."""


def run_streaming(loop: "WindowedLoop") -> LoopResult:
    ctx = loop.ctx
    channel = loop.stream
    reader = channel.channel.reader()
    out = np.empty(min(channel.channel.capacity, DRAIN_BATCH), dtype=np.uint32)
    on_token = ctx.on_token
    start = time.perf_counter()
    result = LoopResult(steps=0, windows=0, stop_flag=0, tokens=None, mode=loop.mode)
    in_flight: deque = deque()
    sizes = window_sizes(loop.mode, loop.window)
    committed_steps = 0
    stopped = False

    def drain() -> int:
        n = reader.drain_into(out)
        if n:
            if result.first_token_s is None:
                result.first_token_s = time.perf_counter() - start
            if on_token is not None:
                for token in out[:n].tolist():
                    on_token(token)
            result.delivered += n
        return n

    # Each turn: hand over what arrived, retire finished windows, then commit at most one
    # window and come straight back. Draining before encoding keeps the first token from
    # waiting behind the Python encoding of the second window (interactive mode's TTFT).
    while True:
        got = drain()

        while in_flight and in_flight[0][1].status in ("completed", "error"):
            steps, cb, replayed = in_flight.popleft()
            cb.wait_until_completed()  # raises CommandBufferError if the window failed
            drain()  # completion is the point where every pushed item is visible
            result.steps += steps
            result.replays += replayed
            flag = loop.read_stop_flag()
            report = WindowReport(index=result.windows, steps=steps, steps_total=result.steps,
                                  tokens=[], tokens_total=result.delivered, stop_flag=flag,
                                  replayed=replayed, elapsed_s=time.perf_counter() - start)
            result.windows += 1
            result.reports.append(report)
            if ctx.on_window is not None:
                ctx.on_window(report)
            if flag != 0:
                stopped = True
                result.stop_flag = flag

        if not in_flight and (stopped or committed_steps >= loop.max_steps):
            while drain():  # everything is visible now; `out` may hold less than is left
                pass
            break
        if not stopped and len(in_flight) < MAX_IN_FLIGHT and committed_steps < loop.max_steps:
            steps = min(next(sizes), loop.max_steps - committed_steps)
            cb, replayed = loop.encode_window(steps)
            committed_steps += steps
            in_flight.append((steps, cb, replayed))
            continue
        if got == 0:
            # GIL released; spins briefly, then backs off; wakes for a token or for the
            # oldest window's completion, whichever comes first.
            reader.wait(WAIT_SLICE_S, until=in_flight[0][1])

    if reader.dropped:
        raise ChannelOverflowError(
            f"channel '{channel.name}' dropped {reader.dropped} token(s): the reader fell more "
            f"than its capacity ({channel.channel.capacity}) behind; raise stream_init capacity")
    result.tokens = loop.collected_tokens()
    result.encode_s = loop.encode_s
    return result
