"""A device fault fails waiters, blocked readers, later calls and the streaming runner with an
exception; nothing hangs. (Host backend; the CUDA version runs in a child process in
test_cuda_backend.py because a CUDA fault takes down the whole context.)"""

from __future__ import annotations

import json
import threading

import pytest

import foundry_channels as fc
from foundry_channels.workflow import WorkflowError, load_workflow, run_workflow, sample_path
from foundry_channels.workflow.registry import register_op

from conftest import make_channel


def trap(device, queue=None):
    cb = (queue or device.new_queue()).command_buffer()
    cb.dispatch("debug_trap", 1)
    cb.commit()
    return cb


def test_fault_fails_the_command_buffer_and_every_later_call(cpu_device):
    ch = make_channel(cpu_device, 64)
    reader = ch.reader()
    cb = trap(cpu_device)
    with pytest.raises(fc.CommandBufferError, match="debug_trap"):
        cb.wait_until_completed(timeout=30)
    assert cb.status == "error" and "debug_trap" in cb.error
    for call in (reader.try_next, lambda: reader.next(timeout=1), cpu_device.new_queue,
                 lambda: cpu_device.buffer(4), lambda: fc.ChannelU32(cpu_device, 8)):
        with pytest.raises(fc.DeviceError, match="faulted earlier: device fault"):
            call()


def test_fault_wakes_a_reader_blocked_without_timeout(cpu_device):
    ch = make_channel(cpu_device, 64)
    reader = ch.reader()
    errors = []

    def blocked_read():
        try:
            reader.next()  # no timeout: only the fault can end this
        except Exception as e:  # noqa: BLE001 - the test inspects it
            errors.append(e)

    t = threading.Thread(target=blocked_read)
    t.start()
    trap(cpu_device)
    t.join(timeout=30)
    assert not t.is_alive(), "a blocked reader hung after the device faulted"
    assert len(errors) == 1 and isinstance(errors[0], fc.DeviceError)


def test_work_queued_behind_a_fault_fails_too(cpu_device):
    queue = cpu_device.new_queue()
    ch = make_channel(cpu_device, 64)
    trap(cpu_device, queue)
    try:
        later = queue.command_buffer()
        later.channel_push(ch, 1)
        later.commit()
    except fc.DeviceError:
        return  # the fault was already recorded: refused before it reached the device
    with pytest.raises(fc.CommandBufferError, match="faulted"):
        later.wait_until_completed(timeout=30)


@register_op("test_debug_trap", args={}, category="step")
def _test_debug_trap(ctx, args, step):
    """Test-only op: a decode step that faults the device."""
    ctx.command_buffer().dispatch("debug_trap", 1)


@pytest.mark.parametrize("mode", ["windowed", "throughput", "interactive"])
def test_streaming_runner_fails_with_the_fault_instead_of_hanging(mode):
    doc = json.load(open(sample_path()))
    loop = next(s for s in doc["steps"] if s["op"] == "while_batched")
    loop["body"].append({"op": "test_debug_trap"})
    workflow = load_workflow(doc)
    with fc.Device("cpu") as device:
        with pytest.raises((WorkflowError, fc.FoundryChannelsError)) as info:
            run_workflow(workflow, device, inputs={"max_tokens": 500, "window": 8}, mode=mode)
    assert "debug_trap" in str(info.value) or "faulted" in str(info.value)
