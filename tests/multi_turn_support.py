"""Running the multi-turn sample and what it should produce, shared by test_multi_turn.py
and test_overshoot.py."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass

import numpy as np

from foundry_channels.lm import builtin_table, encode_prompt, reference_generate
from foundry_channels.workflow import load_workflow, run_workflow, sample_path

MULTI_TURN = json.load(open(sample_path("multi_turn_chat_u32")))
SINGLE_TURN = json.load(open(sample_path("text_generation_stream_u32")))
TURNS = 3


def inputs_of(doc: dict) -> dict:
    return {name: decl.get("default") for name, decl in doc["inputs"].items()}


def with_overshoot(doc: dict, *, allow_multi_turn: bool = False) -> dict:
    """`doc` with overshoot on in every loop (and the multi-turn opt-in when asked)."""
    doc = copy.deepcopy(doc)
    for step in doc["steps"]:
        if step["op"] == "while_batched":
            step["overshoot"] = True
    if allow_multi_turn:
        doc["allow_multi_turn_overshoot"] = True
    return doc


@dataclass
class Turns:
    transcripts: list[list[int]]  # each turn's collected tokens (the loop's output)
    texts: list[str]
    streamed: list[list[int]]  # what each turn's channel holds, drained after the run
    delivered: list[int]  # what on_token saw, in order
    state: list[int]  # lm_state after the run
    history: np.ndarray  # the whole history buffer after the run
    reports: list  # one LoopResult per turn (run.loops)


def drain(channel) -> list[int]:
    reader = channel.reader()
    out = np.zeros(channel.capacity, dtype=np.uint32)
    n = reader.drain_into(out)
    assert reader.dropped == 0 and reader.exhausted  # closed after its turn, nothing lost
    return out[:n].tolist()


def run_turns(doc: dict, device, *, mode=None, **inputs) -> Turns:
    delivered: list[int] = []
    run = run_workflow(load_workflow(doc), device, inputs=inputs, on_token=delivered.append,
                       mode=mode)
    out = run.outputs
    turns = range(1, TURNS + 1)
    return Turns(
        transcripts=[out[f"turn{i}_tokens"].tolist() for i in turns],
        texts=[out[f"turn{i}_text"] for i in turns],
        streamed=[drain(run.context.channels[f"turn{i}_stream"]) for i in turns],
        delivered=delivered,
        state=out["lm_state"].tolist(),
        history=run.context.values["history"].numpy().copy(),
        reports=list(run.loops),
    )


def reference_turns(prompts: list[str], seed: int, max_tokens: int, eos: int):
    """The pure-Python model run turn after turn on one history: (transcripts, stop flags,
    expected lm_state). Positions key the draws, so the history so far is the prompt."""
    table = builtin_table()
    history: list[int] = []
    transcripts, flags = [], []
    for prompt in prompts:
        start = len(history)
        history += encode_prompt(prompt)
        prompt_end = len(history)
        tokens, flag = reference_generate(table, history, seed, max_tokens, eos_token=eos)
        history += tokens
        transcripts.append(tokens)
        flags.append(flag)
    # state[3], the stop point: where the last turn stopped, else where its prompt ended.
    stop_point = len(history) if flags[-1] else prompt_end
    state = [len(history), len(transcripts[-1]), start, stop_point]
    return transcripts, flags, state, history
