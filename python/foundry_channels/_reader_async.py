"""`await reader.next_async()` and `async for item in reader`: the binding's async methods
call next_async() here, so that asyncio is imported only by a program that uses it.

Every style goes through the same non-blocking C++ calls (poll_next), so none can emit an item
twice or lose one another style would have returned.
"""

from __future__ import annotations

import asyncio
from typing import Optional

from ._poll import PollState

# asyncio polling back-off: a few event-loop turns (catches a device that is about to push),
# then sleeps doubling from 50 us to 2 ms, so an idle reader costs at most ~500 wake-ups/s
# and never busy-spins the loop.
_FAST_TURNS = 8
_MIN_SLEEP = 50e-6
_MAX_SLEEP = 2e-3


async def next_async(reader, timeout: Optional[float] = None) -> int:
    """Awaits the next item; StopAsyncIteration once closed and drained; TimeoutError after
    `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    turns, sleep = 0, _MIN_SLEEP
    while True:
        state, value = reader.poll_next()
        if state is PollState.READY:
            return value
        if state is PollState.CLOSED:
            raise StopAsyncIteration
        if deadline is not None and loop.time() >= deadline:
            raise TimeoutError(f"next_async(): no item within {timeout} s "
                               f"(position {reader.position})")
        if turns < _FAST_TURNS:
            turns += 1
            await asyncio.sleep(0)
        else:
            await asyncio.sleep(sleep)
            sleep = min(sleep * 2, _MAX_SLEEP)
