"""The text-generation sample workflow end to end, on every available backend: the channel's
emission equals generated_tokens, for windows 1, 4 and 64 and several seeds; the tokens are
the same on every backend and window size; EOS ends generation."""

from __future__ import annotations

import json

import numpy as np
import pytest

import foundry_channels as fc
from foundry_channels.lm import builtin_table, detokenize, encode_prompt, reference_generate
from foundry_channels.workflow import load_workflow, run_workflow, sample_path

SAMPLE = sample_path("text_generation_stream_u32")
PROMPT = "We hold these truths"


@pytest.fixture(scope="module")
def workflow():
    return load_workflow(SAMPLE)


def drain_all(channel) -> tuple[list[int], int, bool]:
    reader = channel.reader()
    out = np.zeros(channel.capacity, dtype=np.uint32)
    n = reader.drain_into(out)
    return out[:n].tolist(), reader.dropped, reader.exhausted


def generate(workflow, device, mode="windowed", **inputs):
    """Runs the sample; `emitted` is what went through the channel. In the windowed mode the
    runner leaves the channel alone and a reader drains it afterwards; in the streaming modes
    the runner's own reader drained it while the device ran (and handed each token to
    on_token), so a reader afterwards must find nothing left: no token is emitted twice."""
    tokens_seen: list[int] = []
    run = run_workflow(workflow, device, inputs={"prompt": PROMPT, **inputs},
                       on_token=tokens_seen.append, mode=mode)
    generated = run.outputs["generated_tokens"].tolist()
    emitted, dropped, exhausted = drain_all(run.context.channels["tokens"])
    if mode != "windowed":
        assert emitted == []
        emitted = tokens_seen
    return run, generated, emitted, dropped, exhausted, tokens_seen


@pytest.mark.parametrize("mode", ["windowed", "throughput", "interactive"])
@pytest.mark.parametrize("window", [1, 4, 64])
@pytest.mark.parametrize("seed", [0, 3, 11])
def test_channel_emission_equals_generated_tokens(device, workflow, window, seed, mode):
    run, generated, emitted, dropped, exhausted, seen = generate(
        workflow, device, mode=mode, window=window, seed=seed, max_tokens=150)
    assert len(generated) > 0
    assert emitted == generated  # every token went through the channel, in order
    assert dropped == 0 and exhausted  # closed after the loop, nothing lost
    assert seen == generated  # on_token saw the same tokens, once each
    expected, flag = reference_generate(builtin_table(), encode_prompt(PROMPT), seed, 150)
    assert generated == expected  # same as the backend-independent reference
    assert run.loops[0].stop_flag == flag
    assert run.outputs["text"] == detokenize(generated)


@pytest.mark.parametrize("seed", [1, 2])
def test_same_tokens_on_every_backend_and_window(device, workflow, seed):
    results = {}
    for window in (1, 4, 7, 64):
        _, generated, *_ = generate(workflow, device, window=window, seed=seed, max_tokens=100)
        results[window] = generated
    with fc.Device("cpu") as cpu:
        _, on_cpu, *_ = generate(workflow, cpu, window=16, seed=seed, max_tokens=100)
    assert all(tokens == on_cpu for tokens in results.values())


def test_windows_are_encoded_once_and_replayed(device, workflow):
    run, generated, *_ = generate(workflow, device, window=4, seed=0, max_tokens=40)
    report = run.loops[0]
    assert report.steps == 40 and report.windows == 10
    assert report.replays == 9  # the first window was encoded, the other nine replayed it


def test_eos_ends_generation(device, workflow):
    # With EOS = byte 0 (end of a passage) generation ends on its own for these seeds.
    for seed, mode in ((1, "windowed"), (3, "windowed"), (1, "throughput"), (3, "interactive")):
        run, generated, emitted, *_ = generate(workflow, device, mode=mode, window=64, seed=seed,
                                               max_tokens=5000)
        report = run.loops[0]
        assert report.stop_flag == 1  # EOS, not the bound
        assert len(generated) < 5000 and 0 not in generated
        assert emitted == generated
        # The loop stopped committing after the window that sampled EOS; the streaming modes
        # had one more window in flight (pipelining), whose steps were all predicated off.
        in_flight_extra = 0 if mode == "windowed" else 1
        assert report.steps <= (len(generated) // 64 + 1 + in_flight_extra) * 64


def test_eos_token_from_the_workflow(device):
    doc = json.load(open(SAMPLE))
    doc["values"]["eos_token"]["value"] = ord("\n")  # stop at the end of the first line
    wf = load_workflow(doc)
    run = run_workflow(wf, device, inputs={"prompt": "Shall I compare", "window": 64,
                                           "seed": 4, "max_tokens": 2000}, mode="windowed")
    generated = run.outputs["generated_tokens"].tolist()
    expected, flag = reference_generate(builtin_table(), encode_prompt("Shall I compare"), 4,
                                        2000, eos_token=ord("\n"))
    assert flag == 1 and generated == expected and ord("\n") not in generated
    assert drain_all(run.context.channels["tokens"])[0] == generated


def test_shipped_workflow_is_installed_next_to_the_package():
    import os

    assert os.path.dirname(os.path.dirname(SAMPLE)) == os.path.dirname(fc.__file__)
