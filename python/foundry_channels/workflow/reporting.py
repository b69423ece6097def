"""The one window-report function of both runners: what happens when a window completed.

The windowed runner (runner.py) and the streaming runner (streaming.py) each learn in their
own way that the oldest window still in flight completed; both then call
WindowReporter.window_completed, so the bookkeeping (steps, replays, collected tokens, the
stop flag), the windowed mode's token delivery and on_window are written once."""

from __future__ import annotations

import time
from typing import Callable, Optional

import numpy as np

from .results import LoopResult, WindowReport


class WindowReporter:
    """Reads a loop's device-side views after each completed window. The views are made once
    by the loop (reading them allocates nothing); `count` and `collected` are None without
    `collect`, `stop` is None without the stop flag."""

    def __init__(self, *, deliver_tokens: bool, stop: Optional[np.ndarray],
                 count: Optional[np.ndarray], collected: Optional[np.ndarray],
                 on_token: Optional[Callable[[int], None]],
                 on_window: Optional[Callable[[WindowReport], None]]) -> None:
        # Only the windowed mode hands collected tokens to on_token: the streaming modes
        # deliver from the channel instead (a run delivers through exactly one path).
        self._deliver_tokens = deliver_tokens
        self._stop = stop
        self._count = count
        self._collected = collected
        self._on_token = on_token
        self._on_window = on_window
        self._reported = 0  # collected tokens already handed out in window reports

    def stop_flag(self) -> int:
        return int(self._stop[0]) if self._stop is not None else 0

    def window_completed(self, result: LoopResult, steps: int, replayed: bool,
                         start: float) -> WindowReport:
        """Records the completion of the oldest window not reported yet (windows complete
        in order) in `result`: in the windowed mode hands its collected tokens to on_token
        (that mode's one delivery path), then calls on_window; returns the report."""
        result.steps += steps
        result.replays += replayed
        tokens: list[int] = []
        if self._count is not None:
            # A window still running behind this one (streaming modes) may already have
            # collected more. Every step before the stop collects exactly one token and no
            # step after it does, so the windows completed so far collected the first
            # min(count, steps so far) tokens.
            total = min(int(self._count[0]), result.steps)
            tokens = self._collected[self._reported:total].tolist()
            self._reported = total
        flag = self.stop_flag()
        report = WindowReport(index=result.windows, steps=steps, steps_total=result.steps,
                              tokens=tokens, tokens_total=self._reported, stop_flag=flag,
                              replayed=replayed, elapsed_s=time.perf_counter() - start)
        result.windows += 1
        result.reports.append(report)
        if flag != 0:
            result.stop_flag = flag
        if self._deliver_tokens and self._on_token is not None:
            for token in tokens:
                self._on_token(token)
            result.delivered += len(tokens)
        if self._on_window is not None:
            self._on_window(report)
        return report
