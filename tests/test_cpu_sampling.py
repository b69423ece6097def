"""CPU sampling inside one running command buffer (workflow `sampler: cpu`, host_sampler.py):
the device pushes each step's distribution out, a CPU sampler sends the token back through a
host-to-device channel, the same command buffer continues. Its tokens equal the device
sampler's (with the default CPU sampler) and those of the same sampler run with one
synchronisation per step; a failing sampler ends the run with an error naming the position,
never a hang."""

from __future__ import annotations

import numpy as np
import pytest

from foundry_channels.lm import encode_prompt
from foundry_channels.lm.cpu_sampler import greedy_sampler
from foundry_channels.samples.cpu_sampling import per_step_sync
from foundry_channels.workflow import Cancellation, TokenFeed, run_workflow, sample_path
from foundry_channels.workflow.host_sampler import HostSamplerError

CPU_SAMPLED = sample_path("text_generation_cpu_sampler")
PROMPT = "We hold these truths"


def tokens_of(run) -> list:
    tokens = run.outputs["generated_tokens"].numpy().tolist()
    run.context.close()
    return tokens


@pytest.mark.parametrize("mode", ["interactive", "throughput", "windowed"])
def test_cpu_sampled_tokens_equal_the_device_sampler(device, mode):
    for seed in (0, 5, 99):
        inputs = {"prompt": PROMPT, "seed": seed, "max_tokens": 120, "window": 8}
        on_device = tokens_of(run_workflow(sample_path(), device, inputs=inputs, mode=mode))
        on_cpu = tokens_of(run_workflow(CPU_SAMPLED, device, inputs=inputs, mode=mode))
        assert on_cpu == on_device
        assert on_cpu, "the run generated tokens"


def test_any_workflow_samples_on_the_cpu_with_the_run_option(device):
    inputs = {"prompt": PROMPT, "seed": 3, "max_tokens": 60}
    on_device = tokens_of(run_workflow(sample_path(), device, inputs=inputs))
    run = run_workflow(sample_path(), device, inputs=inputs, sampler="cpu")
    sampler = run.context._host_sampler
    on_cpu = tokens_of(run)
    assert on_cpu == on_device
    assert sampler is not None and sampler.served >= len(on_cpu), "the CPU drew every token"
    # and a CPU-sampled workflow back on the device: no CPU sampler at all
    run = run_workflow(CPU_SAMPLED, device, inputs=inputs, sampler="device")
    assert run.context._host_sampler is None
    assert tokens_of(run) == on_device


def test_a_custom_sampler_gives_the_tokens_of_a_per_step_synchronised_run(device):
    calls = []

    def greedy_counting(counts: np.ndarray, position: int) -> int:
        calls.append(position)
        return greedy_sampler(counts, position)

    inputs = {"prompt": PROMPT, "seed": 0, "max_tokens": 80, "window": 16}
    run = run_workflow(CPU_SAMPLED, device, inputs=inputs, cpu_sampler=greedy_counting)
    in_one_cb = tokens_of(run)
    synchronised = per_step_sync(device, greedy_sampler, encode_prompt(PROMPT), max_tokens=80)
    assert in_one_cb == synchronised
    # the same step encoded once and replayed per step (the benchmark's strictest baseline)
    assert per_step_sync(device, greedy_sampler, encode_prompt(PROMPT), max_tokens=80,
                         replay=True) == synchronised
    # one call per generated token (plus the one that drew EOS, if any), positions in order
    assert calls == sorted(calls) and len(calls) in (len(in_one_cb), len(in_one_cb) + 1)


def test_a_sampler_that_raises_ends_the_run_with_its_error(device):
    def failing(counts, position):
        if position >= len(encode_prompt(PROMPT)) + 5:
            raise KeyError("no grammar state")
        return greedy_sampler(counts, position)

    with pytest.raises(HostSamplerError, match=r"raised at position \d+: KeyError"):
        run_workflow(CPU_SAMPLED, device, inputs={"prompt": PROMPT, "max_tokens": 50},
                     cpu_sampler=failing)


@pytest.mark.parametrize("bad", [-1, 256, 3.5, "a", None])
def test_a_sampler_that_returns_no_token_is_an_error(bad):
    with pytest.raises(HostSamplerError, match="not a token of the 256-token vocabulary"):
        run_workflow(CPU_SAMPLED, "cpu", inputs={"prompt": PROMPT, "max_tokens": 20},
                     cpu_sampler=lambda counts, position: bad)


def test_cancel_stops_a_cpu_sampled_run(device):
    cancellation = Cancellation()
    seen = []

    def on_token(token):
        seen.append(token)
        if len(seen) == 10:
            cancellation.cancel()

    inputs = {"prompt": PROMPT, "seed": 1, "max_tokens": 3000, "window": 8}
    run = run_workflow(CPU_SAMPLED, device, inputs=inputs, on_token=on_token,
                       cancellation=cancellation)
    tokens = tokens_of(run)
    full = tokens_of(run_workflow(sample_path(), device, inputs=inputs))
    assert run.loops[-1].cancelled and tokens == full[:len(tokens)] and len(tokens) >= 10


def test_bad_sampler_arguments_are_refused():
    with pytest.raises(ValueError, match="sampler must be one of device, cpu"):
        run_workflow(sample_path(), "cpu", sampler="gpu")
    with pytest.raises(TypeError, match="cpu_sampler must be a callable"):
        run_workflow(sample_path(), "cpu", cpu_sampler=3)



def test_cpu_sampling_is_refused_where_kernels_may_not_wait_for_the_cpu():
    """As on Metal: the step's h2d_pop_wait is refused when encoded, with the reason; feeding
    tokens (h2d_try_pop, polling) still works there."""
    import foundry_channels as fc

    with fc.Device("cpu") as dev:
        dev._refuse_cpu_waits()  # behave as Metal does
        with pytest.raises(Exception, match="h2d_pop_wait.*waits for a value the CPU writes"):
            run_workflow(CPU_SAMPLED, dev, inputs={"prompt": PROMPT, "max_tokens": 5})
        feed = TokenFeed()
        feed.push(encode_prompt("ok"))
        run = run_workflow(sample_path(), dev, feed=feed, inputs={"prompt": PROMPT,
                                                                  "max_tokens": 5})
        assert run.outputs["generated_tokens"].numpy().tolist()[:2] == encode_prompt("ok")
        run.context.close()
