"""CUDA-only behaviour: buffers, GPU stress, graph windows, faults, close with work in flight.

The semantics every backend shares are tested by the main suite (the `device` fixture runs it
on cuda too). These tests skip only where CUDA cannot open a device (FOUNDRY_CHANNELS_REQUIRE
=cuda turns the skip into a failure). FC_TEST_SCALE (default 1) shrinks the sizes for runs
under compute-sanitizer, which slows every device memory access.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import foundry_channels as fc
from conftest import make_channel

SCALE = float(os.environ.get("FC_TEST_SCALE", "1"))
UNDER_SANITIZER = os.environ.get("FC_UNDER_SANITIZER") == "1"


def test_unavailable_cuda_raises_with_its_reason():
    reason = fc.backend_status()["cuda"]
    if not reason:
        pytest.skip("CUDA is available here; the failure path needs a machine without it")
    with pytest.raises(fc.BackendUnavailableError) as err:
        fc.Device("cuda")
    assert reason in str(err.value) and "cuda" in str(err.value)
    # everything else still works without a GPU
    with fc.Device("cpu") as dev:
        assert dev.backend == "cpu"


def test_ordinal_out_of_range_names_the_device():
    with pytest.raises(fc.BackendUnavailableError, match="cuda"):
        fc.Device("cuda:97")
    with pytest.raises(ValueError, match="cuda:N"):
        fc.Device("cuda:x")


def test_device_identity(cuda):
    assert cuda.backend == "cuda"
    assert "cuda:0" in cuda.name
    assert fc._core.cuda_device_ordinal(cuda) == 0


def test_shared_buffers_are_zeroed_and_visible_private_have_no_view(cuda):
    shared = cuda.buffer(4096, "shared")
    view = shared.numpy()
    assert view.shape == (1024,) and not view.any()
    private = cuda.buffer(64, "private")
    with pytest.raises(ValueError, match="private"):
        private.numpy()
    # the device writes a shared buffer the CPU then reads: counter kernel
    state, out = cuda.buffer(4, "private"), cuda.buffer(4, "shared")
    q = cuda.new_queue()
    for i in range(3):
        cb = q.command_buffer()
        cb.counter(state, out, multiplier=10, addend=1)
        cb.commit()
        assert cb.wait_until_completed(timeout=30)
        assert int(out.numpy()[0]) == 10 * i + 1


def _drain_all(reader, n_items, batch, pause=None):
    out = np.empty(batch, dtype=np.uint32)
    last, received = -1, 0
    while True:
        n = reader.drain_into(out)
        if n:
            got = out[:n].astype(np.int64)
            assert got[0] > last and np.all(np.diff(got) > 0), "order or torn read"
            last = int(got[-1])
            received += n
            if pause:
                pause()
        elif reader.exhausted:
            return received, last
        else:
            reader.wait(timeout=30)


@pytest.mark.parametrize("capacity,batch,slow", [(1 << 16, 4096, False), (16, 3, True)])
def test_gpu_pushes_millions_while_python_drains(cuda, capacity, batch, slow):
    n_items = max(1000, int(2_000_000 * SCALE))
    ch = make_channel(cuda, capacity)
    reader = ch.reader()
    cb = cuda.new_queue().command_buffer()
    cb.channel_push_sequence(ch, 0, n_items)
    cb.channel_close(ch)
    cb.commit()
    stop = threading.Event()
    received, last = _drain_all(reader, n_items, batch, pause=(lambda: stop.wait(0.0005)) if slow else None)
    assert cb.wait_until_completed(timeout=120)
    assert received + reader.dropped == n_items
    assert last == n_items - 1
    if slow:
        assert reader.dropped > 0  # the GPU lapped the reader: drop-oldest was exercised


def test_window_graph_replay_streams_device_values(cuda):
    """A window of steps (counter -> push from its output) captured as a CUDA graph once and
    replayed: every replay pushes the next values, in order, produced on the GPU."""
    steps, replays = 64, max(4, int(40 * SCALE))
    ch = make_channel(cuda, 1 << 14)
    state, token = cuda.buffer(4, "private"), cuda.buffer(4, "private")
    q = cuda.new_queue()
    cb = q.command_buffer()
    for _ in range(steps):
        cb.counter(state, token, multiplier=3, addend=5)
        cb.channel_push(ch, token)
    window = cb.to_window()
    assert window.dispatch_count == 2 * steps
    reader = ch.reader()
    done = [q.replay(window) for _ in range(replays)]
    for d in done:
        assert d.wait_until_completed(timeout=60)
        assert d.status == "completed"
    out = np.empty(steps * replays + 1, dtype=np.uint32)
    n = reader.drain_into(out)
    assert n == steps * replays and reader.dropped == 0
    np.testing.assert_array_equal(out[:n], 3 * np.arange(n, dtype=np.uint32) + 5)


def test_completion_handlers_run_in_commit_order(cuda):
    ch = make_channel(cuda, 64)
    q = cuda.new_queue()
    seen, cbs = [], []
    for i in range(20):
        cb = q.command_buffer()
        cb.channel_push(ch, i)
        cb.add_completed_handler(lambda c, i=i: seen.append((i, c.status)))
        cb.commit()
        cbs.append(cb)
    for cb in cbs:
        assert cb.wait_until_completed(timeout=30)
    # a waiter is released before the handlers run (command_buffer.cpp): give them a moment
    deadline = time.monotonic() + 10
    while len(seen) < 20 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert seen == [(i, "completed") for i in range(20)]


def test_close_with_work_in_flight_does_not_hang(cuda):
    ch = make_channel(cuda, 1024)
    cb = cuda.new_queue().command_buffer()
    cb.channel_push_sequence(ch, 0, max(1000, int(200_000 * SCALE)))
    cb.commit()
    cuda.close()  # waits (bounded) for the running kernel
    assert cb.status in ("completed", "error")
    with pytest.raises(fc.DeviceClosedError):
        ch.reader()
    with pytest.raises(fc.DeviceClosedError):
        cuda.buffer(4)


FAULT_SCRIPT = textwrap.dedent(
    """
    import threading, foundry_channels as fc
    dev = fc.Device("cuda")
    q = dev.new_queue()
    ch = fc.ChannelU32(dev, 16)
    cb = q.command_buffer(); cb.channel_init(ch); cb.commit(); cb.wait_until_completed(timeout=30)
    reader = ch.reader()
    errors = []
    def blocked():
        try:
            reader.next(timeout=60)
        except Exception as e:
            errors.append(e)
    t = threading.Thread(target=blocked); t.start()
    # channel_u32_push reading its source ~60 GB past a 4-byte buffer: an illegal address.
    target, src = fc.ChannelU32(dev, 16), dev.buffer(4, "private")
    bad = q.command_buffer()
    bad.dispatch("channel_u32_push", 1, channel=target, source=src, capacity=16, from_source=1,
                 count=1, stride=1, offset=0xF0000000)
    bad.commit()
    try:
        bad.wait_until_completed(timeout=60)
        raise SystemExit("the faulting command buffer completed")
    except fc.CommandBufferError as e:
        print("wait:", e)
    t.join(timeout=60)
    assert not t.is_alive(), "a blocked reader hangs after a device fault"
    assert errors and isinstance(errors[0], fc.DeviceError), errors
    print("reader:", errors[0])
    for what, call in [("buffer", lambda: dev.buffer(4)), ("command_buffer", q.command_buffer)]:
        try:
            call()
            raise SystemExit(what + " worked on a faulted device")
        except fc.DeviceError as e:
            print(what + ":", e)
    print("OK")
    """
)


@pytest.mark.skipif(UNDER_SANITIZER, reason="faults on purpose; the sanitizer would report it")
def test_device_fault_fails_waiters_readers_and_later_calls(cuda):
    # A fault kills the CUDA context of the whole process: run it in a child.
    proc = subprocess.run([sys.executable, "-c", FAULT_SCRIPT], capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("OK"), proc.stdout + proc.stderr
    assert "cudaErrorIllegalAddress" in proc.stdout or "illegal" in proc.stdout.lower()
