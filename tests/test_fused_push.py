"""lm_decode_step with `stream`: the step kernel pushes its own token (no stream_write_u32
dispatch). Same tokens as the separate push, on every backend, in every mode; nothing past EOS
is pushed, overshooting or not."""

from __future__ import annotations

import json

import pytest

from foundry_channels.lm import builtin_table, encode_prompt, reference_generate
from foundry_channels.workflow import load_workflow, run_workflow, sample_path

PROMPT = "We hold these truths"


def fused_sample(overshoot=False, eos=None):
    doc = json.load(open(sample_path()))
    if eos is not None:
        doc["values"]["eos_token"]["value"] = eos
    loop = next(s for s in doc["steps"] if s["op"] == "while_batched")
    loop["body"] = [dict(op, stream="tokens") for op in loop["body"] if op["op"] == "lm_decode_step"]
    if overshoot:
        loop["overshoot"] = True
    return load_workflow(doc)


@pytest.mark.parametrize("mode", ["windowed", "throughput", "interactive"])
@pytest.mark.parametrize("window", [1, 64])
def test_fused_push_streams_the_generated_tokens(device, mode, window):
    seen = []
    run = run_workflow(fused_sample(), device, mode=mode, on_token=seen.append,
                       inputs={"prompt": PROMPT, "seed": 3, "window": window, "max_tokens": 300})
    generated = run.outputs["generated_tokens"].tolist()
    expected, _ = reference_generate(builtin_table(), encode_prompt(PROMPT), 3, 300)
    assert generated == expected
    if mode == "windowed":
        reader = run.context.channels["tokens"].reader()
        assert list(reader) == generated  # the channel got every token, in order
    else:
        assert seen == generated  # drained from the channel while the device ran
    run.context.close()


@pytest.mark.parametrize("overshoot", [False, True])
def test_fused_push_stops_at_eos(device, overshoot):
    # seed 1 samples EOS (token 0) mid-window 64; steps after it must push nothing
    seen = []
    run = run_workflow(fused_sample(overshoot), device, mode="throughput", on_token=seen.append,
                       inputs={"prompt": PROMPT, "seed": 1, "window": 64, "max_tokens": 5000})
    report = run.loops[0]
    generated = run.outputs["generated_tokens"].tolist()
    assert report.stop_flag == 1 and 0 not in generated
    assert report.steps > len(generated) + 1  # steps ran past EOS in the window
    assert seen == generated
    assert list(run.context.channels["tokens"].reader()) == []  # nothing left behind
    run.context.close()


def test_streaming_delivers_more_tokens_than_one_drain_batch_holds(device):
    # Windows of 4096 steps, two in flight: more tokens can be waiting at the end than the
    # runner's drain buffer (4096) takes in one call; every one must still be delivered.
    seen = []
    never = 256  # tokens are bytes: this EOS never comes, the loop runs to its bound
    run = run_workflow(fused_sample(eos=never), device, mode="throughput", on_token=seen.append,
                       inputs={"prompt": PROMPT, "seed": 2, "window": 4096, "max_tokens": 9000})
    generated = run.outputs["generated_tokens"].tolist()
    assert len(generated) == 9000
    assert seen == generated
    run.context.close()
