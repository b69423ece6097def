"""Cancel is exact: the decode step after the CPU's cancel became visible is predicated off,
0 extra tokens. Each step first waits (h2d_pop_wait) for a go-ahead token from the CPU, so the
CPU knows which steps ran before its write: it cancels, then sends the next go-ahead; the
cancel store comes before the go-ahead's in the CPU's program order (both release stores) and
the device takes the go-ahead with an acquire load, so the step it lets run must see the
cancel (docs/protocol.md, "Control block")."""

from __future__ import annotations

import random
import time

import pytest

from foundry_channels.lm import StopFlag
from foundry_channels.workflow import TensorArg

from control_support import NO_EOS, ControlledDecode, reference_tokens
from h2d_support import ready_channel

STEPS = 48


@pytest.fixture
def waiting_device(device):
    if not device.kernels_may_wait_on_cpu:
        pytest.skip(f"{device.backend}: kernels may not wait for a CPU write")
    return device


def test_the_step_after_a_cancel_emits_nothing(waiting_device):
    dev = waiting_device
    rng = random.Random(dev.backend)
    for seed in rng.sample(range(1 << 16), 6):
        full = reference_tokens(dev, seed, STEPS, eos=NO_EOS)
        cancel_at = rng.randrange(0, STEPS)  # steps let run before the cancel
        run = ControlledDecode(dev, seed=seed, eos=NO_EOS)
        go = ready_channel(dev, capacity=4)
        token, got = TensorArg.zeros(dev, "u32", (1,)), TensorArg.zeros(dev, "u32", (1,))
        cb = run.queue.command_buffer()
        for _ in range(STEPS):
            go.encode_pop_wait(cb, token.buffer, got.buffer, timeout_us=30_000_000,
                               stop_flag=run.stop.buffer, predicated=True)
            run.encode_steps(cb, 1)
        writer = go.writer()
        cb.commit()
        for _ in range(cancel_at):  # let exactly cancel_at steps run
            writer.push(1, timeout=30)
        deadline = time.monotonic() + 30
        while run.control.generated < cancel_at:  # ... and see the last of them report
            assert time.monotonic() < deadline, "the device did not run the steps let through"
        run.control.cancel()
        writer.push(1, timeout=30)  # the next step may run now: it must see the cancel
        assert cb.wait_until_completed(timeout=60)
        tokens = run.drain()
        assert tokens == full[:len(tokens)]
        assert run.flag == StopFlag.CANCELLED
        assert len(tokens) == cancel_at, (seed, cancel_at, len(tokens))
