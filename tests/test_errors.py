"""Bad input and misuse: each a clear Python exception, never a crash or a hang."""

from __future__ import annotations

import numpy as np
import pytest

import foundry_channels as fc

from conftest import make_channel


@pytest.mark.parametrize("capacity", [0, 3, 1000, fc.MAX_CAPACITY * 2, 2**40])
def test_bad_capacity(device, capacity):
    with pytest.raises(ValueError, match=f"capacity {capacity}"):
        fc.ChannelU32(device, capacity)


def test_negative_capacity_is_rejected(device):
    with pytest.raises(ValueError, match=r"^ChannelU32\(capacity\) must be between 0 and \d+, got -1$"):
        fc.ChannelU32(device, -1)


def test_max_capacity_is_accepted(cpu_device):
    ch = fc.ChannelU32(cpu_device, fc.MAX_CAPACITY)
    assert ch.capacity == fc.MAX_CAPACITY


@pytest.mark.parametrize(
    "out, exc, match",
    [
        (np.zeros(8, dtype=np.int32), TypeError, "dtype uint32"),
        (np.zeros(8, dtype=np.uint64), TypeError, "dtype uint32"),
        (np.zeros((2, 4), dtype=np.uint32), ValueError, "1-dimensional"),
        (np.zeros(16, dtype=np.uint32)[::2], ValueError, "C-contiguous"),
        ([0] * 8, TypeError, "numpy.ndarray"),
    ],
)
def test_drain_into_rejects_bad_arrays(device, out, exc, match):
    reader = make_channel(device, 8).reader()
    with pytest.raises(exc, match=match):
        reader.drain_into(out)


def test_drain_into_rejects_read_only_array(device):
    reader = make_channel(device, 8).reader()
    out = np.zeros(8, dtype=np.uint32)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        reader.drain_into(out)


def test_reading_a_channel_never_initialised(device):
    reader = fc.ChannelU32(device, 8).reader()
    with pytest.raises(fc.ChannelError, match="never initialised"):
        reader.try_next()
    with pytest.raises(fc.ChannelError, match="never initialised"):
        reader.drain_into(np.zeros(4, dtype=np.uint32))


def test_reinitialising_under_a_reader_is_detected(device):
    ch = make_channel(device, 8)
    queue = device.new_queue()
    cb = queue.command_buffer()
    cb.channel_push_sequence(ch, 0, 5)
    cb.commit()
    cb.wait_until_completed(timeout=30)
    reader = ch.reader()
    assert list(reader) == list(range(5))
    cb = queue.command_buffer()
    cb.channel_init(ch)
    cb.commit()
    cb.wait_until_completed(timeout=30)
    with pytest.raises(fc.ChannelError, match="re-initialised"):
        reader.try_next()


def test_committing_twice(device):
    ch = make_channel(device, 8)
    cb = device.new_queue().command_buffer()
    cb.channel_push(ch, 1)
    cb.commit()
    with pytest.raises(fc.CommandBufferError, match="already committed"):
        cb.commit()
    with pytest.raises(fc.CommandBufferError, match="already committed"):
        cb.channel_push(ch, 2)


def test_waiting_on_an_uncommitted_command_buffer(device):
    cb = device.new_queue().command_buffer()
    with pytest.raises(fc.CommandBufferError, match="never committed"):
        cb.wait_until_completed(timeout=0.1)


@pytest.mark.parametrize("timeout", [-1.0, float("nan")])
def test_bad_timeouts(device, timeout):
    reader = make_channel(device, 8).reader()
    with pytest.raises(ValueError, match="timeout"):
        reader.next(timeout=timeout)


def test_use_after_device_close(backend):
    from conftest import open_or_skip

    device = open_or_skip(backend)
    ch = make_channel(device, 8)
    reader = ch.reader()
    queue = device.new_queue()
    device.close()
    assert device.closed
    for call in (
        reader.try_next,
        lambda: reader.drain_into(np.zeros(4, dtype=np.uint32)),
        lambda: reader.next(timeout=0.1),
        lambda: ch.ring,
        lambda: ch.header,
        ch.reader,
        lambda: fc.ChannelU32(device, 8),
        queue.command_buffer,
        lambda: device.buffer(4),
    ):
        with pytest.raises(fc.DeviceClosedError, match="closed"):
            call()
    device.close()  # idempotent


def test_work_pending_at_close_fails_instead_of_hanging(cpu_device):
    ch = make_channel(cpu_device, 8)
    queue = cpu_device.new_queue()
    cbs = []
    for _ in range(50):
        cb = queue.command_buffer()
        cb.channel_push_sequence(ch, 0, 200_000)
        cb.commit()
        cbs.append(cb)
    cpu_device.close()
    statuses = {cb.status for cb in cbs}
    assert statuses <= {"completed", "error"}
    assert "error" in statuses
    failed = next(cb for cb in cbs if cb.status == "error")
    assert "closed" in failed.error
    with pytest.raises(fc.CommandBufferError, match="closed"):
        failed.wait_until_completed(timeout=1)


def test_unknown_device_and_unavailable_backend():
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        fc.Device("tpu")
    with pytest.raises(ValueError, match="cuda:N"):
        fc.Device("cuda:x")
    for backend, reason in fc.backend_status().items():
        if reason:
            with pytest.raises(fc.BackendUnavailableError, match="not available"):
                fc.Device(backend)


def test_push_from_buffer_out_of_bounds(device):
    ch = make_channel(device, 8)
    src = device.buffer(8)
    cb = device.new_queue().command_buffer()
    with pytest.raises(ValueError, match="needs word 4, but the buffer has 2 words"):
        cb.channel_push(ch, src, count=3, stride=2)
    with pytest.raises(ValueError, match="count"):
        cb.channel_push(ch, src, count=0)


def test_buffer_from_another_device(device):
    other = fc.Device("cpu")
    try:
        ch = make_channel(device, 8)
        foreign = other.buffer(4)
        cb = device.new_queue().command_buffer()
        with pytest.raises(ValueError, match="another device"):
            cb.channel_push(ch, foreign)
    finally:
        other.close()


def test_private_buffer_has_no_cpu_view(device):
    with pytest.raises(ValueError, match="private"):
        device.buffer(16, storage="private").numpy()
    with pytest.raises(ValueError, match="storage"):
        device.buffer(16, storage="managed")
    with pytest.raises(ValueError, match="nbytes"):
        device.buffer(0)


def test_dispatch_unknown_kernel(device):
    cb = device.new_queue().command_buffer()
    with pytest.raises(ValueError, match="unknown kernel 'nope'"):
        cb.dispatch("nope", 1)
