"""`await reader.next_async()` and `async for item in reader`: the binding's async methods
call next_async() here, so that asyncio is imported only by a program that uses it.

No Python sleeps: a reader with nothing to read is armed with the process's poller thread
(C++, csrc/channel/poller.hpp: one thread for every awaited reader of the process, the GIL
never taken), which checks it as the reader's wait strategy says and, when the wait ends,
writes an eventfd that this loop watches (`loop.add_reader`). The loop's callback resolves
the futures of every finished wait at once. While the loop awaits a single reader, the poller
hands it the wait as soon as an item is due within a short window (a commit just ran, or the
reader's learnt rate expects the item): the loop then wakes while the device is still
producing and finishes the wait in place, bounded by that window, so the item is not held up
by a second thread wake-up after it lands. Why an eventfd and not `call_soon_threadsafe`
from the poller: that call needs the GIL, so a Python thread holding it (a launch loop) would
stall every stream the poller serves, and a poller taking the GIL could meet a finalising
interpreter at exit; an fd write needs neither, and one write wakes the loop for a whole batch.

Every style goes through the same non-blocking C++ calls (poll_next), so none can emit an item
twice or lose one another style would have returned. An event loop that cannot watch fds
(Windows' proactor loop) falls back to polling with a back-off.
"""

from __future__ import annotations

import asyncio
import atexit
import weakref
from typing import Optional

from ._core import AsyncWaker, _poller_shutdown
from ._poll import PollState

_wakers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncWaker]" = (
    weakref.WeakKeyDictionary())
_NO_FD_WATCH = object()
_atexit_registered = False

# Fallback (loops without add_reader): a few loop turns, then sleeps doubling to 2 ms.
_FAST_TURNS = 8
_MIN_SLEEP = 50e-6
_MAX_SLEEP = 2e-3


def _waker(loop: asyncio.AbstractEventLoop):
    global _atexit_registered
    waker = _wakers.get(loop)
    if waker is None:
        waker = AsyncWaker()
        try:
            loop.add_reader(waker.fd, waker.dispatch)
        except NotImplementedError:
            waker = _NO_FD_WATCH
        _wakers[loop] = waker
        if not _atexit_registered:
            # Stops the poller thread before the interpreter finalises (it never touches
            # Python, so this is tidiness, not safety).
            atexit.register(_poller_shutdown)
            _atexit_registered = True
    return waker


def _timeout_error(reader, timeout) -> TimeoutError:
    return TimeoutError(f"next_async(): no item within {timeout} s (position {reader.position})")


async def next_async(reader, timeout: Optional[float] = None, pollable=None):
    """Awaits the next item; StopAsyncIteration once closed and drained; TimeoutError after
    `timeout` seconds. `reader` has poll_next(); `pollable` is the C++ reader the poller waits
    on when that is not `reader` itself (a record reader's numpy wrapper passes its core)."""
    state, value = reader.poll_next()
    if state is PollState.READY:
        return value
    if state is PollState.CLOSED:
        raise StopAsyncIteration
    loop = asyncio.get_running_loop()
    waker = _waker(loop)
    if waker is _NO_FD_WATCH:
        return await _next_by_polling(reader, timeout, loop)
    deadline = None if timeout is None else loop.time() + timeout
    while True:
        remaining = None if deadline is None else max(0.0, deadline - loop.time())
        outcome = await _armed_wait(waker, reader if pollable is None else pollable, remaining,
                                    loop)
        if outcome == "timeout":
            raise _timeout_error(reader, timeout)
        if outcome.__class__ is float:
            # Handed over: the item is due within `outcome` s (a commit just ran, or the learnt
            # rate expects it). Finish the wait here, in C++ with the GIL released, instead of
            # another poller -> loop wake-up after it lands; this loop waits no longer than
            # the window (at most 1 ms, mostly asleep) and only while it awaits this one reader.
            if deadline is not None:
                outcome = min(outcome, max(0.0, deadline - loop.time()))
            (reader if pollable is None else pollable).wait(outcome)
        state, value = reader.poll_next()
        if state is PollState.READY:
            return value
        if state is PollState.CLOSED:
            raise StopAsyncIteration


async def _armed_wait(waker, pollable, timeout, loop) -> str:
    """One wait of the poller thread for `pollable`: 'ready', 'closed' or 'timeout'."""
    future = loop.create_future()
    wait_id = waker.arm(pollable, timeout, future)
    try:
        return await future
    finally:
        if not future.done() or future.cancelled():
            waker.disarm(wait_id)  # cancelled: the poller forgets the reader first


async def wait_ready(pollable, is_ready, timeout: Optional[float] = None) -> bool:
    """Awaits `pollable` (anything the poller probes: a serving RequestStream) until
    `is_ready()` (False after `timeout` seconds). With the poller thread where the loop can
    watch its fd, else by polling with a back-off."""
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    waker = _waker(loop)
    turn = 0
    while not is_ready():
        remaining = None if deadline is None else deadline - loop.time()
        if remaining is not None and remaining <= 0:
            return False
        if waker is not _NO_FD_WATCH:
            await _armed_wait(waker, pollable, remaining, loop)
        else:
            await _polling_pause(turn)
            turn += 1
    return True


async def _next_by_polling(reader, timeout, loop) -> int:
    deadline = None if timeout is None else loop.time() + timeout
    turn = 0
    while True:
        state, value = reader.poll_next()
        if state is PollState.READY:
            return value
        if state is PollState.CLOSED:
            raise StopAsyncIteration
        if deadline is not None and loop.time() >= deadline:
            raise _timeout_error(reader, timeout)
        await _polling_pause(turn)
        turn += 1


async def _polling_pause(turn: int) -> None:
    """The fallback's pause before check number `turn` + 1: a few loop turns, then sleeps
    doubling from _MIN_SLEEP to _MAX_SLEEP."""
    if turn < _FAST_TURNS:
        await asyncio.sleep(0)
    else:
        await asyncio.sleep(min(_MIN_SLEEP * 2 ** min(turn - _FAST_TURNS, 16), _MAX_SLEEP))
