"""Overshoot (computing past EOS, then rolling back) is an explicit opt-in: the kernels on
every backend, the same transcript as predicated steps, the rollback restoring the state, and
load-time rejection of multi-turn workflows that did not opt in."""

from __future__ import annotations

import copy

import pytest
from lm_support import decode_on_device
from multi_turn_support import (
    MULTI_TURN,
    SINGLE_TURN,
    run_turns,
    with_overshoot,
)

from foundry_channels.lm import encode_prompt
from foundry_channels.workflow import (
    WorkflowValidationError,
    load_workflow,
    run_workflow,
)
from foundry_channels.workflow.ops import lm as lm_ops

NEWLINE, LETTER_E = 10, 101  # "e" as EOS: "We hold" + seed 7 stops after 11 tokens
CAPACITY = 256


def error_of(doc) -> str:
    with pytest.raises(WorkflowValidationError) as info:
        load_workflow(doc)
    return str(info.value)


# ---- the kernels ------------------------------------------------------------------------------


def decode(device, *, overshoot: int, steps: int, eos: int, rollback: bool,
           prompt: str = "We hold", capacity: int = CAPACITY):
    """prefill + `steps` decode steps (+ lm_rollback) in one command buffer: (collected
    tokens, out token, stop flag, state, history)."""
    return decode_on_device(device, encode_prompt(prompt), seed=7, steps=steps, eos=eos,
                            history=capacity, overshoot=overshoot, rollback=rollback)


def test_overshoot_steps_compute_past_eos_invisibly(device):
    tokens, out, flag, state, hist = decode(device, overshoot=0, steps=40, eos=LETTER_E,
                                            rollback=False)
    o_tokens, o_out, o_flag, o_state, o_hist = decode(device, overshoot=1, steps=40, eos=LETTER_E,
                                                      rollback=False)
    assert flag == o_flag == 1 and len(tokens) == 11  # EOS, then 28 steps past it
    assert state[3] == state[0]  # the stop point is where EOS was sampled
    # Overshoot advanced position, count and history past the stop point...
    past = 40 - len(tokens) - 1
    assert o_state[0] == state[0] + past and o_state[1] == state[1] + past
    assert o_state[2:] == state[2:]
    assert o_hist[state[0]:o_state[0]].any() and not hist[state[0]:].any()
    assert o_hist[state[0]] == LETTER_E  # EOS itself went into the history, as into a cache
    # ...but published nothing: the collected tokens and `out` are the predicated ones.
    assert o_tokens == tokens and o_out == out == tokens[-1]


def test_rollback_restores_the_predicated_state(device):
    _, _, _, state, hist = decode(device, overshoot=0, steps=40, eos=LETTER_E, rollback=False)
    o_tokens, _, o_flag, o_state, o_hist = decode(device, overshoot=1, steps=40, eos=LETTER_E,
                                                  rollback=True)
    assert o_flag == 1 and o_state == state and (o_hist == hist).all()
    # Rolling back a predicated run changes nothing.
    _, _, _, p_state, p_hist = decode(device, overshoot=0, steps=40, eos=LETTER_E, rollback=True)
    assert p_state == state and (p_hist == hist).all()


def test_rollback_without_a_stop_and_at_the_capacity(device):
    # No stop (the loop bound ended the turn): nothing was computed past a stop, no rollback.
    tokens, _, flag, state, _ = decode(device, overshoot=1, steps=5, eos=256, rollback=True)
    assert flag == 0 and len(tokens) == 5 and state[0] == len(encode_prompt("We hold")) + 5
    # Full history: the stop point is the capacity, and overshoot cannot go beyond it.
    tokens, _, flag, state, hist = decode(device, overshoot=1, steps=30, eos=256, rollback=False,
                                          capacity=20)
    assert flag == 3 and state[0] == state[3] == 20 and len(tokens) == 20 - 7


# ---- workflows ----------------------------------------------------------------------------------


def single_turn(doc, device, **inputs):
    run = run_workflow(load_workflow(doc), device, inputs={"max_tokens": 300, **inputs})
    values = run.context.values
    return (run.outputs["generated_tokens"].tolist(), values["lm_state"].tolist(),
            values["history"].numpy().copy(), run.loops[0])


