"""Record channels: fixed-size records (tensors) of any supported dtype and shape, never torn,
drop-oldest counting whole records, every reading style."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

import foundry_channels as fc


def upload(device, array: np.ndarray) -> fc.Buffer:
    buf = device.buffer(array.nbytes)
    buf.numpy("uint8")[:] = np.frombuffer(array.tobytes(), dtype=np.uint8)
    return buf


def push_records(device, ch: fc.Channel, records: np.ndarray, init=True, close=True):
    src = upload(device, records)
    cb = device.new_queue().command_buffer()
    if init:
        ch.encode_init(cb)
    for i in range(len(records)):
        ch.encode_push(cb, src, offset=i * ch.record_bytes)
    if close:
        ch.encode_close(cb)
    cb.commit()
    assert cb.wait_until_completed(60)


@pytest.mark.parametrize("dtype, shape", [("f32", (64, 64, 3)), ("u8", (4, 4)), ("i32", (7,)),
                                          ("u32", (1,)), ("f16", (2, 8)), ("bf16", (6,)),
                                          ("f64", (3, 3))])
def test_records_round_trip_every_dtype(device, dtype, shape):
    ch = fc.Channel(device, dtype=dtype, shape=shape, capacity=8)
    rng = np.random.default_rng(0)
    np_dtype = fc.record_channel.DTYPES[dtype]
    if np_dtype.kind == "f":
        data = rng.standard_normal((5, *shape)).astype(np_dtype)
    else:
        data = rng.integers(0, 200, size=(5, *shape)).astype(np_dtype)
    push_records(device, ch, data)
    got = list(ch.reader().stream(timeout=10))
    assert len(got) == 5
    for a, b in zip(got, data):
        assert a.dtype == np_dtype and a.shape == shape
        assert np.array_equal(a, b, equal_nan=True)


def test_read_into_and_drain_into_fill_the_callers_arrays(device):
    ch = fc.Channel(device, dtype="u32", shape=(2, 3), capacity=16)
    data = np.arange(10 * 6, dtype=np.uint32).reshape(10, 2, 3)
    push_records(device, ch, data)
    r = ch.reader()
    one = np.zeros((2, 3), np.uint32)
    assert r.read_into(one) and np.array_equal(one, data[0])
    batch = np.zeros((16, 2, 3), np.uint32)
    n = r.drain_into(batch)
    assert n == 9 and np.array_equal(batch[:n], data[1:])
    assert not r.read_into(one)
    with pytest.raises(ValueError, match="shape"):
        r.read_into(np.zeros((3, 2), np.uint32))
    with pytest.raises(ValueError, match="uint32"):
        r.drain_into(np.zeros((4, 2, 3), np.float32))


def test_drop_oldest_counts_whole_records(device):
    ch = fc.Channel(device, dtype="i32", shape=(100,), capacity=4)
    data = np.arange(30 * 100, dtype=np.int32).reshape(30, 100)
    push_records(device, ch, data)
    r = ch.reader()
    got = list(r.stream(timeout=10))
    # capacity - 1 records stay readable: the last commit marked the oldest slot for the next.
    assert [int(g[0]) // 100 for g in got] == [27, 28, 29]
    assert r.dropped == 27
    for g in got:
        k = int(g[0]) // 100
        assert np.array_equal(g, data[k])


def test_async_iteration(device):
    ch = fc.Channel(device, dtype="f32", shape=(4,), capacity=8)
    data = np.arange(12, dtype=np.float32).reshape(3, 4)
    push_records(device, ch, data)

    async def collect():
        return [x async for x in ch.reader()]

    got = asyncio.run(collect())
    assert np.array_equal(np.stack(got), data)


def test_an_awaited_record_is_waited_for_by_the_poller_thread(device):
    ch = fc.Channel(device, dtype="u32", shape=(3,), capacity=4)
    src = upload(device, np.array([7, 8, 9], dtype=np.uint32))
    cb0 = device.new_queue().command_buffer()
    ch.encode_init(cb0)
    cb0.commit()
    assert cb0.wait_until_completed(30)
    cb = device.new_queue().command_buffer()
    ch.encode_push(cb, src)
    before = fc.poller_stats()["completions"]

    async def await_one():
        asyncio.get_running_loop().call_later(0.05, cb.commit)  # nothing to read until then
        return await ch.reader().next_async(timeout=30)

    assert list(asyncio.run(await_one())) == [7, 8, 9]
    assert fc.poller_stats()["completions"] > before


def test_push_predicated_on_the_stop_flag(device):
    ch = fc.Channel(device, dtype="u32", shape=(4,), capacity=4)
    src = upload(device, np.arange(8, dtype=np.uint32))
    stop = device.buffer(4)
    stop.numpy("uint32")[0] = 1
    cb = device.new_queue().command_buffer()
    ch.encode_init(cb)
    ch.encode_push(cb, src, stop_flag=stop)
    ch.encode_push(cb, src, offset=16)
    ch.encode_close(cb)
    cb.commit()
    got = list(ch.reader().stream(timeout=10))
    assert len(got) == 1 and list(got[0]) == [4, 5, 6, 7]


def test_reinit_under_a_reader_raises_once_then_follows(device):
    ch = fc.Channel(device, dtype="u32", shape=(2,), capacity=4)
    push_records(device, ch, np.arange(6, dtype=np.uint32).reshape(3, 2), close=False)
    r = ch.reader()
    assert list(r.next(timeout=5)) == [0, 1]
    push_records(device, ch, np.full((2, 2), 9, dtype=np.uint32), init=True)
    with pytest.raises(fc.ChannelError, match="re-initialised"):
        r.next(timeout=5)
    assert [list(x) for x in r.stream(timeout=5)] == [[9, 9], [9, 9]]


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(dtype="f8", shape=(2,), capacity=4), ValueError, "dtype"),
    (dict(dtype="f32", shape=(), capacity=4), ValueError, "shape"),
    (dict(dtype="f32", shape=(2, 0), capacity=4), ValueError, "shape"),
    (dict(dtype="u8", shape=(3,), capacity=4), ValueError, "multiple of 4"),
    (dict(dtype="f32", shape=(2,), capacity=1), ValueError, "capacity"),
    (dict(dtype="f32", shape=(2,), capacity=3), ValueError, "capacity"),
    (dict(dtype="f32", shape=(2,), capacity=-1), ValueError, "capacity"),
    (dict(dtype="f32", shape=(1 << 25,), capacity=4), ValueError, "record size"),
])
def test_bad_channel_arguments(cpu_device, kwargs, error, match):
    with pytest.raises(error, match=match):
        fc.Channel(cpu_device, **kwargs)


def test_push_past_the_source_is_refused(cpu_device):
    ch = fc.Channel(cpu_device, dtype="f32", shape=(4,), capacity=2)
    cb = cpu_device.new_queue().command_buffer()
    with pytest.raises(ValueError, match="past the end"):
        ch.encode_push(cb, cpu_device.buffer(16), offset=4)
    with pytest.raises(ValueError, match="multiple of 4"):
        ch.encode_push(cb, cpu_device.buffer(64), offset=2)


@pytest.mark.parametrize("words", [1, 4, 5, 12, 1030])
def test_records_from_any_word_offset_and_of_any_length(device, words):
    # A push copies 16-byte vectors where the source address allows it and words elsewhere (and
    # the words past the last whole vector): every offset and length gives the same record.
    data = np.arange(words + 3, dtype=np.uint32) * 7 + 1
    src = upload(device, data)
    ch = fc.Channel(device, dtype="u32", shape=(words,), capacity=8)
    cb = device.new_queue().command_buffer()
    ch.encode_init(cb)
    for offset in range(4):
        ch.encode_push(cb, src, offset=4 * offset)
    ch.encode_close(cb)
    cb.commit()
    assert cb.wait_until_completed(30)
    got = [list(r) for r in ch.reader().stream(timeout=10)]
    assert got == [list(data[o:o + words]) for o in range(4)]


@pytest.mark.parametrize("offset_words", [1, 2, 3])
def test_a_named_wide_push_from_an_unaligned_offset_copies_words(device, offset_words):
    # wide=1 asks for 16-byte vectors; a source offset that cannot be 16-byte aligned makes the
    # body copy words instead (a vector load there would fault a CUDA device).
    data = np.arange(40, dtype=np.uint32) + 5
    src = upload(device, data)
    ch = fc.Channel(device, dtype="u32", shape=(12,), capacity=4)
    cb = device.new_queue().command_buffer()
    ch.encode_init(cb)
    cb.dispatch("record_push", 3, channel=ch.core, source=src, capacity=4, record_words=12,
                stride=ch.core.stride_words, source_offset=offset_words, threads=3, wide=1)
    ch.encode_close(cb)
    cb.commit()
    assert cb.wait_until_completed(30)
    got = [list(r) for r in ch.reader().stream(timeout=10)]
    assert got == [list(data[offset_words:offset_words + 12])]


def pattern(seed: int, words: int) -> np.ndarray:
    """What fill_pattern_u32 writes: every word depends on the record and its position."""
    i = np.arange(words, dtype=np.uint64)
    return ((i * 0x9E3779B1) & 0xFFFFFFFF).astype(np.uint32) ^ np.uint32(seed)


@pytest.mark.parametrize("record_bytes, records", [(1 << 10, 400), (64 << 10, 120), (1 << 20, 40),
                                                   (4 << 20, 12)])
def test_concurrent_reader_never_returns_a_mixed_record(device, record_bytes, records):
    # The device pushes while this thread drains; a capacity of 2..4 makes it lap the reader
    # again and again. Every record must be one whole pattern, in order.
    words = record_bytes // 4
    capacity = 2 if record_bytes >= (1 << 20) else 4
    ch = fc.Channel(device, dtype="u32", shape=(words,), capacity=capacity)
    staging = device.buffer(record_bytes, storage="private")
    cb = device.new_queue().command_buffer()
    ch.encode_init(cb)
    for k in range(records):
        cb.dispatch("fill_pattern_u32", words, out=staging, seed=k + 1, words=words)
        ch.encode_push(cb, staging)
    ch.encode_close(cb)
    cb.commit()
    r = ch.reader()
    out = np.empty((1, words), np.uint32)
    seen = []
    while True:
        if r.drain_into(out):
            k = int(out[0, 0])            # word 0 is the seed
            assert np.array_equal(out[0], pattern(k, words)), f"record {k - 1} is mixed"
            seen.append(k - 1)
        elif r.exhausted:
            break
        else:
            r.wait(timeout=30)
    assert cb.wait_until_completed(60)
    assert seen == sorted(set(seen)) and seen[-1] == records - 1
    assert len(seen) + r.dropped == records
