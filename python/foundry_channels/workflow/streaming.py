"""The streaming runner: tokens reach the consumer as the device produces them.

While windows execute, the CPU drains the loop's channel and hands each token to
ctx.on_token as soon as the reader sees it. Windows are pipelined: the next window is
committed before the current one finishes, so the device never waits for the CPU.

Safety does not depend on the CPU being quick: the step that samples EOS (or hits a bound)
sets the device stop flag, and every later step - in this window and in windows already
committed behind it - is predicated off on the device (no push, no state advance). The CPU
only learns of the stop after a window completes and then stops committing; the extra
windows in flight cost a few no-op dispatches, never a leaked token.

Nor on the CPU keeping up: the windows in flight never push more than the channel holds
(pipeline), so a slow on_token delays the next commit instead of losing tokens. A loop
delivers exactly its own tokens: its reader starts past whatever the channel held before.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Iterator

import numpy as np

from .results import LoopResult
from .text_delivery import open_reader

MAX_IN_FLIGHT = 2  # windows committed ahead: one running, one queued behind it
WAIT_SLICE_S = 0.05  # upper bound of one wait; it also ends when the oldest window finishes
# The reader's wait strategy (README, "Waiting"): adaptive spins right after each window is
# committed (its first token), learns the step rate within a window, and is woken at once when
# a window completes; the runner itself drains between commits without waiting at all.
WAIT_STRATEGY = "adaptive"
DRAIN_BATCH = 4096


def pipeline(capacity: int, window: int, pushes_per_step: int) -> tuple[int, int]:
    """(windows in flight, steps per window): the most of each, up to MAX_IN_FLIGHT and
    `window`, such that all the windows in flight together push no more than the channel
    holds. The runner commits a window only once it has read every item of the windows that
    completed before, so the items not yet read are at most those of the windows in flight:
    none is ever overwritten, however slow on_token is; a slow consumer slows the device
    instead. A small channel gets smaller windows (the tokens do not depend on the window)."""
    steps_held = capacity // pushes_per_step
    if steps_held < 1:
        raise ValueError(f"the stream's capacity {capacity} holds less than one step "
                         f"({pushes_per_step} pushes)")
    in_flight = min(MAX_IN_FLIGHT, steps_held)
    return in_flight, min(window, steps_held // in_flight)


def window_sizes(mode: str, window: int) -> Iterator[int]:
    """throughput: `window` every time. interactive: 1, 2, 4, ... then `window`: the first
    token needs only a one-step window to be encoded and run, later windows amortise."""
    size = 1 if mode == "interactive" else window
    while True:
        yield size
        size = min(size * 2, window)


class ChannelOverflowError(RuntimeError):
    """The reader fell more than the channel's capacity behind: tokens were overwritten.
    pipeline() rules this out for a body that pushes what it declares; this is the check."""


def run_streaming(loop) -> LoopResult:
    """Runs `loop` (a runner.WindowedLoop, which calls this: the runner depends on this
    module, never the other way round) in its streaming mode."""
    ctx = loop.ctx
    channel = loop.stream
    max_in_flight, window = pipeline(channel.capacity, loop.window, loop.pushes_per_step)
    out = np.empty(min(channel.capacity, DRAIN_BATCH), dtype=np.uint32)
    # A byte channel delivers text (on_text, through its reader: text_delivery.py) instead.
    on_token = ctx.on_token if channel.bytes is None else None
    start = time.perf_counter()
    result = LoopResult(steps=0, windows=0, stop_flag=0, tokens=None, mode=loop.mode)
    in_flight: deque = deque()
    sizes = window_sizes(loop.mode, window)
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

    # closed at the end: a channel has one reader at a time
    with open_reader(channel, ctx.on_text) as reader:
        reader.wait_strategy = WAIT_STRATEGY
        # This loop's tokens only: skip what the channel got before the loop (the tokens of
        # a windowed loop, which nobody read, a value pushed before the loop). loop.run
        # waited for the work that pushed them, so all of it is visible now.
        reader.skip_to_end()

        # Each turn: hand over what arrived, retire finished windows, then commit at most one
        # window and come straight back. Draining before encoding keeps the first token from
        # waiting behind the Python encoding of the second window (interactive mode's TTFT).
        while True:
            got = drain()

            while in_flight and in_flight[0][1].status in ("completed", "error"):
                steps, cb, replayed = in_flight.popleft()
                cb.wait_until_completed()  # raises CommandBufferError if the window failed
                # Completion makes every item the window pushed visible: read them all
                # before another window is committed (the bound of pipeline()).
                while drain():
                    pass
                stopped |= loop.reporter.window_completed(result, steps, replayed,
                                                        start).stop_flag != 0

            # A cancelled run commits nothing more; the windows in flight stop on the device
            # within one step (their decode steps read the control block).
            stopped |= ctx.cancelled
            if not in_flight and (stopped or committed_steps >= loop.max_steps):
                break
            if not stopped and len(in_flight) < max_in_flight and committed_steps < loop.max_steps:
                steps = min(next(sizes), loop.max_steps - committed_steps)
                cb, replayed = loop.encode_window(steps)
                committed_steps += steps
                in_flight.append((steps, cb, replayed))
                continue
            if got == 0:
                # GIL released; idles as WAIT_STRATEGY says; ends for a token or for the
                # oldest window's completion (which wakes it at once), whichever comes first.
                reader.wait(WAIT_SLICE_S, until=in_flight[0][1])
        dropped = reader.dropped

    if dropped:
        raise ChannelOverflowError(
            f"channel '{channel.name}' dropped {dropped} token(s): the loop's body pushed more "
            f"than {loop.pushes_per_step} item(s) per step into it")
    return result
