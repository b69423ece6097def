"""What a while_batched loop reports: one WindowReport per completed window and one
LoopResult per loop run. A run returns its loops' results (executor.WorkflowRun.loops).

Plain data, shared by the windowed and the streaming runner (runner.py, streaming.py), the
window reporting (reporting.py) and the executor, so none of them imports another for it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from .values import TensorArg


@dataclass
class WindowReport:
    index: int  # window number in this loop, from 0
    steps: int  # steps encoded in this window
    steps_total: int  # steps encoded so far in this loop
    tokens: list[int]  # tokens collected by this window (empty without `collect`)
    tokens_total: int  # tokens collected by this window and the ones before it (<= steps_total)
    stop_flag: int  # the device stop flag after the window (0 without `stop`; lm.stop.StopFlag)
    replayed: bool  # True when the window was a replay of an encoded one
    elapsed_s: float  # since the loop started


@dataclass
class LoopResult:
    steps: int
    windows: int
    stop_flag: int
    tokens: Optional[TensorArg]  # u32[n]: every collected token (None without `collect`)
    replays: int = 0
    reports: list[WindowReport] = field(default_factory=list)
    mode: str = "windowed"
    delivered: int = 0  # tokens handed to on_token (streaming modes: drained from the channel)
    first_token_s: Optional[float] = None  # since the loop started (streaming modes)
    encode_s: float = 0.0  # time spent encoding windows the first time (not replays)
    cpu_s: float = 0.0  # CPU time of the runner's thread during the loop (polling included)
    cancelled: bool = False  # the run was cancelled (cancellation.py) while this loop ran
