"""Host-to-device channels (fc.H2DChannel): the CPU pushes, kernels of a running command buffer
pop. Order, try_pop and pop_wait semantics, timeouts that set the error word and end the wait,
closing, records, epochs, and every misuse a clear error."""

from __future__ import annotations

import time

import numpy as np
import pytest
from h2d_support import Pops, in_thread, ready_channel, relay

import foundry_channels as fc
from foundry_channels import _core


@pytest.fixture
def waiting_device(device):
    """A device whose kernels may wait for a CPU write (not Metal: there pop_wait is refused,
    which test_pop_wait_is_refused_where_waits_are covers)."""
    if not device.kernels_may_wait_on_cpu:
        pytest.skip(f"{device.backend}: kernels may not wait for a CPU write")
    return device


# ---- the basics -------------------------------------------------------------------------------


def test_items_arrive_in_order_through_a_small_ring(waiting_device):
    ch = ready_channel(waiting_device, capacity=4)
    pops = Pops(ch, 40)
    pops.cb.commit()
    writer = ch.writer()
    for value in range(1000, 1040):  # ten laps of the ring: each push waits for room
        writer.push(value, timeout=30)
    assert pops.cb.wait_until_completed(60)
    assert pops.values().tolist() == list(range(1000, 1040))
    assert pops.got_flags == [1] * 40
    assert writer.pushed == writer.taken == 40
    header = ch.header
    layout = fc.h2d_layout()
    assert header[layout["H2D_READ_IDX"]["word"]] == header[layout["H2D_WRITE_IDX"]["word"]] == 40


def test_try_pop_never_waits(device):
    ch = ready_channel(device, capacity=8)
    first = Pops(ch, 2, wait_us=None).run()
    assert first.got_flags == [0, 0]  # nothing there: got 0, no error
    ch.writer().push(5)
    second = Pops(ch, 2, wait_us=None).run()
    assert second.got_flags == [1, 0] and second.values()[0] == 5


def test_pop_wait_takes_an_item_pushed_later(waiting_device):
    ch = ready_channel(waiting_device)
    pops = Pops(ch, 1)
    pops.cb.commit()
    time.sleep(0.05)  # the device is waiting now
    assert pops.cb.status == "committed"
    ch.writer().push(77)
    assert pops.cb.wait_until_completed(30)
    assert pops.values()[0] == 77 and pops.got_flags == [1]


def test_a_timeout_sets_the_error_word_ends_the_wait_and_fails_the_command_buffer(waiting_device):
    ch = ready_channel(waiting_device)
    stop = waiting_device.buffer(4)
    ch.writer().push(1)
    pops = Pops(ch, 3, wait_us=20_000, stop_flag=stop, stop_code=9)
    pops.cb.commit()
    with pytest.raises(fc.CommandBufferError, match="timed out on the device waiting for item 1"):
        pops.cb.wait_until_completed(30)
    assert pops.got_flags == [1, 0, 0] and pops.values()[0] == 1
    assert stop.numpy()[0] == 9  # the failed pop set the stop flag: the third pop too got 0
    assert "item 1" in ch.last_error
    assert ch.header[fc.h2d_layout()["H2D_ERROR"]["word"]] == 0  # reported once, then cleared
    # The channel stays usable: the late item is taken by the next command buffer.
    ch.writer().push(2)
    later = Pops(ch, 1).run()
    assert later.values()[0] == 2


def test_a_closed_channel_ends_the_waits_after_its_last_item(waiting_device):
    ch = ready_channel(waiting_device)
    stop = waiting_device.buffer(4)
    writer = ch.writer()
    writer.push(3)
    writer.push(4)
    writer.close()
    writer.close()  # idempotent
    pops = Pops(ch, 4, stop_flag=stop, stop_code=6).run()  # no error: closed is an end
    assert pops.got_flags == [1, 1, 0, 0] and pops.values()[:2].tolist() == [3, 4]
    assert stop.numpy()[0] == 6 and writer.closed
    assert ch.last_error is None


