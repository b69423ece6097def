"""Cancelling a running workflow from any thread, through the device's control block.

A run's decode steps read one fc.ControlBlock (the context's, made on first use): a cancel is
one store into shared memory that the next decode step reads before it samples, so the device
stops within one step of the write becoming visible, in the command buffer that is running and
in every one committed behind it (stop flag CANCELLED, predicated off like EOS: nothing past the
cancel point is pushed, and the usual rollback rules apply). The loop runner then stops
committing windows. `Cancellation` is the handle a caller keeps: it may be cancelled before the
run has made its block (the block starts cancelled) and from any thread (a server's disconnect
handler, a signal handler's thread, a timer).
"""

from __future__ import annotations

import threading
from typing import Optional


class Cancellation:
    """cancel() stops the run(s) it was given to (run_workflow(..., cancellation=...))."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cancelled = False
        self._blocks: list = []

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        """Idempotent, thread-safe, never blocks on the device."""
        with self._lock:
            self._cancelled = True
            blocks = list(self._blocks)
        for block in blocks:
            block.cancel()

    def attach(self, block) -> None:
        """Called by the run that makes `block`: a cancel already requested applies at once."""
        with self._lock:
            self._blocks.append(block)
            cancelled = self._cancelled
        if cancelled:
            block.cancel()

    def detach(self, block) -> None:
        with self._lock:
            if block in self._blocks:
                self._blocks.remove(block)


def is_cancelled(cancellation: Optional[Cancellation]) -> bool:
    return cancellation is not None and cancellation.cancelled
