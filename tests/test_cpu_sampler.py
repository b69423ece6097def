"""The CPU sampler's inputs: lm_next_counts shows the distribution the device sampler draws
from, and device_sampler reproduces the device's draw from it (lm/cpu_sampler.py)."""

from __future__ import annotations

import numpy as np
import pytest

from foundry_channels.lm import builtin_table, encode_prompt, reference_generate
from foundry_channels.lm.cpu_sampler import device_sampler, greedy_sampler
from foundry_channels.lm.ngram import context_key, reference_sample
from foundry_channels.workflow import TensorArg


def next_counts(device, history_tokens: list) -> np.ndarray:
    """lm_next_counts after prefilling `history_tokens`: [position, counts...]."""
    table = builtin_table()
    vocab = 1 << table.bits
    model = TensorArg.from_array(device, table.words)
    state = TensorArg.zeros(device, "u32", (4,))
    hist = TensorArg.zeros(device, "u32", (512,))
    stop = TensorArg.zeros(device, "u32", (1,))
    out = TensorArg.zeros(device, "u32", (1 + vocab,))
    prompt = TensorArg.from_array(device, history_tokens or [0])
    cb = device.new_queue().command_buffer()
    cb.dispatch("lm_prefill", 1, state=state.buffer, history=hist.buffer, prompt=prompt.buffer,
                stop=stop.buffer, prompt_length=len(history_tokens), history_capacity=512)
    cb.dispatch("lm_next_counts", vocab, model=model.buffer, state=state.buffer,
                history=hist.buffer, out=out.buffer, stop=stop.buffer, vocab=vocab, predicated=1)
    cb.commit()
    assert cb.wait_until_completed(timeout=60)
    return out.numpy().copy()


def longest_context_counts(history: list) -> dict:
    table = builtin_table()
    context = 0
    for i in range(table.order):
        t = history[len(history) - 1 - i] if len(history) > i else table.boundary
        context |= t << (table.bits * i)
    for o in range(table.order, -1, -1):
        nexts = table.counts.get(context_key(o, context, table.bits))
        if nexts:
            return nexts
    raise AssertionError("no context")


@pytest.mark.parametrize("text", ["", "W", "We hold these tru", "zqxj unseen context", "the "])
def test_next_counts_are_the_counts_of_the_context_the_device_samples_from(device, text):
    history = encode_prompt(text)
    got = next_counts(device, history)
    assert got[0] == len(history)
    expected = np.zeros(len(got) - 1, dtype=np.uint32)
    for token, n in longest_context_counts(history).items():
        expected[token] = n
    np.testing.assert_array_equal(got[1:], expected)


@pytest.mark.parametrize("seed", [0, 1, 7, 12345])
def test_device_sampler_draws_what_the_device_draws(device, seed):
    table = builtin_table()
    prompt = encode_prompt("We hold these truths")
    history, sampled = list(prompt), []
    sampler = device_sampler(seed)
    for _ in range(12):
        counts = next_counts(device, history)
        token = sampler(counts[1:], int(counts[0]))
        assert token == reference_sample(table, history, seed)
        if token == table.boundary:  # EOS
            break
        history.append(token)
        sampled.append(token)
    generated, _ = reference_generate(table, prompt, seed, 12)
    assert sampled == generated


def test_samplers_refuse_an_empty_distribution_and_greedy_picks_the_most_frequent():
    with pytest.raises(ValueError, match="position 5.*empty"):
        device_sampler(0)(np.zeros(256, dtype=np.uint32), 5)
    counts = np.zeros(256, dtype=np.uint32)
    counts[[3, 9, 40]] = [2, 7, 7]
    assert greedy_sampler(counts, 0) == 9


def test_next_counts_is_predicated_off_once_stopped(device):
    table = builtin_table()
    vocab = 1 << table.bits
    model = TensorArg.from_array(device, table.words)
    state = TensorArg.zeros(device, "u32", (4,))
    hist = TensorArg.zeros(device, "u32", (8,))
    stop = TensorArg.from_array(device, [1])
    out = TensorArg.from_array(device, np.full(1 + vocab, 0xABCD, dtype=np.uint32))
    cb = device.new_queue().command_buffer()
    cb.dispatch("lm_next_counts", vocab, model=model.buffer, state=state.buffer,
                history=hist.buffer, out=out.buffer, stop=stop.buffer, vocab=vocab, predicated=1)
    cb.commit()
    assert cb.wait_until_completed(timeout=60)
    assert (out.numpy() == 0xABCD).all()
