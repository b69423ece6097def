"""Record channels in workflows: stream_init with a dtype and shape makes a channel of tensor
records, stream_write pushes a tensor into it, and a mismatch is refused when the workflow loads,
naming the step."""

from __future__ import annotations

import numpy as np
import pytest

from foundry_channels.workflow import WorkflowValidationError, load_workflow, run_workflow


def doc(steps):
    return {"name": "records", "steps": steps}


def record_steps(dtype="f32", shape=(2, 3), value_dtype="f32", value_shape=(2, 3)):
    return [
        {"op": "tensor_zeros", "dtype": value_dtype, "shape": list(value_shape), "out": "t"},
        {"op": "stream_init", "capacity": 4, "dtype": dtype, "shape": list(shape), "out": "rec"},
        {"op": "stream_write", "channel": "rec", "value": "t"},
        {"op": "stream_write", "channel": "rec", "value": "t"},
        {"op": "stream_close", "channel": "rec"},
    ]


def test_a_record_channel_carries_the_tensor(device):
    run = run_workflow(doc(record_steps()), device)
    try:
        run.context.flush(wait=True)
        records = list(run.context.channels["rec"].reader().stream(timeout=10))
        assert len(records) == 2
        assert all(r.dtype == np.float32 and r.shape == (2, 3) and not r.any() for r in records)
    finally:
        run.context.close()


@pytest.mark.parametrize("kwargs, message", [
    (dict(value_dtype="u32"), r"steps\[2\]\.value \(stream_write\): the tensor is a tensor u32\[2, 3\], "
                              r"but the channel's records are tensor f32\[2, 3\]"),
    (dict(value_shape=(3, 2)), r"steps\[2\]\.value \(stream_write\): the tensor is a tensor f32\[3, 2\]"),
])
def test_a_tensor_that_is_not_the_channels_record_is_refused_at_load_time(kwargs, message):
    with pytest.raises(WorkflowValidationError, match=message):
        load_workflow(doc(record_steps(**kwargs)))


def test_stream_write_into_a_u32_channel_is_refused():
    steps = record_steps()
    steps[1] = {"op": "stream_init", "capacity": 4, "out": "rec"}
    with pytest.raises(WorkflowValidationError,
                       match=r"steps\[2\]\.channel \(stream_write\): stream_write pushes records"):
        load_workflow(doc(steps))


def test_dtype_needs_a_shape_and_excludes_bytes():
    steps = record_steps()
    del steps[1]["shape"]
    with pytest.raises(WorkflowValidationError, match=r"steps\[1\] \(stream_init\): a channel of "
                                                      r"records takes both"):
        load_workflow(doc(steps))
    steps = record_steps()
    steps[1]["bytes"] = True
    with pytest.raises(WorkflowValidationError, match="records .* or bytes, not both"):
        load_workflow(doc(steps))
