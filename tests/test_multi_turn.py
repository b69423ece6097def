"""Multi-turn decoding on one model state (the multi_turn_chat_u32 sample), on every backend:
the transcripts and the final state (state words and history) do not depend on the window,
EOS may land anywhere in a window, and nothing computed after EOS is published."""

from __future__ import annotations

import pytest
from multi_turn_support import MULTI_TURN, TURNS, inputs_of, reference_turns, run_turns

from foundry_channels.lm import detokenize

DEFAULTS = inputs_of(MULTI_TURN)
PROMPTS = [DEFAULTS[f"prompt_{i}"] for i in range(1, TURNS + 1)]
NEWLINE, COMMA = 10, 44

# (seed, eos): every turn of seed 1 ends at a newline well inside a 64-step window; seed 0
# mixes EOS and the per-turn bound; with a comma as EOS, seed 1's second turn samples EOS at
# its very first step (an empty reply).
CASES = [(0, NEWLINE), (1, NEWLINE), (2, NEWLINE), (1, COMMA)]


def check_published(turns, expected, streaming: bool = False) -> None:
    """What reached the transcript, the channel and on_token is exactly the reference's
    tokens, which end before EOS: no token computed at or after EOS is published. (In a
    streaming mode, on_token got what the channel carried: the runner drained it.)"""
    assert turns.transcripts == expected
    assert turns.streamed == ([[]] * TURNS if streaming else expected)
    assert turns.delivered == [t for turn in expected for t in turn]
    assert turns.texts == [detokenize(t) for t in expected]


@pytest.mark.parametrize("seed, eos", CASES)
def test_transcripts_and_state_equal_for_every_window(device, seed, eos):
    expected, flags, state, history = reference_turns(PROMPTS, seed, DEFAULTS["max_tokens"], eos)
    runs = {w: run_turns(MULTI_TURN, device, window=w, seed=seed, eos_token=eos)
            for w in (1, 4, 64)}
    for window, turns in runs.items():
        check_published(turns, expected)
        assert eos not in [t for turn in turns.transcripts for t in turn]
        assert [r.stop_flag for r in turns.reports] == flags
        assert turns.state == state, f"window {window}"
        assert turns.history[: state[0]].tolist() == history
        # History past the position was never written: the whole buffer matches.
        assert not turns.history[state[0]:].any()
        assert (turns.history == runs[1].history).all()


def test_eos_lands_mid_window_and_later_steps_are_predicated(device):
    seed, eos, window = 1, NEWLINE, 64
    turns = run_turns(MULTI_TURN, device, window=window, seed=seed, eos_token=eos)
    expected, flags, state, _ = reference_turns(PROMPTS, seed, DEFAULTS["max_tokens"], eos)
    assert flags == [1, 1, 1]  # every turn ended at EOS
    for report, tokens in zip(turns.reports, turns.transcripts):
        eos_step = len(tokens) + 1  # the step that sampled EOS
        # The window holding EOS went on after it: those steps ran, predicated off.
        assert eos_step % window != 0 and report.steps > eos_step
        assert report.stop_flag == 1
    check_published(turns, expected)
    assert turns.state == state


def test_first_step_eos_gives_an_empty_turn_and_later_turns_continue(device):
    turns = run_turns(MULTI_TURN, device, window=16, seed=1, eos_token=COMMA)
    assert turns.transcripts[1] == [] and turns.reports[1].stop_flag == 1
    assert turns.transcripts[2]  # the next prefill reset the stop flag
    expected, *_ = reference_turns(PROMPTS, 1, DEFAULTS["max_tokens"], COMMA)
    check_published(turns, expected)


@pytest.mark.parametrize("mode", ["throughput", "interactive"])
def test_streaming_modes_publish_the_same_turns(device, mode):
    # Streaming modes keep windows in flight after the one that stopped: they too run
    # predicated off, so the turns and the state match the windowed run.
    windowed = run_turns(MULTI_TURN, device, window=8, seed=2, eos_token=NEWLINE)
    streamed = run_turns(MULTI_TURN, device, window=8, seed=2, eos_token=NEWLINE, mode=mode)
    check_published(streamed, windowed.transcripts, streaming=True)
    assert streamed.state == windowed.state
    assert (streamed.history == windowed.history).all()


def test_turn_bound_stops_a_turn_without_eos(device):
    turns = run_turns(MULTI_TURN, device, window=4, seed=0, eos_token=NEWLINE, max_tokens=6)
    expected, flags, state, _ = reference_turns(PROMPTS, 0, 6, NEWLINE)
    assert all(len(t) == 6 for t in expected) and flags == [0, 0, 0]  # the bound, not EOS
    check_published(turns, expected)
    assert turns.state == state
