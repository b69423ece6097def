"""Cancelling a workflow run through the device control block (workflow/cancellation.py):
from the run's own callback, from another thread (start_workflow's handle), before the run
starts, and by an exception inside the run. A cancelled run's tokens are always a prefix of
the same run uncancelled, and its loop reports stop flag CANCELLED."""

from __future__ import annotations

import random
import threading

import pytest

from foundry_channels.lm import StopFlag
from foundry_channels.workflow import Cancellation, run_workflow, sample_path, start_workflow

NO_EOS_INPUTS = {"prompt": "We hold these truths", "max_tokens": 3000, "window": 16}


def uncancelled(backend: str, seed: int, mode: str) -> list:
    run = run_workflow(sample_path(), backend, inputs={**NO_EOS_INPUTS, "seed": seed}, mode=mode)
    tokens = run.outputs["generated_tokens"].numpy().tolist()
    run.context.close()
    return tokens


@pytest.mark.parametrize("mode", ["throughput", "interactive", "windowed"])
def test_cancel_from_on_token_at_random_points_gives_a_prefix(device, mode):
    rng = random.Random(f"{device.backend}-{mode}")
    checked = 0
    for _ in range(6):
        seed = rng.randrange(1 << 32)
        full = uncancelled(device, seed, mode)
        if len(full) < 8:
            continue  # EOS came first: nothing to cancel
        at = rng.randrange(1, len(full) - 1)
        cancellation = Cancellation()
        seen: list = []

        def on_token(token: int) -> None:
            seen.append(token)
            if len(seen) == at:
                cancellation.cancel()

        run = run_workflow(sample_path(), device, inputs={**NO_EOS_INPUTS, "seed": seed},
                           mode=mode, on_token=on_token, cancellation=cancellation)
        tokens = run.outputs["generated_tokens"].numpy().tolist()
        loop = run.loops[-1]
        assert loop.cancelled
        assert tokens == full[:len(tokens)], "a cancelled run is a prefix of the uncancelled one"
        assert seen == tokens, "every token the run generated was delivered, once, in order"
        assert len(tokens) >= at
        # No window is committed after the cancel, and the (at most two) windows in flight
        # stop at the first step that reads it: 0 when every step had run before the cancel.
        assert len(tokens) <= at + 2 * NO_EOS_INPUTS["window"]
        checked += 1
        if tokens != full:  # (a cancel near the end may come after the run's own EOS)
            assert loop.stop_flag in (StopFlag.RUNNING, StopFlag.CANCELLED)
    assert checked >= 3, "most seeds ended by EOS within 8 tokens: pick others"


def test_handle_cancel_from_another_thread_stops_the_run(backend):
    from conftest import open_or_skip

    open_or_skip(backend).close()
    first = threading.Event()
    handle = start_workflow(sample_path(), backend,
                            inputs={**NO_EOS_INPUTS, "max_tokens": 65000, "seed": 11},
                            on_token=lambda t: first.set())
    assert first.wait(60), "the run streamed no token"
    handle.cancel()
    run = handle.result(timeout=60)
    loop = run.loops[-1]
    tokens = run.outputs["generated_tokens"].numpy().tolist()
    full = uncancelled(backend, 11, "throughput")
    assert handle.cancelled and 1 <= len(tokens) < 65000
    if loop.cancelled:  # (else the run had ended by EOS before the cancel came)
        assert loop.stop_flag in (StopFlag.RUNNING, StopFlag.CANCELLED, StopFlag.EOS)
        assert tokens == full[:len(tokens)]
    else:
        assert loop.stop_flag == StopFlag.EOS and tokens == full
    run.context.close()


def test_a_run_cancelled_before_it_starts_generates_nothing(device):
    cancellation = Cancellation()
    cancellation.cancel()
    run = run_workflow(sample_path(), device, inputs={**NO_EOS_INPUTS, "seed": 3},
                       cancellation=cancellation)
    assert run.loops[-1].cancelled
    assert run.outputs["generated_tokens"].numpy().tolist() == []


def test_an_error_in_on_token_stops_the_device_and_propagates(device):
    calls = []

    def on_token(token: int) -> None:
        calls.append(token)
        if len(calls) == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_workflow(sample_path(), device, inputs={**NO_EOS_INPUTS, "max_tokens": 65000,
                                                    "window": 4096, "seed": 5},
                     on_token=on_token)
    assert len(calls) == 5


def test_start_workflow_reports_errors_and_timeouts():
    handle = start_workflow(sample_path(), "cpu", inputs={"no_such_input": 1})
    with pytest.raises(Exception, match="no input 'no_such_input'"):
        handle.result(timeout=60)
    assert handle.done()
    with pytest.raises(TypeError, match="handle.cancel"):
        start_workflow(sample_path(), "cpu", cancellation=Cancellation())
