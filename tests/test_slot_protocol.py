"""Slot protocol 2 (docs/protocol.md): selected per device or per channel, recorded in FLAGS,
and the same stream as protocol 1 on every backend that runs here."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import foundry_channels as fc


def run_stream(device, protocol, capacity, items):
    ch = fc.ChannelU32(device, capacity, slot_protocol=protocol)
    assert ch.slot_protocol == protocol
    cb = device.new_queue().command_buffer()
    cb.channel_init(ch)
    cb.channel_push_sequence(ch, 0, items)
    cb.channel_close(ch)
    cb.commit()
    reader = ch.reader()
    got = list(reader.stream(timeout=30))
    assert cb.wait_until_completed(timeout=30)
    return ch, reader, got


@pytest.mark.parametrize("protocol", [1, 2])
def test_lossless_stream_with_each_protocol(device, protocol):
    ch, reader, got = run_stream(device, protocol, 1 << 12, 3000)
    assert got == list(range(3000)) and reader.dropped == 0
    flags = int(ch.header[fc.header_layout()["FLAGS"]["word"]])
    assert flags == (1 | (2 if protocol == 2 else 0))  # closed, and bit 1 for protocol 2


@pytest.mark.parametrize("protocol", [1, 2])
def test_lapped_stream_with_each_protocol(device, protocol):
    _, reader, got = run_stream(device, protocol, 16, 200_000)
    assert got == sorted(set(got)) and got[-1] == 199_999
    assert len(got) + reader.dropped == 200_000


def test_device_default_and_channel_override(cpu_device):
    assert cpu_device.slot_protocol == 1
    dev = fc.Device("cpu", slot_protocol=2)
    try:
        assert dev.slot_protocol == 2
        assert fc.ChannelU32(dev, 8).slot_protocol == 2
        assert fc.ChannelU32(dev, 8, slot_protocol=1).slot_protocol == 1
    finally:
        dev.close()
    for bad in (0, 3):
        with pytest.raises(ValueError):
            fc.ChannelU32(cpu_device, 8, slot_protocol=bad)
    with pytest.raises((ValueError, TypeError)):
        fc.Device("cpu", slot_protocol=3)


def test_environment_variable_sets_the_device_default():
    code = "import foundry_channels as fc; print(fc.Device('cpu').slot_protocol)"
    env = dict(os.environ, FOUNDRY_CHANNELS_SLOT_PROTOCOL="2")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.strip() == "2", out.stderr
    env["FOUNDRY_CHANNELS_SLOT_PROTOCOL"] = "7"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode != 0 and "FOUNDRY_CHANNELS_SLOT_PROTOCOL" in out.stderr


def test_the_reader_follows_the_header_not_the_channel_object(cpu_device):
    # A raw dispatch of init with slot_protocol=2 on a protocol-1 channel: the pushes (which read
    # the protocol from the cursor) and the reader (from FLAGS) both switch to protocol 2.
    ch = fc.ChannelU32(cpu_device, 8)
    cb = cpu_device.new_queue().command_buffer()
    cb.dispatch("channel_u32_init", 8, channel=ch, capacity=8, slot_protocol=2)
    for v in (5, 6, 7):
        cb.channel_push(ch, v)
    cb.channel_close(ch)
    cb.commit()
    assert cb.wait_until_completed(timeout=10)
    assert int(ch.header[3]) == 3
    out = np.empty(8, dtype=np.uint32)
    assert ch.reader().drain_into(out) == 3 and out[:3].tolist() == [5, 6, 7]


def test_reinit_switches_protocol_under_a_live_reader(cpu_device):
    ch = fc.ChannelU32(cpu_device, 8)
    q = cpu_device.new_queue()
    cb = q.command_buffer()
    cb.channel_init(ch)
    cb.channel_push(ch, 1)
    cb.commit()
    assert cb.wait_until_completed(timeout=10)
    reader = ch.reader()
    assert reader.try_next() == 1
    cb = q.command_buffer()
    cb.dispatch("channel_u32_init", 8, channel=ch, capacity=8, slot_protocol=2)
    cb.channel_push(ch, 2)
    cb.commit()
    assert cb.wait_until_completed(timeout=10)
    with pytest.raises(fc.ChannelError, match="re-initialised"):
        reader.try_next()
    assert reader.try_next() == 2