def test_close_while_the_device_waits_ends_its_wait(waiting_device):
    ch = ready_channel(waiting_device)
    pops = Pops(ch, 2)
    pops.cb.commit()
    writer = ch.writer()
    writer.push(8)
    time.sleep(0.05)
    writer.close()
    assert pops.cb.wait_until_completed(30)  # no error: a closed channel is an end
    assert pops.got_flags == [1, 0] and pops.values()[0] == 8


def test_try_pop_reports_closed_and_empty_through_the_stop_flag(device):
    ch = ready_channel(device)
    stop = device.buffer(4)
    open_empty = Pops(ch, 1, wait_us=None, stop_flag=stop, stop_code=3).run()
    assert open_empty.got_flags == [0] and stop.numpy()[0] == 0  # empty but open: no stop
    ch.writer().close()
    Pops(ch, 1, wait_us=None, stop_flag=stop, stop_code=3).run()
    assert stop.numpy()[0] == 3


def test_a_predicated_pop_leaves_the_item_for_later(device):
    ch = ready_channel(device)
    stop = device.buffer(4)
    stop.numpy()[0] = 1
    ch.writer().push(21)
    skipped = Pops(ch, 1, wait_us=None, stop_flag=stop, predicated=True).run()
    assert skipped.got_flags == [0]
    stop.numpy()[0] = 0
    taken = Pops(ch, 1, wait_us=None, stop_flag=stop, predicated=True).run()
    assert taken.got_flags == [1] and taken.values()[0] == 21


@pytest.mark.parametrize("dtype, shape, make", [
    ("f32", (4,), lambda k: np.arange(4, dtype=np.float32) + k / 8),
    ("i64", (2,), lambda k: np.array([-k, 1 << 40 | k], dtype=np.int64)),
    ("f16", (2, 3), lambda k: np.full((2, 3), k, dtype=np.float16) / 3),
    ("u8", (64,), lambda k: (np.arange(64) * (k + 1)).astype(np.uint8)),
    ("u32", (1,), lambda k: np.array([k * 7], dtype=np.uint32)),
])
def test_records_arrive_whole(device, dtype, shape, make):
    ch = ready_channel(device, capacity=4, dtype=dtype, shape=shape)
    records = [make(k) for k in range(10)]
    writer = ch.writer()
    got = []
    for lap in range(0, 10, 4):  # fill, pop, repeat: try_pop takes exactly what was pushed
        batch = records[lap:lap + 4]
        writer.push_many(np.stack(batch), timeout=0)
        pops = Pops(ch, len(batch), wait_us=None).run()
        assert pops.got_flags == [1] * len(batch)
        got.extend(pops.values(ch.numpy_dtype).reshape(len(batch), *shape))
    for want, have in zip(records, got):
        assert np.array_equal(want, have), (want, have)


def test_push_many_of_ints(waiting_device):
    ch = ready_channel(waiting_device, capacity=16)
    pushed = []
    # The writer starts before the relay is committed: a commit may block until the kernel
    # finishes (compute-sanitizer serialises launches), and the kernel waits for the writer.
    writer = in_thread(lambda: pushed.append(ch.writer().push_many(range(100), timeout=60)))
    cb, sink, taken, _ = relay(ch, 100)
    writer.join(90)
    assert pushed == [100]
    assert ch.writer().push_many([], timeout=0) == 0
    assert cb.wait_until_completed(60)
    assert list(sink.reader().stream(timeout=10)) == list(range(100))


# ---- epochs -----------------------------------------------------------------------------------


