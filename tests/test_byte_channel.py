"""Byte channels: byte strings and text from the device, and device-side detokenization with
the shipped byte-level BPE tokenizer (`tokenizers`)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

import foundry_channels as fc
from foundry_channels.lm.vocab import TOKENIZER_FILE, Vocabulary, byte_level_decoding

MULTILINGUAL = (TOKENIZER_FILE.parent / "multilingual.txt").read_text(encoding="utf-8")


def staged(device, data: bytes) -> fc.Buffer:
    """A shared buffer holding `data` (padded to whole u32 words)."""
    buf = device.buffer(max(4, -(-len(data) // 4) * 4))
    view = buf.numpy("uint8")
    view[:] = 0
    view[: len(data)] = np.frombuffer(data, dtype=np.uint8)
    return buf


def push_strings(device, ch: fc.ByteChannel, strings, init=True, close=True):
    blob = b"".join(strings)
    src = staged(device, blob)
    cb = device.new_queue().command_buffer()
    if init:
        ch.encode_init(cb)
    offset = 0
    for s in strings:
        ch.encode_push(cb, src, len(s), offset)
        offset += len(s)
    if close:
        ch.encode_close(cb)
    cb.commit()
    assert cb.wait_until_completed(30)


def test_strings_arrive_whole_and_in_order(device):
    strings = [b"", b"a", b"ab", b"abc", b"abcd", bytes(range(256)), "東京🚀".encode()]
    ch = fc.ByteChannel(device, capacity_bytes=4096)
    push_strings(device, ch, strings)
    assert list(ch.reader().strings(timeout=10)) == strings


def test_text_never_splits_a_code_point(device):
    ch = fc.ByteChannel(device, capacity_bytes=1024)
    q = device.new_queue()
    r = ch.reader()
    encoded = "é東🚀".encode()               # 2 + 3 + 4 bytes
    src = staged(device, encoded)
    cb = q.command_buffer()
    ch.encode_init(cb)
    ch.encode_push(cb, src, 1, 0)          # half of é
    cb.commit()
    assert cb.wait_until_completed(30)
    assert r.try_text() == ""              # waits for the continuation
    pieces = []
    for start, end in ((1, 3), (3, 6), (6, 8), (8, 9)):  # é's end + 東's start, ..., 🚀's end
        cb = q.command_buffer()
        ch.encode_push(cb, src, end - start, start)
        cb.commit()
        assert cb.wait_until_completed(30)
        pieces.append(r.try_text())
    assert pieces == ["é", "東", "", "🚀"]
    assert r.replaced == 0


def test_invalid_bytes_are_replaced_and_counted_never_raised(device):
    ch = fc.ByteChannel(device, capacity_bytes=256)
    push_strings(device, ch, [b"a\xffb", b"\xe6\x9d"])  # invalid byte; a truncated character
    r = ch.reader()
    assert "".join(r.text(timeout=10)) == "a\ufffdb\ufffd"
    assert r.replaced == 2


def test_text_async(device):
    ch = fc.ByteChannel(device, capacity_bytes=1024)
    push_strings(device, ch, [s.encode() for s in ("Hello, ", "wörld", " 🌍")])

    async def collect():
        return "".join([piece async for piece in ch.reader().text_async(timeout=10)])

    assert asyncio.run(collect()) == "Hello, wörld 🌍"


def test_drop_oldest_never_returns_part_of_a_string(device):
    ch = fc.ByteChannel(device, capacity_bytes=48)   # 16 items: the run laps it many times
    strings = [f"<{i}:{'x' * (i % 7)}>".encode() for i in range(200)]
    push_strings(device, ch, strings)
    r = ch.reader()
    got = list(r.strings(timeout=10))
    assert got and got[-1] == strings[-1]
    assert all(s in strings for s in got)               # whole strings only
    assert [strings.index(s) for s in got] == sorted(strings.index(s) for s in got)
    assert r.dropped_items > 0
    assert len(got) < len(strings)


def test_device_side_detokenization_equals_the_tokenizers_decode(device):
    tokenizers = pytest.importorskip("tokenizers")
    tokenizer = tokenizers.Tokenizer.from_file(str(TOKENIZER_FILE))
    ids = tokenizer.encode(MULTILINGUAL).ids
    vocab = Vocabulary.from_tokenizer(tokenizer)
    partial = [i for i in ids if vocab.tokens[i].decode("utf-8", "ignore").encode() != vocab.tokens[i]]
    assert partial, "the text must have tokens that split a character"
    table = vocab.upload(device)
    token_ids = device.buffer(4 * len(ids))
    token_ids.numpy("uint32")[:] = ids
    ch = fc.ByteChannel(device, capacity_bytes=1 << 16)
    cb = device.new_queue().command_buffer()
    ch.encode_init(cb)
    for i in range(len(ids)):
        ch.encode_push_token(cb, table, token_ids, index=i)
    ch.encode_close(cb)
    cb.commit()
    r = ch.reader()
    text = "".join(r.text(timeout=30))
    assert text == tokenizer.decode(ids) == MULTILINGUAL
    assert r.replaced == 0


def test_detokenization_is_predicated_on_the_stop_flag_and_refuses_unknown_tokens(device):
    vocab = Vocabulary([b"A", b"B"])
    table = vocab.upload(device)
    tokens = device.buffer(8)
    tokens.numpy("uint32")[:] = [1, 7]          # 7 is outside the table
    stop = device.buffer(4)
    ch = fc.ByteChannel(device, capacity_bytes=64)
    cb = device.new_queue().command_buffer()
    ch.encode_init(cb)
    ch.encode_push_token(cb, table, tokens, index=0, stop_flag=stop)
    ch.encode_push_token(cb, table, tokens, index=1)
    cb.commit()
    assert cb.wait_until_completed(30)
    stop.numpy("uint32")[0] = 1
    cb = device.new_queue().command_buffer()
    ch.encode_push_token(cb, table, tokens, index=0, stop_flag=stop)   # predicated off
    ch.encode_close(cb)
    cb.commit()
    r = ch.reader()
    assert "".join(r.text(timeout=10)) == "B\ufffd"
    assert r.replaced == 0        # U+FFFD arrived as valid UTF-8: a refused token, not bad bytes


def test_byte_level_alphabet_matches_the_tokenizers_library():
    tokenizers = pytest.importorskip("tokenizers")
    assert set(byte_level_decoding()) == set(tokenizers.pre_tokenizers.ByteLevel.alphabet())
    assert sorted(byte_level_decoding().values()) == list(range(256))


@pytest.mark.parametrize("capacity, error", [(0, ValueError), (-3, ValueError), ("64", TypeError),
                                             (1.5, TypeError), (fc.MAX_CAPACITY * 3 + 1, ValueError)])
def test_bad_capacity(cpu_device, capacity, error):
    with pytest.raises(error, match="capacity_bytes"):
        fc.ByteChannel(cpu_device, capacity)


def test_push_past_the_source_is_refused(cpu_device):
    ch = fc.ByteChannel(cpu_device, 64)
    cb = cpu_device.new_queue().command_buffer()
    with pytest.raises(ValueError, match="past the end"):
        ch.encode_push(cb, cpu_device.buffer(8), 9)
    with pytest.raises(ValueError, match="past the end"):
        ch.encode_push_token(cb, cpu_device.buffer(64), cpu_device.buffer(8), index=2)
