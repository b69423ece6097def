"""What a while_batched loop may be configured with, defined once: the token delivery modes,
the window bound, and the loop rule that both the loader (at load time, with the step path)
and the runner (for a loop built in code) enforce.

Nothing here imports the rest of the package, so the op declaration (ops/control.py), the
loader, the runner, run_workflow, the CLI and the server all take these from one place.
"""

from __future__ import annotations

# Steps per command buffer: bounded so that one window stays short (GPU watchdogs).
MAX_WINDOW = 4096

# Token delivery (README, "Workflows, the streaming runner and the demo"): "windowed" hands
# over each completed window's collected tokens; the streaming modes drain the loop's channel
# while the device runs.
MODES = ("windowed", "throughput", "interactive")
STREAMING_MODES = ("throughput", "interactive")

# Refused rather than collect honouring EOS by itself: after the stop a decode step is a no-op
# that leaves its token tensor as it was, so a step that stopped and one that sampled the
# same token again look alike; the stop flag is the only record of the stop.
COLLECT_NEEDS_STOP = ("'collect' needs the loop's 'stop' flag: a step after the stop leaves "
                      "its token as it was, and without the flag the collect list would repeat "
                      "the last token for every later step")


def check_mode(mode: str) -> str:
    """`mode` if it is a delivery mode; ValueError naming the modes otherwise."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


def check_window(window: int) -> int:
    """`window` if it is 1..MAX_WINDOW steps; ValueError otherwise."""
    if not 1 <= window <= MAX_WINDOW:
        raise ValueError(f"window must be 1..{MAX_WINDOW}, got {window}")
    return window


# Who draws a decode step's token (lm_decode_step's `sampler`, run_workflow(sampler=...)):
# the device itself, or a CPU callable inside the running command buffer (host_sampler.py).
SAMPLERS = ("device", "cpu")