def test_a_new_init_starts_both_sides_at_item_zero(waiting_device):
    ch = ready_channel(waiting_device, capacity=4)
    writer = ch.writer()
    writer.push_many([1, 2, 3])
    Pops(ch, 1).run()  # takes 1; 2 and 3 stay behind
    cb = waiting_device.new_queue().command_buffer()
    ch.encode_init(cb)  # a new epoch discards them
    pops_cb = Pops(ch, 2)
    cb.commit()
    pops_cb.cb.commit()
    writer.push(10, timeout=30)  # waits for the init to run, then is item 0 of the new epoch
    writer.push(11, timeout=30)
    assert pops_cb.cb.wait_until_completed(30)
    assert pops_cb.values().tolist() == [10, 11]
    assert writer.pushed == 2 and not writer.closed


def test_a_closed_channel_reopens_with_a_new_init(device):
    ch = ready_channel(device)
    ch.writer().close()
    with pytest.raises(fc.ChannelError, match="is closed"):
        ch.writer().push(1)
    cb = device.new_queue().command_buffer()
    ch.encode_init(cb)
    cb.commit()
    assert cb.wait_until_completed(30)
    ch.writer().push(1)
    assert Pops(ch, 1, wait_us=None).run().values()[0] == 1


# ---- named dispatch and the kernel table ------------------------------------------------------


def test_named_dispatch_fills_the_channel_geometry(waiting_device):
    ch = fc.H2DChannel(waiting_device, capacity=4, dtype="f32", shape=(2,))
    out, got = waiting_device.buffer(8), waiting_device.buffer(4)
    cb = waiting_device.new_queue().command_buffer()
    cb.dispatch("h2d_init", 1, channel=ch)  # capacity and record_words come from the channel
    cb.dispatch("h2d_pop_wait", 1, channel=ch, out=out, got=got, timeout_us=30_000_000)
    cb.commit()
    ch.writer().push(np.array([1.5, -2], np.float32), timeout=30)
    assert cb.wait_until_completed(30)
    assert out.numpy("float32").tolist() == [1.5, -2.0] and got.numpy()[0] == 1
    params = {p["name"]: p for p in fc.kernel_signature("h2d_pop_wait")}
    assert params["channel"]["kind"] == "h2d_channel" and params["timeout_us"]["kind"] == "u32"


def test_named_dispatch_refuses_a_wrong_geometry_or_channel_kind(device):
    ch = fc.H2DChannel(device, capacity=4)
    cb = device.new_queue().command_buffer()
    with pytest.raises(ValueError, match="argument 'capacity' must be the channel's, 4"):
        cb.dispatch("h2d_init", 1, channel=ch, capacity=8)
    with pytest.raises(TypeError, match="argument 'channel' must be an H2DChannel, got ChannelU32"):
        cb.dispatch("h2d_init", 1, channel=fc.ChannelU32(device, 4))
    assert cb.dispatch_count == 0 and ch.inits_encoded == 0


def test_kernels_that_wait_are_marked_in_the_table():
    waiting = {name for name in fc.kernel_names() if _core.kernel_waits_on_cpu(name)}
    assert waiting == {"h2d_pop_wait", "h2d_relay_u32"}


# ---- misuse: each a clear error ---------------------------------------------------------------


def test_push_to_a_closed_channel_raises(device):
    ch = ready_channel(device)
    w = ch.writer()
    w.close()
    with pytest.raises(fc.ChannelError, match=r"closed \(writer.close\(\)\)"):
        w.push(1)
    with pytest.raises(fc.ChannelError, match="closed"):
        w.push_many([1, 2])


def test_a_full_channel_with_timeout_zero_raises_at_once(device):
    ch = ready_channel(device, capacity=2)
    w = ch.writer()
    w.push(1, timeout=0)
    w.push(2, timeout=0)
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="is full.*timeout=0 does not wait"):
        w.push(3, timeout=0)
    with pytest.raises(TimeoutError, match="pushed 0 of 2 items, then"):
        w.push_many([3, 4], timeout=0)
    assert time.monotonic() - start < 5  # did not wait (a bound only against a hang)
    assert w.pushed == 2  # nothing was overwritten
    assert Pops(ch, 2, wait_us=None).run().values().tolist() == [1, 2]


