"""The kernel table (csrc/kernels/kernel_list.hpp): every kernel's named parameters, the
named dispatch built on it, and the absence of hand-written slot numbers elsewhere."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import foundry_channels as fc
from conftest import make_channel

REPO = Path(__file__).resolve().parents[1]


def test_every_kernel_has_a_named_signature():
    for name in fc.kernel_names():
        params = fc.kernel_signature(name)
        names = [p["name"] for p in params]
        assert len(names) == len(set(names)), name
        for p in params:
            assert p["kind"] in ("buffer", "channel", "shared", "u32")
    push = {p["name"]: p for p in fc.kernel_signature("channel_u32_push")}
    assert push["channel"] == {"name": "channel", "kind": "channel", "slot": 0, "optional": False}
    assert push["source"]["optional"] and push["value"]["optional"]
    assert fc.kernel_signature("debug_trap") == []


def test_named_dispatch_runs_a_kernel(device):
    state, out = device.buffer(4), device.buffer(4)
    cb = device.new_queue().command_buffer()
    for _ in range(3):
        cb.dispatch("counter_u32", 1, state=state, out=out, multiplier=10, addend=7)
    cb.commit()
    assert cb.wait_until_completed(30)
    assert out.numpy()[0] == 2 * 10 + 7 and state.numpy()[0] == 3


def test_a_channel_parameter_takes_a_channel(device):
    ch = make_channel(device, 8)
    cb = device.new_queue().command_buffer()
    cb.dispatch("channel_u32_push", 1, channel=ch, capacity=8, value=41)
    cb.dispatch("channel_u32_push_sequence", 1, channel=ch, capacity=8, start=42, count=2)
    cb.dispatch("channel_u32_close", 1, channel=ch)
    cb.commit()
    assert list(ch.reader().stream(timeout=10)) == [41, 42, 43]


DROP = object()  # leave the argument out


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(state=DROP), TypeError, "missing argument 'state' (a Buffer)"),
    (dict(state=None), TypeError, "missing argument 'state' (a Buffer)"),
    (dict(state="S"), TypeError, "argument 'state' must be a Buffer, got str"),
    (dict(stat="S"), TypeError, "unknown argument 'stat'; it takes state, out, multiplier, addend"),
    (dict(multiplier=1.5), TypeError, "argument 'multiplier' must be an int"),
    (dict(multiplier=-1), ValueError, "argument 'multiplier' must be between 0 and 4294967295"),
    (dict(addend=DROP), TypeError, "missing argument 'addend' (a u32 int)"),
])
def test_named_dispatch_refuses_bad_arguments_before_recording(cpu_device, kwargs, error, message):
    args = dict(state=cpu_device.buffer(4), out=cpu_device.buffer(4), multiplier=1, addend=0)
    args.update(kwargs)
    args = {k: v for k, v in args.items() if v is not DROP}
    cb = cpu_device.new_queue().command_buffer()
    with pytest.raises(error) as info:
        cb.dispatch("counter_u32", 1, **args)
    assert message in str(info.value)
    assert cb.dispatch_count == 0


def test_a_channel_argument_must_be_a_channel(cpu_device):
    cb = cpu_device.new_queue().command_buffer()
    with pytest.raises(TypeError, match="argument 'channel' must be a ChannelU32 or "
                                        "RecordChannel, got Buffer"):
        cb.dispatch("channel_u32_close", 1, channel=cpu_device.buffer(64))


def test_unknown_kernels_are_refused():
    with pytest.raises(ValueError, match="unknown kernel 'nope'"):
        fc.kernel_signature("nope")


def test_no_slot_number_is_written_by_hand_outside_the_table():
    # Kernel bodies use the table's names, never b0..b7 / sc[i].
    for path in (REPO / "csrc" / "kernels").glob("*.inc"):
        text = re.sub(r"//[^\n]*", "", path.read_text())
        assert not re.search(r"\bb[0-7]\b|\bsc\[", text), path.name
    # Python dispatches by name: no positional buffer or scalar lists.
    for path in list((REPO / "python").rglob("*.py")) + list((REPO / "tests").rglob("*.py")):
        text = path.read_text()
        assert not re.search(r"\.dispatch\(\s*\"\w+\",\s*[^,\n)]+,\s*\[", text), path
    # C++ encoders fill typed argument structs; only the table's generators touch KernelId.
    for path in (REPO / "csrc").rglob("*.c*"):
        if path.name in ("kernel_signatures.cpp",):
            continue
        code = re.sub(r"//[^\n]*", "", path.read_text())
        assert not re.search(r"KernelId::(?!count_)", code), path


def test_scalar_results_match_numpy(cpu_device):
    # buffer_copy_u32 by name: the upload path of the sample model.
    src = cpu_device.buffer(64)
    src.numpy()[:] = np.arange(16, dtype=np.uint32) * 3
    dst = cpu_device.buffer(64)
    cb = cpu_device.new_queue().command_buffer()
    cb.dispatch("buffer_copy_u32", 16, source=src, destination=dst, words=16)
    cb.commit()
    assert cb.wait_until_completed(30)
    assert np.array_equal(dst.numpy(), np.arange(16, dtype=np.uint32) * 3)
