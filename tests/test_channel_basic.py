"""Channel<u32> semantics on every backend: order, wrap/drop-oldest, device-produced values,
closing, zero-copy views, windows."""

from __future__ import annotations

import gc

import numpy as np
import pytest

import foundry_channels as fc

from conftest import make_channel


def push_and_wait(device, channel, values):
    cb = device.new_queue().command_buffer()
    for v in values:
        cb.channel_push(channel, int(v))
    cb.commit()
    assert cb.wait_until_completed(timeout=30)


def test_order_without_wrap(device):
    ch = make_channel(device, 1024)
    values = np.arange(1000, dtype=np.uint32) * 7 + 3
    push_and_wait(device, ch, values)
    reader = ch.reader()
    out = np.zeros(2000, dtype=np.uint32)
    n = reader.drain_into(out)
    assert n == 1000
    np.testing.assert_array_equal(out[:n], values)
    assert reader.dropped == 0
    assert reader.try_next() is None
    assert ch.header[fc.header_layout()["WRITE_IDX"]["word"]] == 1000
    assert ch.header[fc.header_layout()["READ_IDX"]["word"]] == 1000


def test_wrap_drops_oldest_and_counts_them(device):
    capacity = 64
    ch = make_channel(device, capacity)
    n_pushed = 1000
    push_and_wait(device, ch, range(n_pushed))
    reader = ch.reader()
    got = list(reader)
    assert got == list(range(n_pushed - capacity, n_pushed))
    assert reader.dropped == n_pushed - capacity
    assert reader.delivered == capacity


def test_interleaved_pushes_and_reads_wrap_many_times(device):
    ch = make_channel(device, 16)
    reader = ch.reader()
    seen = []
    for round_ in range(40):
        push_and_wait(device, ch, range(round_ * 10, round_ * 10 + 10))
        seen.extend(reader)
    assert seen == list(range(400))
    assert reader.dropped == 0


def test_try_next_and_iteration_are_non_blocking(device):
    ch = make_channel(device, 8)
    reader = ch.reader()
    assert reader.try_next() is None
    assert list(reader) == []
    push_and_wait(device, ch, [5, 6])
    assert reader.try_next() == 5
    assert next(reader) == 6
    with pytest.raises(StopIteration):
        next(reader)


def test_next_with_timeout_raises_timeout_error(device):
    ch = make_channel(device, 8)
    reader = ch.reader()
    with pytest.raises(TimeoutError, match="no item arrived"):
        reader.next(timeout=0.05)
    push_and_wait(device, ch, [42])
    assert reader.next(timeout=5) == 42


def test_value_produced_on_device_is_pushed_from_buffer(device):
    ch = make_channel(device, 64)
    state = device.buffer(4, storage="private")
    produced = device.buffer(4, storage="private")
    cb = device.new_queue().command_buffer()
    cb.channel_init(ch)  # re-init in the same command buffer: the cursor starts at 0 again
    for _ in range(10):
        cb.counter(state, produced, multiplier=5, addend=2)
        cb.channel_push(ch, produced)
    cb.commit()
    assert cb.wait_until_completed(timeout=30)
    assert list(ch.reader()) == [5 * i + 2 for i in range(10)]


def test_push_from_buffer_with_count_stride_offset(device):
    ch = make_channel(device, 64)
    src = device.buffer(64)
    words = src.numpy()
    words[:] = np.arange(16, dtype=np.uint32) + 100
    cb = device.new_queue().command_buffer()
    cb.channel_push(ch, src, count=4, stride=2, offset=3)  # words 3, 5, 7, 9
    cb.commit()
    assert cb.wait_until_completed(timeout=30)
    assert list(ch.reader()) == [103, 105, 107, 109]


def test_predicated_push_is_skipped_once_stop_flag_is_set(device):
    ch = make_channel(device, 64)
    value = device.buffer(4)
    value.numpy()[0] = 9
    stop = device.buffer(4)
    cb = device.new_queue().command_buffer()
    cb.channel_push(ch, value, stop_flag=stop)
    cb.commit()
    cb.wait_until_completed(timeout=30)
    stop.numpy()[0] = 1
    cb = device.new_queue().command_buffer()
    cb.channel_push(ch, value, stop_flag=stop)
    cb.commit()
    cb.wait_until_completed(timeout=30)
    assert list(ch.reader()) == [9]


def test_close_ends_blocking_reads(device):
    ch = make_channel(device, 64)
    reader = ch.reader()
    cb = device.new_queue().command_buffer()
    cb.channel_push_sequence(ch, 0, 5)
    cb.channel_close(ch)
    cb.commit()
    got = []
    while reader.wait(timeout=10) == "ready":
        got.extend(reader)
    assert got == list(range(5))
    assert reader.exhausted
    with pytest.raises(fc.ChannelError, match="closed"):
        reader.next(timeout=1)


def test_views_are_zero_copy_read_only_and_keep_channel_alive(device):
    ch = make_channel(device, 32)
    header, ring = ch.header, ch.ring
    assert header.dtype == np.uint32 and header.shape == (fc.HEADER_WORDS,)
    assert ring.shape == (32,)
    assert header[fc.header_layout()["MAGIC"]["word"]] == fc.CHANNEL_MAGIC
    assert header[fc.header_layout()["CAPACITY"]["word"]] == 32
    with pytest.raises(ValueError):
        ring[0] = 1
    push_and_wait(device, ch, [11, 12])
    assert list(ring[:2]) == [11, 12]  # the same memory, no copy
    del ch
    gc.collect()
    push_free_ring = ring.copy()  # still valid memory: the view keeps the channel alive
    assert list(push_free_ring[:2]) == [11, 12]


def test_header_layout_matches_plan_abi():
    layout = fc.header_layout()
    assert [layout[k]["word"] for k in ("WRITE_IDX", "READ_IDX", "CAPACITY", "FLAGS")] == [0, 1, 2, 3]
    assert sorted(v["word"] for v in layout.values()) == list(range(fc.HEADER_WORDS))


def test_window_replay_runs_recorded_dispatches_again(device):
    ch = make_channel(device, 1024)
    queue = device.new_queue()
    state = device.buffer(4, storage="private")
    produced = device.buffer(4, storage="private")
    cb = queue.command_buffer()
    for _ in range(4):
        cb.counter(state, produced)
        cb.channel_push(ch, produced)
    window = cb.to_window()
    assert window.dispatch_count == 8
    replays = [queue.replay(window) for _ in range(25)]
    for r in replays:
        assert r.wait_until_completed(timeout=30)
    assert list(ch.reader()) == list(range(100))


def test_completed_handler_and_status(device):
    ch = make_channel(device, 8)
    cb = device.new_queue().command_buffer()
    cb.channel_push(ch, 1)
    assert cb.status == "not_committed"
    seen = []
    cb.add_completed_handler(lambda done: seen.append(done.status))
    cb.commit()
    assert cb.wait_until_completed(timeout=30)
    assert cb.status == "completed"
    assert cb.error is None
    # handlers run on the device's completion thread right after completion
    for _ in range(1000):
        if seen:
            break
        import time

        time.sleep(0.001)
    assert seen == ["completed"]
    late = []
    cb.add_completed_handler(lambda done: late.append(done.status))  # already done: runs now
    assert late == ["completed"]