def test_a_full_channel_times_out_after_the_timeout(device):
    ch = ready_channel(device, capacity=1)
    w = ch.writer()
    w.push(1)
    with pytest.raises(TimeoutError, match="is full: the device has not taken the 1 items in it "
                                           "within the timeout"):
        w.push(2, timeout=0.05)


@pytest.mark.parametrize("value, message", [
    (np.zeros(3, np.float32), r"expected a float32 array of shape \(4,\).*got a float32 array "
                              r"of shape \(3,\)"),
    (np.zeros(4, np.float64), "got a float64 array of shape"),
    ([0.0, 1.0, 2.0, 3.0], "got list"),
])
def test_a_record_of_the_wrong_shape_or_dtype_raises(device, value, message):
    ch = ready_channel(device, dtype="f32", shape=(4,))
    with pytest.raises(ValueError, match=message):
        ch.writer().push(value)
    with pytest.raises(ValueError, match=r"shape \('n', 4\)"):
        ch.writer().push_many(np.zeros((2, 3), np.float32))
    assert ch.writer().pushed == 0


@pytest.mark.parametrize("value, error", [(-1, ValueError), (1 << 32, ValueError),
                                          (1.5, TypeError), ("7", TypeError)])
def test_a_bad_u32_value_raises(device, value, error):
    ch = ready_channel(device)
    with pytest.raises(error, match=r"push\(value\)"):
        ch.writer().push(value)
    with pytest.raises((ValueError, TypeError), match="push_many"):
        ch.writer().push_many([1, value])


def test_a_pop_of_a_channel_never_initialised_is_refused_when_encoded(device):
    ch = fc.H2DChannel(device, capacity=4)
    out, got = device.buffer(4), device.buffer(4)
    cb = device.new_queue().command_buffer()
    with pytest.raises(fc.ChannelError, match="'h2d_try_pop'.*was never initialised"):
        ch.encode_try_pop(cb, out, got)
    with pytest.raises(fc.ChannelError, match="'h2d_try_pop'.*was never initialised"):
        cb.dispatch("h2d_try_pop", 1, channel=ch, out=out, got=got)
    with pytest.raises(fc.ChannelError, match="never initialised: encode its init"):
        ch.writer().push(1)


def test_a_pop_before_the_init_ran_is_reported_by_the_device(device):
    ch = fc.H2DChannel(device, capacity=4)
    ch.encode_init(device.new_queue().command_buffer())  # encoded, never committed
    pops = Pops(ch, 1, wait_us=None)
    pops.cb.commit()
    with pytest.raises(fc.CommandBufferError, match="popped the host-to-device channel .* before "
                                                    "any init of it had run"):
        pops.cb.wait_until_completed(30)
    assert pops.got_flags == [0]
    with pytest.raises(TimeoutError, match="init has not run on the device yet"):
        ch.writer().push(1, timeout=0)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(capacity=3), ValueError, "capacity 3: a host-to-device channel holds a power of two"),
    (dict(capacity=1 << 17), ValueError, "1 to 65536"),
    (dict(dtype="f32", shape=(17,)), ValueError, "68 bytes; items are 4 to 64 bytes"),
    (dict(dtype="u8", shape=(3,)), ValueError, "a multiple of 4"),
    (dict(dtype="x"), ValueError, "H2DChannel\\(dtype\\): expected one of"),
    (dict(dtype="f32", shape=(0,)), ValueError, "H2DChannel\\(shape\\)"),
])
def test_bad_channel_arguments_raise(cpu_device, kwargs, error, message):
    with pytest.raises(error, match=message):
        fc.H2DChannel(cpu_device, **kwargs)


