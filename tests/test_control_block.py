"""The control block (fc.ControlBlock): words the CPU writes while a command buffer runs and
every decode step given it reads before sampling. A cancel stops the turn at the first step that
sees it (stop flag 4), a limit at the first step that reaches it (5); nothing past that point is
emitted, and the tokens are a prefix of the uncontrolled run."""

from __future__ import annotations

import random
import threading

import numpy as np
import pytest
from control_support import ControlledDecode, reference_tokens

import foundry_channels as fc
from foundry_channels.lm.stop import StopFlag, stop_reason

SEEDS = range(12)


# ---- the block itself -------------------------------------------------------------------------


def test_a_new_block_has_no_request(device):
    control = fc.ControlBlock(device)
    layout = fc.control_layout()
    words = control.words
    assert words[layout["CONTROL_CANCEL"]["word"]] == 0
    assert words[layout["CONTROL_STOP_AT"]["word"]] == fc.CONTROL_NO_LIMIT
    assert (control.cancelled, control.stop_limit, control.generated, control.stopped) == \
        (False, None, 0, 0)
    assert control.buffer.storage == "shared" and control.buffer.nbytes == 4 * len(layout)
    with pytest.raises(ValueError):
        words[0] = 1  # a read-only view


def test_requests_are_idempotent_and_reset_clears_them(cpu_device):
    control = fc.ControlBlock(cpu_device)
    control.cancel()
    control.cancel()
    assert control.cancelled
    assert control.stop_after(10) == 10  # nothing generated yet: the limit is 0 + 10
    assert control.stop_after(30) == 10  # never raised by a later request
    assert control.stop_after(4) == 4 and control.stop_limit == 4
    control.stop_at(100)  # stop_at replaces the limit outright
    assert control.stop_limit == 100
    control.reset()
    assert (control.cancelled, control.stop_limit) == (False, None)
    assert "cancelled=False" in repr(control)


