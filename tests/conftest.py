"""Shared fixtures: one test suite, parametrized over the backends.

`device` runs a test on every backend; a backend that cannot run here is skipped with its
reason, except those named in FOUNDRY_CHANNELS_REQUIRE (comma-separated, e.g. "cuda" on a GPU
machine), which then fail instead: a GPU run can never pass by skipping its GPU tests.
"""

from __future__ import annotations

import os

import pytest

import foundry_channels as fc

ALL_BACKENDS = ("cpu", "cuda", "metal")
REQUIRED = {b.strip() for b in os.environ.get("FOUNDRY_CHANNELS_REQUIRE", "").split(",") if b.strip()}


def open_or_skip(backend: str) -> fc.Device:
    reason = fc.backend_status()[backend]
    if reason:
        if backend in REQUIRED:
            pytest.fail(f"{backend} is required by FOUNDRY_CHANNELS_REQUIRE but unavailable: {reason}")
        pytest.skip(f"{backend} not available: {reason}")
    return fc.Device(backend)


@pytest.fixture(params=ALL_BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def device(backend):
    dev = open_or_skip(backend)
    yield dev
    dev.close()


@pytest.fixture
def cuda():
    """A cuda device for the CUDA-only tests (skipped where cuda is absent, a failure under
    FOUNDRY_CHANNELS_REQUIRE=cuda)."""
    dev = open_or_skip("cuda")
    yield dev
    dev.close()


@pytest.fixture
def cpu_device():
    dev = fc.Device("cpu")
    yield dev
    dev.close()


def make_channel(device: fc.Device, capacity: int) -> fc.ChannelU32:
    """A channel whose init has run on the device."""
    ch = fc.ChannelU32(device, capacity)
    cb = device.new_queue().command_buffer()
    cb.channel_init(ch)
    cb.commit()
    assert cb.wait_until_completed(timeout=30)
    return ch
