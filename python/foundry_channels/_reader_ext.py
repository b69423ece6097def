"""Python-level reading styles on top of the C++ ChannelU32Reader: blocking iteration that
ends when the channel closes, a poll-style API for frameworks with their own loops, and
`async for` for asyncio.

Every style goes through the same non-blocking C++ calls (try_next, exhausted) and the
C++ wait (which releases the GIL and backs off), so none of them can emit an item twice or
lose one the others would have returned.
"""

from __future__ import annotations

from enum import Enum
from typing import AsyncIterator, Iterator, NamedTuple, Optional

from ._core import ChannelU32Reader


class PollState(str, Enum):
    READY = "ready"  # `value` holds the next item
    PENDING = "pending"  # nothing now; the producer may still push
    CLOSED = "closed"  # the channel is closed and every item was read


class Poll(NamedTuple):
    state: PollState
    value: Optional[int] = None


_PENDING = Poll(PollState.PENDING)
_CLOSED = Poll(PollState.CLOSED)


def poll_next(self: ChannelU32Reader) -> Poll:
    """Never blocks: Poll(READY, item), Poll(PENDING) or Poll(CLOSED)."""
    value = self.try_next()
    if value is not None:
        return Poll(PollState.READY, value)
    # exhausted re-checks write_idx after seeing the closed flag, so an item pushed just
    # before the close is never reported as CLOSED.
    return _CLOSED if self.exhausted else _PENDING


def stream(self: ChannelU32Reader, timeout: Optional[float] = None) -> Iterator[int]:
    """Blocking iteration: yields items as they arrive and ends once the channel is closed
    and drained. `timeout` bounds each wait for the next item (TimeoutError)."""
    while True:
        value = self.try_next()
        if value is not None:
            yield value
            continue
        state = self.wait(timeout)
        if state == "closed":
            return
        if state == "timeout":
            raise TimeoutError(f"stream(): no item within {timeout} s (position {self.position})")


# asyncio polling back-off: a few event-loop turns (catches a device that is about to push),
# then sleeps doubling from 50 us to 2 ms, so an idle reader costs at most ~500 wake-ups/s
# and never busy-spins the loop.
_ASYNC_FAST_TURNS = 8
_ASYNC_MIN_SLEEP = 50e-6
_ASYNC_MAX_SLEEP = 2e-3


async def next_async(self: ChannelU32Reader, timeout: Optional[float] = None) -> int:
    """Awaits the next item; StopAsyncIteration once closed and drained; TimeoutError after
    `timeout` seconds."""
    # Imported here, not at module level: `import foundry_channels` stays light (asyncio
    # costs tens of ms), and the CLI acts on a Ctrl-C only once the package import is done.
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    turns, sleep = 0, _ASYNC_MIN_SLEEP
    while True:
        state, value = poll_next(self)
        if state is PollState.READY:
            return value
        if state is PollState.CLOSED:
            raise StopAsyncIteration
        if deadline is not None and loop.time() >= deadline:
            raise TimeoutError(f"next_async(): no item within {timeout} s (position {self.position})")
        if turns < _ASYNC_FAST_TURNS:
            turns += 1
            await asyncio.sleep(0)
        else:
            await asyncio.sleep(sleep)
            sleep = min(sleep * 2, _ASYNC_MAX_SLEEP)


def _aiter(self: ChannelU32Reader) -> AsyncIterator[int]:
    return self


async def _anext(self: ChannelU32Reader) -> int:
    return await next_async(self)


def install() -> None:
    ChannelU32Reader.poll_next = poll_next
    ChannelU32Reader.stream = stream
    ChannelU32Reader.next_async = next_async
    ChannelU32Reader.__aiter__ = _aiter
    ChannelU32Reader.__anext__ = _anext
