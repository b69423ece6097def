"""How an event loop awaits the engine's request streams: one eventfd per engine, written by
the engine's driver thread (C++, no GIL) after a batch of tokens is published, a stream ends or
a request is cancelled, and only when the loop armed it since the last write.

The generic path (`_reader_async.wait_ready`) arms the process's poller thread for each wait:
its arm and disarm take the poller's lock with the GIL held and wake the poller and every
sleeper of the process's wake signal (the engine's driver among them), and a batch reaches the
loop through a second thread hop (driver -> poller -> loop). Measured under 64 concurrent HTTP
streams on the 2-core VM that was ~10% of the server's event loop, plus wake-ups of the other
threads. Here a wait is a dict entry and a future; one fd wake-up resolves every stream that
the batch fed.

One loop owns an engine's notifier at a time (the first that awaits; a later loop takes it
over once that loop is closed); streams awaited from another loop, with a timeout, or where
eventfd does not exist (not Linux, Python < 3.10) use the generic path."""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any, Callable, Dict, Optional, Tuple

AVAILABLE = hasattr(os, "eventfd")


class LoopNotifier:
    """The waits of one event loop on one engine's streams."""

    def __init__(self, core: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._core = core
        self.loop = loop
        self._waiting: Dict[Any, Tuple[Callable[[], bool], asyncio.Future]] = {}
        self.closed = False  # once closed, waiters take the generic path (request.py)
        self._fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        try:
            loop.add_reader(self._fd, self._wake)
        except BaseException:
            os.close(self._fd)
            raise
        core.set_notify_fd(self._fd)

    async def wait(self, key: Any, is_ready: Callable[[], bool]) -> None:
        """Returns once `is_ready()` (a stream's "something to read or ended"); `key` names
        the waiter (one wait per key at a time)."""
        if self.closed:
            return
        future = self.loop.create_future()
        self._waiting[key] = (is_ready, future)
        try:
            # Armed before the check: a change before it is seen by the check, a change after
            # it writes the fd (engine.hpp, arm_notify).
            self._core.arm_notify()
            if not is_ready():
                await future
        finally:
            del self._waiting[key]

    def _wake(self) -> None:
        try:
            os.eventfd_read(self._fd)
        except BlockingIOError:  # read by an earlier wake-up already
            pass
        if not self._waiting:
            return
        self._core.arm_notify()  # before the checks, as in wait()
        for is_ready, future in self._waiting.values():
            if not future.done() and is_ready():
                future.set_result(None)

    def close(self) -> None:
        """Detaches from the engine and closes the fd; on the loop's thread, or once the loop
        is closed. Every wait still pending returns: a write of the fd that the loop had not
        yet seen (the engine closed from another thread ends its streams, writes the fd, and
        this runs before the loop polls it) would otherwise be lost with the fd, and its
        waiters would sleep for ever; they re-check and wait the generic way."""
        if self.closed:  # idempotent: the engine's close may come after a takeover's
            return
        self.closed = True
        self._core.set_notify_fd(-1)  # nothing writes the fd after this returned
        if not self.loop.is_closed():
            self.loop.remove_reader(self._fd)
        os.close(self._fd)
        for _, future in self._waiting.values():
            if not future.done():
                future.set_result(None)


class EngineNotifiers:
    """The notifier of an engine: bound to one loop at a time."""

    def __init__(self, core: Any) -> None:
        self._core = core
        self._lock = threading.Lock()
        self._current: Optional[LoopNotifier] = None
        self._closed = False

    def for_running_loop(self) -> Optional[LoopNotifier]:
        """The running loop's notifier, or None (another open loop owns it, the engine is
        closed, or eventfd does not exist here): then the caller waits the generic way."""
        if not AVAILABLE:
            return None
        loop = asyncio.get_running_loop()
        current = self._current
        if current is not None and current.loop is loop:
            return current
        with self._lock:
            current = self._current
            if self._closed or (current is not None and not current.loop.is_closed()):
                return None
            if current is not None:  # its loop is closed: the fd is this loop's now
                current.close()
            self._current = LoopNotifier(self._core, loop)
            return self._current

    def close(self) -> None:
        """Called after the engine stopped (its streams have ended, so no wait is left)."""
        with self._lock:
            self._closed = True
            current, self._current = self._current, None
        if current is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is current.loop or current.loop.is_closed():
            current.close()
            return
        try:  # remove_reader belongs on the loop's own thread
            current.loop.call_soon_threadsafe(current.close)
        except RuntimeError:  # the loop closed meanwhile
            current.close()
