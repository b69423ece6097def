"""Reading styles: poll_next, blocking stream() that ends on close, async iteration, Ctrl-C
during a blocking wait."""

from __future__ import annotations

import _thread
import asyncio
import threading

import pytest

import foundry_channels as fc

from conftest import make_channel


def commit_sequence(device, ch, n, close=True):
    cb = device.new_queue().command_buffer()
    cb.channel_push_sequence(ch, 0, n)
    if close:
        cb.channel_close(ch)
    cb.commit()
    return cb


def test_poll_next_reports_ready_pending_closed(device):
    ch = make_channel(device, 64)
    reader = ch.reader()
    assert reader.poll_next() == (fc.PollState.PENDING, None)
    commit_sequence(device, ch, 2, close=False).wait_until_completed(timeout=30)
    assert reader.poll_next() == (fc.PollState.READY, 0)
    assert reader.poll_next() == (fc.PollState.READY, 1)
    assert reader.poll_next().state is fc.PollState.PENDING
    cb = device.new_queue().command_buffer()
    cb.channel_close(ch)
    cb.commit()
    cb.wait_until_completed(timeout=30)
    assert reader.poll_next().state is fc.PollState.CLOSED


def test_stream_yields_everything_then_ends_on_close(device):
    ch = make_channel(device, 1 << 16)
    reader = ch.reader()
    commit_sequence(device, ch, 50_000)
    got = list(reader.stream(timeout=30))
    assert got == list(range(50_000))
    assert reader.exhausted


def test_stream_times_out_when_producer_is_silent(device):
    reader = make_channel(device, 8).reader()
    with pytest.raises(TimeoutError):
        list(reader.stream(timeout=0.05))


def test_async_iteration_receives_items_while_device_runs(device):
    ch = make_channel(device, 1 << 16)
    reader = ch.reader()

    async def consume():
        commit_sequence(device, ch, 20_000)
        return [token async for token in reader]

    assert asyncio.run(consume()) == list(range(20_000))


def test_async_iteration_does_not_block_the_event_loop(device):
    ch = make_channel(device, 64)
    reader = ch.reader()
    ticks = 0

    async def ticker(stop):
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.001)

    async def main():
        stop = asyncio.Event()
        t = asyncio.create_task(ticker(stop))
        with pytest.raises(TimeoutError):
            await reader.next_async(timeout=0.1)
        stop.set()
        await t

    asyncio.run(main())
    assert ticks >= 10  # other tasks ran while the reader waited


def test_ctrl_c_during_blocking_wait_stops_and_device_stays_usable(device):
    ch = make_channel(device, 64)
    reader = ch.reader()
    timer = threading.Timer(0.1, _thread.interrupt_main)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            reader.next(timeout=30)
    finally:
        timer.cancel()
    commit_sequence(device, ch, 3).wait_until_completed(timeout=30)
    assert list(reader.stream(timeout=10)) == [0, 1, 2]


def test_ctrl_c_during_wait_until_completed(cpu_device):
    ch = make_channel(cpu_device, 64)
    cb = cpu_device.new_queue().command_buffer()
    cb.channel_push_sequence(ch, 0, 400_000_000)  # seconds of work
    cb.commit()
    timer = threading.Timer(0.1, _thread.interrupt_main)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            cb.wait_until_completed(timeout=60)
    finally:
        timer.cancel()
    cpu_device.close()  # does not hang: the running command buffer finishes or is failed
