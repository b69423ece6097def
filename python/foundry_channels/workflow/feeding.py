"""Feeding tokens into a running decode loop from the CPU (a forced continuation, a tool
result): the device takes them in order, one per decode step, in the next steps of the
windows already running.

A run given a TokenFeed (run_workflow(feed=...), start_workflow(feed=True)) makes one
host-to-device channel; each decode step first tries to take a token from it (h2d_try_pop,
never waits) and uses that token instead of sampling when there is one (lm_decode_step
forced_mode 1). A fed token is treated as sampled: it is pushed to the stream, counts towards
max_tokens, and EOS ends the turn; sampling after it continues from a history that holds it.
Tokens pushed before the run has made its channel are kept and sent when it has.
"""

from __future__ import annotations

import threading
from typing import Iterable, Optional

import numpy as np

U32_MAX = 0xFFFFFFFF
PUSH_TIMEOUT_S = 5.0  # a full channel: how long push waits for the device to take tokens


class TokenFeed:
    """push(tokens) from any thread: the run's decode steps consume them in order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[int] = []
        self._writer = None
        self.pushed = 0

    def push(self, tokens: Iterable[int], timeout: Optional[float] = PUSH_TIMEOUT_S) -> None:
        """Appends tokens; waits up to `timeout` seconds while the channel is full (the
        device takes one per step). TimeoutError says how many were sent."""
        values = [int(t) for t in tokens]
        bad = [t for t in values if not 0 <= t <= U32_MAX]
        if bad:
            raise ValueError(f"tokens must be u32 values, got {bad[0]}")
        with self._lock:
            if self._writer is None:
                self._pending.extend(values)
            elif values:
                self._writer.push_many(np.asarray(values, dtype=np.uint32), timeout=timeout)
            self.pushed += len(values)

    def attach(self, writer) -> None:
        """Called by the run once its channel exists: tokens pushed so far are sent."""
        with self._lock:
            self._writer = writer
            pending, self._pending = self._pending, []
            if pending:
                writer.push_many(np.asarray(pending, dtype=np.uint32), timeout=PUSH_TIMEOUT_S)

    def detach(self) -> None:
        with self._lock:
            self._writer = None
