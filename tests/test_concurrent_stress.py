"""The device pushes millions of values while Python drains concurrently.

The producer pushes 0, 1, 2, ...: every value is its own index, so a torn read (a slot the
producer overwrote while it was being copied) shows up as a value out of order. Small
capacities make the producer lap the reader again and again.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import make_channel

N_ITEMS = 3_000_000


def drain_concurrently(device, capacity, batch, n_items=N_ITEMS):
    ch = make_channel(device, capacity)
    reader = ch.reader()
    cb = device.new_queue().command_buffer()
    cb.channel_push_sequence(ch, 0, n_items)
    cb.channel_close(ch)
    cb.commit()  # returns at once: the device pushes while we drain below

    out = np.empty(batch, dtype=np.uint32)
    chunks = []
    last = -1
    calls_that_got_items = 0
    while True:
        before = reader.position
        n = reader.drain_into(out)
        if n:
            calls_that_got_items += 1
            got = out[:n].astype(np.int64)
            after = reader.position
            # every value is its own index, strictly increasing, within what this call consumed
            assert got[0] > last, (got[0], last)
            assert np.all(np.diff(got) > 0)
            assert got[0] >= before and got[-1] < after
            last = int(got[-1])
            chunks.append(got)
        elif reader.exhausted:
            break
        else:
            reader.wait(timeout=10)
    assert cb.wait_until_completed(timeout=60)
    received = np.concatenate(chunks) if chunks else np.empty(0, np.int64)
    assert len(received) + reader.dropped == n_items
    assert received[-1] == n_items - 1  # the newest item is never lost
    return reader, received, calls_that_got_items


@pytest.mark.parametrize("capacity, batch", [(1 << 20, 1 << 16), (1 << 12, 64), (1 << 10, 1 << 14)])
def test_concurrent_drain_returns_every_item_in_order(device, capacity, batch):
    # Every run checks order and counts. Overlap with the producer is up to the scheduler (on
    # a loaded 2-core machine the device thread can finish before the reader runs once), so
    # the run is repeated until one overlapped: several drains got items while it pushed.
    for _ in range(5):
        reader, received, calls = drain_concurrently(device, capacity, batch)
        if calls > 1:
            return
    pytest.fail("in 5 runs the reader never drained while the producer was pushing")


@pytest.mark.parametrize("capacity, batch", [(16, 4), (64, 1 << 12), (1, 1)])
def test_reader_lapped_again_and_again(device, capacity, batch):
    reader, received, _ = drain_concurrently(device, capacity, batch)
    assert reader.dropped > 0  # the producer lapped the reader
    assert len(received) > 0


def test_try_next_under_concurrent_producer(device):
    ch = make_channel(device, 256)
    reader = ch.reader()
    cb = device.new_queue().command_buffer()
    n_items = 200_000
    cb.channel_push_sequence(ch, 0, n_items)
    cb.channel_close(ch)
    cb.commit()
    last = -1
    count = 0
    while True:
        v = reader.try_next()
        if v is None:
            if reader.exhausted:
                break
            continue
        assert v > last
        last = v
        count += 1
    assert count + reader.dropped == n_items
    assert last == n_items - 1
