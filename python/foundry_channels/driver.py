"""The recommended consumer for a Python launch loop: launch, then drain, in the same thread.

A thread that launches device work from Python (torch graph replays with `fc.stream_write`
inside, command buffers) holds the GIL most of the time, so a reader on another thread (or an
asyncio loop) gets each token only when it wins the GIL back: the first token arrives late and
later ones in bursts. Draining from the launching thread itself needs no GIL hand-over:
`reader.drain_into` is a non-blocking copy of ~100 ns when nothing is new.

By default it launches back to back (the first launch comes before any of its own set-up);
`ahead=n` keeps at most n launches in flight, waiting for the next token in C++ (GIL
released) instead of launching more, so a loop that stops early (EOS) has at most n steps left
to finish. Waits use `spin` where more than two cores are usable (a token is seen within a
microsecond of landing), else `adaptive`.

    result = fc.launch_and_drain(lambda i: graph.replay(), reader, steps=256,
                                 on_tokens=lambda toks: print(toks.tolist()),
                                 done=finished_event.query)

`on_tokens` gets a numpy uint32 view of the new tokens (valid until the call returns). To feed
an asyncio consumer (an SSE endpoint) from a launch thread, pass
`lambda t: loop.call_soon_threadsafe(queue.put_nowait, t.tolist())`: one hand-over per batch.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional

if TYPE_CHECKING:  # numpy is imported when a loop runs, not by `import foundry_channels`
    import numpy as np

_UNSET = object()


@dataclass
class DriveResult:
    steps: int
    delivered: int
    first_token_s: Optional[float]  # from the first launch to the first token drained
    seconds: float
    # Whether the `ahead` bound was dropped because launches did not deliver tokens as counted
    # (see launch_and_drain's `stall_s`).
    bound_dropped: bool = False


# The reader's strategy names (csrc/channel/wait_strategy.hpp) plus "auto" and None: checked
# here because the strategy is only put in place at the first wait, after launches began.
_WAIT_STRATEGY_NAMES = ("auto", "adaptive", "spin", "backoff", None)


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def launch_and_drain(launch: Callable[[int], object], reader, steps: int,
                     on_tokens: Optional[Callable[["np.ndarray"], object]] = None, *,
                     done: Optional[Callable[[], bool]] = None, batch: int = 1024,
                     ahead: Optional[int] = None, tokens_per_launch: int = 1,
                     stall_s: float = 0.05, wait_slice_s: float = 0.0005,
                     wait_strategy: Optional[str] = "auto",
                     tail_wait_strategy=_UNSET) -> DriveResult:
    """Calls `launch(i)` for i in range(steps), draining `reader` (non-blocking) after each;
    then, if `done` is given, keeps draining (blocking waits of at most `wait_slice_s`, GIL
    released) until `done()` is true and nothing is left; else drains what is readable once.
    Returns the counts and the first-token time.

    `ahead`: None (the default) launches back to back, draining after each launch. A number
    keeps at most that many launches in flight, a launch counting as finished once its
    `tokens_per_launch` tokens were drained; with that many in flight the loop waits for the
    next token (GIL released) before launching again: it bounds how far a loop that stops
    early has run ahead (on an H200 it gave the first token no gain: benchmarks/RESULTS.md).
    If no token comes for `stall_s` while it waits (launches that push fewer tokens than
    counted, or none), the bound is dropped for the rest of the call
    (`DriveResult.bound_dropped`), so a miscount costs `stall_s` once, never a hang.

    `wait_slice_s` is also how late the loop can notice `done()`: the last token usually lands
    a few microseconds before the device reports done, and no token follows it to end the wait.

    `wait_strategy`: the reader's wait strategy during the call's waits (restored afterwards).
    "spin" keeps the thread, which has nothing else to do, on a core, as `.item()`'s
    cudaStreamSynchronize does: a token is seen within a microsecond of landing. "auto" (the
    default) is "spin" where this process may run on more than two cores, else "adaptive" (on
    two cores a spinning thread can take the core the producer needs, e.g. the `cpu`
    backend's device thread). None keeps the reader's own. (`tail_wait_strategy` is its former
    name.)

    `batch`: the most tokens one drain copies (and hands to `on_tokens`); below 4096 a drain
    keeps the GIL (a copy of that size is cheaper than handing the GIL to another thread, which
    can keep it for the interpreter's switch interval)."""
    if tail_wait_strategy is not _UNSET:
        wait_strategy = tail_wait_strategy
    if wait_strategy not in _WAIT_STRATEGY_NAMES:
        raise ValueError(f"launch_and_drain: wait_strategy must be one of 'auto', 'adaptive', "
                         f"'spin', 'backoff' or None, got {wait_strategy!r}")
    if steps < 0:
        raise ValueError(f"launch_and_drain: steps must be >= 0, got {steps}")
    if batch < 1:
        raise ValueError(f"launch_and_drain: batch must be >= 1, got {batch}")
    if ahead is not None and ahead < 1:
        raise ValueError(f"launch_and_drain: ahead must be >= 1 or None, got {ahead}")
    if tokens_per_launch < 1:
        raise ValueError(
            f"launch_and_drain: tokens_per_launch must be >= 1, got {tokens_per_launch}")
    if not stall_s > 0 or not wait_slice_s > 0:
        raise ValueError(f"launch_and_drain: stall_s and wait_slice_s must be > 0, got "
                         f"{stall_s} and {wait_slice_s}")
    # The first launch comes before anything else of ours: every microsecond spent here is
    # one the first token waits (measured on an H200: setting up first put the first launch
    # 30-60 us after the call, and the first token as much later than a hand-written loop's).
    perf_counter = time.perf_counter
    start = perf_counter()
    if steps:
        launch(0)
    import numpy as np

    out = np.empty(batch, dtype=np.uint32)
    first: Optional[float] = None
    delivered = 0
    bounded = ahead is not None
    dropped = False
    closed = False
    own_strategy = None  # the reader's own strategy, while ours is in place

    def drain() -> int:
        nonlocal first, delivered
        n = reader.drain_into(out)
        if n:
            if first is None:
                first = perf_counter() - start
            delivered += n
            if on_tokens is not None:
                on_tokens(out[:n])
        return n

    def use_our_strategy() -> None:
        # Only the waits use it, so it is put in place at the first wait, not before launch 0.
        nonlocal own_strategy
        if wait_strategy is not None and own_strategy is None:
            own_strategy = reader.wait_strategy
            reader.wait_strategy = (("spin" if _usable_cores() > 2 else "adaptive")
                                    if wait_strategy == "auto" else wait_strategy)

    try:
        for i in range(steps):
            if i:
                if bounded and not closed:
                    # Launches 0..i-1 are out; wait while `ahead` of them have not delivered.
                    waited_since = None
                    while i - delivered // tokens_per_launch >= ahead:
                        if drain():
                            waited_since = None  # progress: a stall is `stall_s` without one
                            continue
                        now = perf_counter()
                        if waited_since is None:
                            waited_since = now
                        elif now - waited_since > stall_s:
                            bounded, dropped = False, True  # tokens do not come as counted
                            break
                        use_our_strategy()
                        if reader.wait(wait_slice_s) == "closed":
                            closed = True
                            break
                launch(i)
            drain()
        if done is None:
            while drain():
                pass
        else:
            use_our_strategy()
            while True:
                if drain():
                    continue
                if done():
                    while drain():
                        pass
                    break
                if reader.wait(wait_slice_s) == "closed":
                    while drain():
                        pass
                    break
    finally:
        if own_strategy is not None:
            reader.wait_strategy = own_strategy
    return DriveResult(steps, delivered, first, perf_counter() - start, dropped)