@pytest.mark.parametrize("window", [1, 64])
@pytest.mark.parametrize("seed", [0, 5])
def test_single_turn_overshoot_gives_the_predicated_transcript(device, window, seed):
    doc = copy.deepcopy(SINGLE_TURN)
    doc["values"]["eos_token"]["value"] = NEWLINE  # ends within the bound for these seeds
    tokens, state, hist, report = single_turn(doc, device, window=window, seed=seed)
    o_tokens, o_state, o_hist, o_report = single_turn(with_overshoot(doc), device, window=window,
                                                      seed=seed)
    assert report.stop_flag == o_report.stop_flag == 1
    assert o_tokens == tokens and NEWLINE not in tokens
    assert o_state == state and (o_hist == hist).all()


def test_overshoot_computes_past_eos_before_the_rollback(device, monkeypatch):
    """The rollback has something to undo: snapshot the state right before it runs."""
    seen = []
    encode = lm_ops.encode_rollback

    def snapshot_then_encode(ctx, state, history, stop):
        ctx.synchronize()
        seen.append(state.tolist())
        encode(ctx, state, history, stop)

    monkeypatch.setattr(lm_ops, "encode_rollback", snapshot_then_encode)
    doc = with_overshoot(MULTI_TURN, allow_multi_turn=True)
    turns = run_turns(doc, device, window=64, seed=1)
    assert len(seen) == 3  # one rollback per turn
    for before, report in zip(seen, turns.reports):
        assert report.stop_flag == 1
        assert before[0] > before[3]  # the position went past the stop point


def test_multi_turn_overshoot_is_rejected_without_the_opt_in():
    message = error_of(with_overshoot(MULTI_TURN))
    for loop in ("steps[7]", "steps[12]", "steps[17]"):
        assert f"{loop}.overshoot (while_batched): overshoot in a multi-turn workflow" in message
    assert "steps[11] (lm_prefill)" in message and "allow_multi_turn_overshoot" in message


def test_one_loop_then_a_later_prefill_is_multi_turn():
    doc = copy.deepcopy(SINGLE_TURN)
    doc["steps"][7]["overshoot"] = True
    load_workflow(doc)  # single turn: overshoot alone is allowed
    doc["steps"].append({"op": "lm_prefill", "state": "lm_state", "history": "history",
                         "stop": "stop", "prompt": "prompt"})
    message = error_of(doc)
    assert "steps[7].overshoot (while_batched)" in message and "steps[11] (lm_prefill)" in message


def test_overshoot_given_by_name_counts_as_on():
    doc = copy.deepcopy(MULTI_TURN)
    doc["inputs"]["overshoot"] = {"kind": "bool", "default": False}
    doc["steps"][12]["overshoot"] = "overshoot"
    message = error_of(doc)
    assert ("steps[12].overshoot (while_batched): overshoot (given by name, so possibly on)"
            in message)
    doc["allow_multi_turn_overshoot"] = True
    load_workflow(doc)


def test_overshoot_needs_the_stop_flag_and_predicated_pushes():
    doc = with_overshoot(SINGLE_TURN)
    del doc["steps"][7]["stop"]
    del doc["steps"][7]["body"][1]["stop"]
    doc["steps"][7]["mode"] = "windowed"
    message = error_of(doc)
    assert "steps[7].overshoot (while_batched): overshoot needs the loop's device 'stop'" in message
    assert "steps[7].body[1].stop (stream_write_u32): in an overshooting loop" in message


@pytest.mark.parametrize("window", [1, 4, 64])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_opted_in_multi_turn_overshoot_equals_predicated(device, window, seed):
    predicated = run_turns(MULTI_TURN, device, window=window, seed=seed)
    overshoot = run_turns(with_overshoot(MULTI_TURN, allow_multi_turn=True), device,
                          window=window, seed=seed)
    assert overshoot.transcripts == predicated.transcripts
    assert overshoot.streamed == predicated.streamed
    assert overshoot.delivered == predicated.delivered
    assert overshoot.state == predicated.state
    assert (overshoot.history == predicated.history).all()
    assert [r.stop_flag for r in overshoot.reports] == [r.stop_flag for r in predicated.reports]


@pytest.mark.parametrize("mode", ["throughput", "interactive"])
def test_opted_in_overshoot_in_streaming_modes(device, mode):
    # Windows still in flight after the stop overshoot further; the rollback undoes them too.
    predicated = run_turns(MULTI_TURN, device, window=8, seed=1)
    overshoot = run_turns(with_overshoot(MULTI_TURN, allow_multi_turn=True), device,
                          window=8, seed=1, mode=mode)
    assert overshoot.transcripts == predicated.transcripts
    assert overshoot.delivered == predicated.delivered
    assert overshoot.state == predicated.state
    assert (overshoot.history == predicated.history).all()