@pytest.mark.parametrize("kernel, kwargs, message", [
    ("h2d_try_pop", dict(predicated=1), "predicated = 1 needs the 'stop_flag' argument"),
    ("h2d_try_pop", dict(stop_code=4), "stop_code = 4 needs the 'stop_flag' argument"),
    ("channel_u32_push", dict(predicated=1), "predicated = 1 needs the 'stop_flag' argument"),
    ("channel_u32_push", dict(from_source=1), "from_source = 1 needs the 'source' argument"),
])
def test_a_switch_without_its_buffer_is_refused(device, kernel, kwargs, message):
    # Without the check the kernel would read a buffer that is not there (a segfault on cpu).
    ch = ready_channel(device)
    cb = device.new_queue().command_buffer()
    args = dict(channel=ch, out=device.buffer(4), got=device.buffer(4)) if kernel.startswith(
        "h2d") else dict(channel=fc.ChannelU32(device, 4), capacity=4)
    with pytest.raises(ValueError, match=message):
        cb.dispatch(kernel, 1, **args, **kwargs)
    assert cb.dispatch_count == 0


def test_bad_pop_arguments_raise(device):
    ch = ready_channel(device, dtype="f32", shape=(4,))
    cb = device.new_queue().command_buffer()
    with pytest.raises(ValueError, match="runs past the end of the 8-byte out buffer"):
        ch.encode_try_pop(cb, device.buffer(8), device.buffer(4))
    with pytest.raises(ValueError, match="predicated and stop_code need a stop_flag"):
        ch.encode_try_pop(cb, device.buffer(16), device.buffer(4), stop_code=1)
    assert cb.dispatch_count == 0


# ---- Metal's rule, on any device ----------------------------------------------------------------


def test_pop_wait_is_refused_where_waits_are(cpu_device):
    ch = ready_channel(cpu_device)
    out, got = cpu_device.buffer(4), cpu_device.buffer(4)
    assert cpu_device.kernels_may_wait_on_cpu
    cpu_device._refuse_cpu_waits()  # behave as Metal does
    assert not cpu_device.kernels_may_wait_on_cpu
    cb = cpu_device.new_queue().command_buffer()
    with pytest.raises(fc.CommandBufferError, match="cannot encode 'h2d_pop_wait' on the cpu "
                                                    "device: it waits for a value the CPU writes"):
        ch.encode_pop_wait(cb, out, got, timeout_us=10)
    with pytest.raises(fc.CommandBufferError, match="cannot encode 'h2d_relay_u32'"):
        relay(ch, 1)
    ch.encode_try_pop(cb, out, got)  # polling stays allowed
    assert cb.dispatch_count == 1
    assert "Poll with h2d_try_pop" in _core.cpu_wait_refusal("h2d_pop_wait", "metal", False)
    assert _core.cpu_wait_refusal("h2d_pop_wait", "metal", True) == ""
    assert _core.cpu_wait_refusal("h2d_try_pop", "metal", False) == ""


def test_window_replays_check_their_pops(waiting_device):
    ch = ready_channel(waiting_device)
    out, got = waiting_device.buffer(4), waiting_device.buffer(4)
    queue = waiting_device.new_queue()
    cb = queue.command_buffer()
    ch.encode_pop_wait(cb, out, got, timeout_us=10_000)
    window = cb.to_window()
    ch.writer().push(4)
    assert queue.replay(window).wait_until_completed(30) and out.numpy()[0] == 4
    with pytest.raises(fc.CommandBufferError, match="timed out"):
        queue.replay(window).wait_until_completed(30)


def test_a_device_close_ends_a_waiting_push(cpu_device):
    ch = ready_channel(cpu_device, capacity=1)
    w = ch.writer()
    w.push(1)
    pusher = in_thread(lambda: w.push(2))  # full: waits with no timeout

    time.sleep(0.05)
    cpu_device.close()
    with pytest.raises(fc.DeviceClosedError):
        pusher.join(10)