def test_concurrent_stop_after_keeps_the_smallest_limit(cpu_device):
    control = fc.ControlBlock(cpu_device)
    limits = list(range(1000, 0, -7))
    random.Random(3).shuffle(limits)
    threads = [threading.Thread(target=lambda part=limits[i::4]: [control.stop_after(n)
                                                                  for n in part])
               for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert control.stop_limit == min(limits)


@pytest.mark.parametrize("call, error, message", [
    (lambda c: c.stop_after(-1), ValueError, r"stop_after\(n\) must be between 0 and 4294967295"),
    (lambda c: c.stop_after(1.5), TypeError, r"stop_after\(n\) must be an int"),
    (lambda c: c.stop_at(1 << 32), ValueError, r"stop_at\(limit\) must be between"),
])
def test_bad_requests_are_refused(cpu_device, call, error, message):
    with pytest.raises(error, match=message):
        call(fc.ControlBlock(cpu_device))


def test_a_private_buffer_is_refused_as_a_control_parameter(cpu_device):
    run = ControlledDecode(cpu_device, seed=1)
    cb = run.queue.command_buffer()
    with pytest.raises(ValueError, match="argument 'control' must be a 'shared' buffer"):
        cb.dispatch("lm_decode_step", 1, model=run.model.buffer, state=run.state.buffer,
                    history=run.history.buffer, out=run.out.buffer, stop=run.stop.buffer,
                    seed=1, eos=0, max_tokens=0, history_capacity=run.history.numel,
                    control=cpu_device.buffer(16, storage="private"), use_control=1)
    with pytest.raises(TypeError, match="argument 'control' must be a ControlBlock or a shared"):
        cb.dispatch("lm_decode_step", 1, model=run.model.buffer, state=run.state.buffer,
                    history=run.history.buffer, out=run.out.buffer, stop=run.stop.buffer,
                    seed=1, eos=0, max_tokens=0, history_capacity=run.history.numel,
                    control=run.stream, use_control=1)
    assert fc.kernel_signature("lm_decode_step")[6] == \
        {"name": "control", "kind": "shared", "slot": 8, "optional": True}


def test_the_stop_codes_have_reasons():
    assert stop_reason(StopFlag.CANCELLED) == "cancelled"
    assert stop_reason(StopFlag.STOP_REQUESTED) == "stop requested"


# ---- decode steps: the request becomes visible between two command buffers (exact) ------------


@pytest.mark.parametrize("seed", SEEDS)
def test_cancel_stops_at_the_first_step_that_sees_it(device, seed):
    total = 48
    reference = reference_tokens(device, seed, total)
    assert len(reference) == total
    split = random.Random(seed).randrange(0, total)
    run = ControlledDecode(device, seed=seed)
    run.steps(split)
    assert run.control.generated == split
    run.control.cancel()  # before the commit: every step of the next command buffer sees it
    run.steps(total - split)
    assert run.drain() == reference[:split]  # the first step after the write emitted nothing
    assert run.flag == StopFlag.CANCELLED and run.control.stopped == StopFlag.CANCELLED
    assert run.control.generated == split
    assert run.state.numpy()[1] == split and run.state.numpy()[3] == run.state.numpy()[0]


@pytest.mark.parametrize("seed", SEEDS)
def test_stop_after_emits_exactly_n_more_tokens(device, seed):
    total = 64
    reference = reference_tokens(device, seed, total)
    rng = random.Random(100 + seed)
    split, more = rng.randrange(0, 32), rng.randrange(0, 16)
    run = ControlledDecode(device, seed=seed)
    run.steps(split)
    assert run.control.stop_after(more) == split + more
    run.steps(total - split)
    assert run.drain() == reference[:split + more]
    assert run.flag == StopFlag.STOP_REQUESTED == run.control.stopped


def test_cancel_with_overshoot_rolls_back_to_the_stop_point(device):
    total, split = 40, 17
    reference = reference_tokens(device, 5, total)
    plain = ControlledDecode(device, seed=5)
    over = ControlledDecode(device, seed=5, overshoot=1)
    for run in (plain, over):
        run.steps(split)
        run.control.cancel()
        run.steps(total - split)
    assert plain.drain() == over.drain() == reference[:split]
    assert over.flag == StopFlag.CANCELLED
    assert over.state.numpy()[0] > plain.state.numpy()[0]  # overshoot advanced, invisibly
    cb = over.queue.command_buffer()
    cb.dispatch("lm_rollback", 1, state=over.state.buffer, history=over.history.buffer,
                stop=over.stop.buffer, history_capacity=over.history.numel)
    over.run(cb)
    assert over.state.numpy().tolist() == plain.state.numpy().tolist()
    assert np.array_equal(over.history.numpy(), plain.history.numpy())


def test_a_block_without_use_control_is_not_read(cpu_device):
    reference = reference_tokens(cpu_device, 2, 20)
    run = ControlledDecode(cpu_device, seed=2)
    run.control.cancel()
    run.steps(20, use_control=0)
    assert run.drain() == reference and run.flag == StopFlag.RUNNING
    assert run.control.generated == 0  # and nothing is reported into it


# ---- decode steps: cancel while the window runs ------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_cancel_mid_window_stops_within_a_step(cpu_device, seed):
    steps = 6000
    reference = reference_tokens(cpu_device, seed, steps)
    rng = random.Random(seed)
    run = ControlledDecode(cpu_device, seed=seed)
    cb = run.queue.command_buffer()
    run.encode_steps(cb, steps, pad_words=2048)  # ~10-20 us a step on the host device
    cb.commit()
    wanted = rng.randrange(1, 200)
    seen = []
    while len(seen) < wanted:
        seen.append(run.reader.next(timeout=60))
    run.control.cancel()
    reported = run.control.generated  # read after the cancel
    assert cb.wait_until_completed(timeout=120)
    tokens = seen + list(run.reader)
    assert reported < steps, "the run ended before the cancel: the test proves nothing"
    assert tokens == reference[:len(tokens)]  # a prefix of the uncancelled run
    assert run.flag == StopFlag.CANCELLED == run.control.stopped
    # The step that saw the cancel emitted nothing: the count it stopped at is the count emitted.
    assert run.control.generated == len(tokens) == run.state.numpy()[1]
    # At most one step was already past its read of the block when the cancel was written, and
    # the count the device reported for the step before may have still been in its store buffer
    # (x86 orders a store after a later load) when this thread read it: two steps at most.
    assert len(tokens) <= reported + 2
