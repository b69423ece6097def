"""The recommended consumer for a Python launch loop: launch, then drain, in the same thread.

A thread that launches device work from Python (torch graph replays with `fc.stream_write`
inside, command buffers) holds the GIL most of the time, so a reader on another thread (or an
asyncio loop) gets each token only when it wins the GIL back: the first token arrives late and
later ones in bursts. Draining from the launching thread itself needs no GIL hand-over:
`reader.drain_into` is a non-blocking copy of ~100 ns when nothing is new, so doing it after
every launch costs the loop almost nothing and sees a token one launch after the device wrote
it (the streaming runner does the same between windows).

    result = fc.launch_and_drain(lambda i: graph.replay(), reader, steps=256,
                                 on_tokens=lambda toks: print(toks.tolist()),
                                 done=finished_event.query)

`on_tokens` gets a numpy uint32 view of the new tokens (valid until the call returns). To feed
an asyncio consumer (an SSE endpoint) from a launch thread, pass
`lambda t: loop.call_soon_threadsafe(queue.put_nowait, t.tolist())`: one hand-over per batch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional

if TYPE_CHECKING:  # numpy is imported when a loop runs, not by `import foundry_channels`
    import numpy as np


@dataclass
class DriveResult:
    steps: int
    delivered: int
    first_token_s: Optional[float]  # from the first launch to the first token drained
    seconds: float


def launch_and_drain(launch: Callable[[int], object], reader, steps: int,
                     on_tokens: Optional[Callable[["np.ndarray"], object]] = None, *,
                     done: Optional[Callable[[], bool]] = None, batch: int = 4096,
                     wait_slice_s: float = 0.0005,
                     tail_wait_strategy: Optional[str] = "spin") -> DriveResult:
    """Calls `launch(i)` for i in range(steps), draining `reader` (non-blocking) after each;
    then, if `done` is given, keeps draining (blocking waits of at most `wait_slice_s`, GIL
    released) until `done()` is true and nothing is left; else drains what is readable once.
    Returns the counts and the first-token time.

    `wait_slice_s` is also how late the loop can notice `done()`: the last token usually lands
    a few microseconds before the device reports done, and no token follows it to end the wait
    (with a 50 ms slice such a run could end up to 50 ms late).

    `tail_wait_strategy`: the reader's wait strategy while it waits for the tokens still in
    flight after the last launch (restored afterwards). "spin" (the default) keeps the thread,
    which has nothing else to do, on a core as `.item()`'s cudaStreamSynchronize does; tokens
    a replayed graph pushes every ~0.1 ms then reach an asyncio consumer with an inter-token
    p99 of 159 us instead of 185 us (H200, 129 us step). None keeps the reader's own."""
    import numpy as np

    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if done is not None and tail_wait_strategy is not None:
        own = reader.wait_strategy
        reader.wait_strategy = tail_wait_strategy  # refuses an unknown name before any launch
        try:
            return launch_and_drain(launch, reader, steps, on_tokens, done=done, batch=batch,
                                    wait_slice_s=wait_slice_s, tail_wait_strategy=None)
        finally:
            reader.wait_strategy = own
    out = np.empty(batch, dtype=np.uint32)
    start = time.perf_counter()
    first: Optional[float] = None
    delivered = 0

    def drain() -> int:
        nonlocal first, delivered
        n = reader.drain_into(out)
        if n:
            if first is None:
                first = time.perf_counter() - start
            delivered += n
            if on_tokens is not None:
                on_tokens(out[:n])
        return n

    for i in range(steps):
        launch(i)
        drain()
    if done is None:
        while drain():
            pass
    else:
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
    return DriveResult(steps, delivered, first, time.perf_counter() - start)
