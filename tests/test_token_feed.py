"""Feeding tokens into a running decode loop (workflow/feeding.py): the device takes them in
order, one per step, instead of sampling, and sampling continues from a history that holds
them - checked token by token against the reference sampler, whenever the feed arrives."""

from __future__ import annotations

import pytest

from foundry_channels.lm import builtin_table, encode_prompt
from foundry_channels.lm.ngram import reference_sample
from foundry_channels.workflow import TokenFeed, run_workflow, sample_path, start_workflow

PROMPT = "We hold these truths"
FED = encode_prompt(" [tool result: 42 °C, déjà vu] ")  # multi-byte characters too


def check_transcript(tokens: list, fed_at: int, seed: int) -> None:
    """Every token is the reference sampler's draw from the history before it, except the
    fed run at `fed_at`, which is exactly FED."""
    table = builtin_table()
    history = encode_prompt(PROMPT)
    for i, token in enumerate(tokens):
        if fed_at <= i < fed_at + len(FED):
            assert token == FED[i - fed_at], f"fed token {i - fed_at} at position {i}"
        else:
            assert token == reference_sample(table, history, seed), f"sampled token {i}"
        history.append(token)


def find(tokens: list, part: list, start: int) -> int:
    for i in range(start, len(tokens) - len(part) + 1):
        if tokens[i:i + len(part)] == part:
            return i
    raise AssertionError(f"the fed tokens are not in the transcript after {start}")


@pytest.mark.parametrize("mode", ["interactive", "throughput", "windowed"])
def test_tokens_fed_while_the_loop_runs_are_taken_in_order(device, mode):
    checked = 0
    for seed, at in ((4, 20), (9, 3), (21, 57)):
        feed = TokenFeed()
        seen: list = []

        def on_token(token: int) -> None:
            seen.append(token)
            if len(seen) == at:
                feed.push(FED)

        run = run_workflow(sample_path(), device, mode=mode, on_token=on_token, feed=feed,
                           inputs={"prompt": PROMPT, "seed": seed, "max_tokens": 400,
                                   "window": 8})
        tokens = run.outputs["generated_tokens"].numpy().tolist()
        run.context.close()
        if len(seen) < at:
            continue  # EOS before the feed: nothing to check for this seed
        fed_at = find(tokens, FED, at)
        check_transcript(tokens, fed_at, seed)
        assert seen == tokens
        checked += 1
    assert checked >= 2, "the seeds ended by EOS before the feed: pick others"


def test_tokens_fed_before_the_run_starts_come_first(device):
    feed = TokenFeed()
    feed.push(FED)
    run = run_workflow(sample_path(), device, feed=feed,
                       inputs={"prompt": PROMPT, "seed": 2, "max_tokens": 100})
    tokens = run.outputs["generated_tokens"].numpy().tolist()
    run.context.close()
    assert tokens[:len(FED)] == FED
    check_transcript(tokens, 0, 2)


def test_handle_feed_and_its_errors():
    handle = start_workflow(sample_path(), "cpu", feed=True,
                            inputs={"prompt": PROMPT, "seed": 2, "max_tokens": 50})
    handle.feed(FED[:3])
    run = handle.result(timeout=60)
    assert run.outputs["generated_tokens"].numpy().tolist()[:3] == FED[:3]
    run.context.close()
    plain = start_workflow(sample_path(), "cpu", inputs={"max_tokens": 5})
    with pytest.raises(RuntimeError, match="feed=True"):
        plain.feed([1])
    plain.result(timeout=60).context.close()
    with pytest.raises(ValueError, match="u32"):
        TokenFeed().push([-1])


def test_a_run_is_fed_or_cpu_sampled_not_both():
    with pytest.raises(Exception, match="not both"):
        run_workflow(sample_path(), "cpu", sampler="cpu", feed=TokenFeed(),
                     inputs={"max_tokens": 5})
