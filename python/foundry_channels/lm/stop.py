"""The decode stop flag's codes, defined once in Python.

The kernels (csrc/kernels/lm_kernels.inc: lm_prefill, lm_decode_step) write them into the
u32[1] stop tensor (4 and 5 are csrc/channel/control_layout.hpp's kStopCancelled and
kStopRequested, what a control block makes a step write); the Python reference model, the runner's reports and the CLI read them
from here. Any non-zero value stops a loop (predicated steps check `stop != 0` only)."""

from __future__ import annotations

from enum import IntEnum


class StopFlag(IntEnum):
    RUNNING = 0  # not stopped: a loop that ends with it ran out of steps (its bound)
    EOS = 1  # the step sampled the end-of-sequence token
    MAX_TOKENS = 2  # the step reached the turn's max_tokens
    HISTORY_FULL = 3  # the history buffer is full (also: a prompt that did not fit)
    CANCELLED = 4  # the CPU cancelled through a control block (fc.ControlBlock.cancel)
    STOP_REQUESTED = 5  # the control block's limit was reached (ControlBlock.stop_after/stop_at)


_REASONS = {StopFlag.RUNNING: "max tokens", StopFlag.EOS: "EOS",
            StopFlag.MAX_TOKENS: "max tokens (device)", StopFlag.HISTORY_FULL: "history full",
            StopFlag.CANCELLED: "cancelled", StopFlag.STOP_REQUESTED: "stop requested"}


def stop_reason(flag: int) -> str:
    """Why a loop that ended with stop flag `flag` stopped, in words (RUNNING: the loop's
    own bound, max_steps, ended it)."""
    try:
        return _REASONS[StopFlag(flag)]
    except ValueError:
        return f"stop flag {flag}"
