"""The sample model over the shipped BPE vocabulary, and text detokenized on the device: the
byte channel's text equals `tokenizers`' own decode of the same generated ids, for every
window size and streaming mode, on prompts with multi-byte characters split across tokens."""

from __future__ import annotations

import json

import pytest

from foundry_channels.lm import builtin_table
from foundry_channels.lm.ngram import reference_generate
from foundry_channels.workflow import (
    TensorArg,
    WorkflowValidationError,
    load_workflow,
    run_workflow,
    sample_path,
)

tokenizers = pytest.importorskip("tokenizers")

from foundry_channels.lm.bpe import (  # noqa: E402  (needs tokenizers)
    BPE_BITS,
    bpe_eos,
    bpe_table,
    encode_prompt_bpe,
    shipped_vocabulary,
)
from foundry_channels.lm.vocab import shipped_tokenizer  # noqa: E402

from test_cli import cli  # noqa: E402

TEXT_SAMPLE = sample_path("text_generation_stream_text")
# Each continues into text whose characters are split across BPE tokens (checked below).
PROMPTS = [("東京と大阪の間を", 0), ("Ελλάδα, Αθήνα", 0), ("Emoji take four bytes:", 1)]


def splits_a_character(ids) -> bool:
    tokens = shipped_vocabulary().tokens
    for i in ids:
        try:
            tokens[i].decode("utf-8")
        except UnicodeDecodeError:
            return True
    return False


def run_text(device, prompt, seed, window, mode="throughput", max_tokens=60):
    pieces: list[str] = []
    run = run_workflow(TEXT_SAMPLE, device, inputs={"prompt": prompt, "seed": seed,
                                                    "window": window, "max_tokens": max_tokens},
                       on_text=pieces.append, mode=mode)
    ids = run.outputs["generated_tokens"].tolist()
    loop = run.loops[0]
    run.context.close()
    return pieces, ids, loop


def test_byte_tables_keep_their_layout_with_the_width_recorded():
    words = builtin_table().words
    assert int(words[7]) == 8  # 8-bit tokens, boundary 0: the byte layout as before
    bpe = bpe_table()
    assert int(bpe.words[7]) == (bpe_eos() << 8) | BPE_BITS
    assert bpe.vocabulary == "bpe" and bpe.order == 2


def test_bpe_decode_on_the_device_equals_the_reference(device):
    """Kernel level: lm_decode_step over the BPE table gives the reference sampler's tokens."""
    table = bpe_table()
    prompt = encode_prompt_bpe("Déjà vu: the café")
    expected, flag = reference_generate(table, prompt, seed=5, max_tokens=48)
    model = TensorArg.from_array(device, table.words)
    state, out, stop = (TensorArg.zeros(device, "u32", s) for s in ((4,), (1,), (1,)))
    hist = TensorArg.zeros(device, "u32", (256,))
    listed, count = TensorArg.zeros(device, "u32", (48,)), TensorArg.zeros(device, "u32", (1,))
    cb = device.new_queue().command_buffer()
    cb.dispatch("lm_prefill", 1, state=state.buffer, history=hist.buffer,
                prompt=TensorArg.from_array(device, prompt).buffer, stop=stop.buffer,
                prompt_length=len(prompt), history_capacity=256)
    for _ in range(48):
        cb.dispatch("lm_decode_step", 1, model=model.buffer, state=state.buffer,
                    history=hist.buffer, out=out.buffer, stop=stop.buffer, seed=5,
                    eos=table.boundary, max_tokens=0, history_capacity=256, overshoot=0)
        cb.dispatch("decode_collect_u32", 1, source=out.buffer, list=listed.buffer,
                    count=count.buffer, stop=stop.buffer, list_capacity=48, predicated=1)
    cb.commit()
    assert cb.wait_until_completed(timeout=60)
    assert listed.numpy()[: int(count.numpy()[0])].tolist() == expected
    assert int(stop.numpy()[0]) == flag
    assert max(expected) > 255  # real BPE tokens, not bytes


@pytest.mark.parametrize("prompt,seed", PROMPTS)
def test_channel_text_equals_the_tokenizers_decode(device, prompt, seed):
    pieces, ids, loop = run_text(device, prompt, seed, window=4)
    expected, _ = reference_generate(bpe_table(), encode_prompt_bpe(prompt), seed, 60)
    assert ids == expected
    assert splits_a_character(ids), "the generated text must split characters across tokens"
    assert "".join(pieces) == shipped_tokenizer().decode(ids)
    assert loop.delivered == len(ids)  # one string per token, none past EOS


@pytest.mark.parametrize("mode", ["throughput", "interactive"])
def test_same_seed_same_text_for_every_window(device, mode):
    texts = set()
    for window in (1, 4, 64):
        pieces, ids, _ = run_text(device, "東京と大阪の間を", 2, window, mode=mode)
        texts.add("".join(pieces))
        assert all(pieces)
    assert len(texts) == 1


def test_nothing_past_eos_reaches_the_channel(device):
    """A run that stops at EOS well before max_tokens: the text is exactly the ids before it."""
    for seed in range(12):
        expected, flag = reference_generate(bpe_table(), encode_prompt_bpe("Emoji take"), seed, 400)
        if flag == 1:
            break
    else:
        pytest.skip("no seed stops at EOS")
    pieces, ids, loop = run_text(device, "Emoji take", seed, window=64, max_tokens=400)
    assert ids == expected and loop.stop_flag == 1
    assert "".join(pieces) == shipped_tokenizer().decode(expected)


def test_on_text_and_on_token_are_one_delivery_path_each():
    with pytest.raises(ValueError, match="not both"):
        run_workflow(TEXT_SAMPLE, "cpu", on_text=print, on_token=print)
    with pytest.raises(Exception, match="streaming modes"):
        run_workflow(TEXT_SAMPLE, "cpu", on_text=print, mode="windowed")


def test_channel_item_types_are_checked_when_loading():
    doc = json.loads(open(TEXT_SAMPLE, encoding="utf-8").read())
    body = doc["steps"][8]["body"]
    body[1] = {"op": "stream_write_u32", "channel": "text", "value": "next_token", "stop": "stop"}
    with pytest.raises(WorkflowValidationError, match="channel of bytes.*channel of u32 items"):
        load_workflow(doc)
    u32 = json.loads(open(sample_path(), encoding="utf-8").read())
    u32["steps"].insert(0, {"op": "lm_vocabulary", "out": "vocab"})
    u32["steps"][8]["body"][1] = {"op": "detok_push", "channel": "tokens", "vocab": "vocab",
                                  "token": "next_token", "stop": "stop"}
    with pytest.raises(WorkflowValidationError, match="channel of u32 items.*channel of bytes"):
        load_workflow(u32)


def test_cli_detokenize_device_prints_the_decoded_text():
    prompt, seed = PROMPTS[0]
    r = cli("run", TEXT_SAMPLE, "--detokenize", "device", "--prompt", prompt, "--seed",
            str(seed), "--max-tokens", "60", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    ids = report["outputs"]["generated_tokens"]
    assert report["text"] == shipped_tokenizer().decode(ids) and report["text"]
    r = cli("run", TEXT_SAMPLE, "--detokenize", "device", "--prompt", prompt, "--seed",
            str(seed), "--max-tokens", "60")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(report["text"])


def test_cli_detokenize_device_needs_a_byte_channel():
    r = cli("run", sample_path(), "--detokenize", "device")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "streams no text" in r.stderr
