"""Ops and the engine at run time: stream ops, while_batched windows, run-time kind checks,
inputs, and errors that name the step."""

from __future__ import annotations

import json

import numpy as np
import pytest

from foundry_channels.workflow import (
    TensorArg,
    WorkflowExecutionContext,
    WorkflowKindError,
    WorkflowRuntimeError,
    load_workflow,
    run_workflow,
    sample_path,
)
from foundry_channels.workflow.executor import run_step


def wf(steps, inputs=None, outputs=()):
    return load_workflow({"inputs": inputs or {}, "steps": steps, "outputs": list(outputs)})


def drained(ctx, name="ch"):
    reader = ctx.channels[name].reader()
    out = np.zeros(ctx.channels[name].capacity, dtype=np.uint32)
    return out[: reader.drain_into(out)].tolist()


def test_stream_write_literal_name_and_flush(device):
    flow = wf([
        {"op": "stream_init", "capacity": 16, "out": "ch"},
        {"op": "stream_write_u32", "channel": "ch", "value": 7},
        {"op": "stream_write_u32", "channel": "ch", "value": "n"},
        {"op": "stream_flush", "wait": True},
    ], inputs={"n": {"kind": "u32"}})
    run = run_workflow(flow, device, inputs={"n": 4000000000})
    assert drained(run.context) == [7, 4000000000]
    assert list(run.context.channels) == ["ch"] and run.context.channels["ch"].name == "ch"


def test_stream_flush_without_wait_commits_and_with_wait_completes(device):
    flow = wf([
        {"op": "stream_init", "capacity": 16, "out": "ch"},
        {"op": "stream_write_u32", "channel": "ch", "value": 1},
        {"op": "stream_flush", "wait": False},
        {"op": "stream_write_u32", "channel": "ch", "value": 2},
        {"op": "stream_flush", "wait": True},
    ])
    ctx = WorkflowExecutionContext(device)
    for step in flow.steps[:3]:
        run_step(ctx, step)
    # Committed, not waited for: the item arrives without any further call from us.
    reader = ctx.channels["ch"].reader()
    assert reader.next(timeout=30) == 1
    run_step(ctx, flow.steps[3])
    assert reader.try_next() is None  # encoded, not committed yet
    run_step(ctx, flow.steps[4])
    assert reader.try_next() == 2  # waited: visible at once


def test_loop_windows_replay_and_remainder(device):
    # 10 steps, window 4: windows of 4, 4 (a replay) and 2 (its own encoding).
    flow = wf([
        {"op": "stream_init", "capacity": 64, "out": "ch"},
        {"op": "while_batched", "max_steps": 10, "window": 4,
         "body": [{"op": "stream_write_u32", "channel": "ch", "value": 5}]},
    ])
    windows = []
    run = run_workflow(flow, device, on_window=windows.append)
    report = run.loops[0]
    assert (report.steps, report.windows, report.replays) == (10, 3, 1)
    assert [w.steps for w in windows] == [4, 4, 2] and [w.replayed for w in windows] == [False, True, False]
    assert drained(run.context) == [5] * 10


def test_loop_collects_device_tokens_and_stops_on_the_flag(device):
    doc = json.load(open(sample_path()))
    run = run_workflow(load_workflow(doc), device, mode="windowed",
                       inputs={"prompt": "Love is", "max_tokens": 3000, "window": 32, "seed": 3})
    report = run.loops[0]
    generated = run.outputs["generated_tokens"].tolist()
    assert report.stop_flag == 1 and report.tokens.tolist() == generated
    assert report.steps == 32 * report.windows < 3000  # ended after the window that hit EOS
    assert sum(len(r.tokens) for r in report.reports) == len(generated)


def test_channel_where_a_tensor_is_expected_at_run_time(device):
    flow = wf([
        {"op": "stream_init", "capacity": 16, "out": "ch"},
        {"op": "stream_write_u32", "channel": "ch", "value": 1},
    ])
    ctx = WorkflowExecutionContext(device)
    ctx.values["ch"] = TensorArg.zeros(device, "u32", (1,))  # a program put a tensor there
    with pytest.raises(WorkflowKindError, match=r"steps\[1\]\.channel \(stream_write_u32\): 'ch' is a "
                                                r"tensor u32\[1\], but 'channel' takes the name of a channel"):
        run_step(ctx, flow.steps[1])


def test_tensor_where_a_channel_is_expected_at_run_time(device):
    flow = wf([
        {"op": "tensor_zeros", "dtype": "u32", "shape": [1], "out": "t"},
        {"op": "stream_init", "capacity": 16, "out": "ch"},
        {"op": "stream_write_u32", "channel": "ch", "value": "t"},
    ])
    ctx = WorkflowExecutionContext(device)
    run_step(ctx, flow.steps[1])
    ctx.values["t"] = ctx.values["ch"]
    with pytest.raises(WorkflowKindError, match=r"steps\[2\]\.value \(stream_write_u32\): 't' is a channel"):
        run_step(ctx, flow.steps[2])


def test_run_time_errors_name_the_step(device):
    flow = wf([{"op": "stream_init", "capacity": "cap", "out": "ch"}], inputs={"cap": {"kind": "u32"}})
    with pytest.raises(WorkflowRuntimeError, match=r"steps\[0\] \(stream_init\): .*power of two"):
        run_workflow(flow, device, inputs={"cap": 1000})
    loop = wf([
        {"op": "stream_init", "capacity": 16, "out": "ch"},
        {"op": "while_batched", "max_steps": 4, "window": "w",
         "body": [{"op": "stream_write_u32", "channel": "ch", "value": 1}]},
    ], inputs={"w": {"kind": "u32"}})
    with pytest.raises(WorkflowRuntimeError, match=r"steps\[1\] \(while_batched\): window must be 1..4096, got 0"):
        run_workflow(loop, device, inputs={"w": 0})


def test_decode_step_rejects_a_tensor_that_is_not_a_model(device):
    doc = json.load(open(sample_path()))
    doc["steps"][7]["body"][0]["model"] = "history"  # a u32 tensor, but not a table
    with pytest.raises(WorkflowRuntimeError, match=r"steps\[7\]\.body\[0\] \(lm_decode_step\): model: "
                                                   r"the tensor is not an n-gram table"):
        run_workflow(load_workflow(doc), device, inputs={"max_tokens": 4})


@pytest.mark.parametrize("inputs, message", [
    ({"nope": 1}, "has no input 'nope'"),
    ({"seed": -1}, "input 'seed': -1 is outside 0..4294967295"),
    ({"max_tokens": 0}, "input 'max_tokens': 0 is outside 1..65000"),
    ({"window": "x"}, "input 'window': expected a u32, got 'x'"),
    ({"prompt": 5}, "input 'prompt': expected a string"),
    ({"prompt": "a\0b"}, "NUL"),
])
def test_bad_inputs(cpu_device, inputs, message):
    with pytest.raises(WorkflowRuntimeError, match=message):
        run_workflow(load_workflow(sample_path()), cpu_device, inputs=inputs)


def test_required_input_without_default(cpu_device):
    flow = wf([{"op": "stream_init", "capacity": 16, "out": "ch"}], inputs={"n": {"kind": "u32"}})
    with pytest.raises(WorkflowRuntimeError, match="input 'n' is required"):
        run_workflow(flow, cpu_device)


def test_outputs_as_python(cpu_device):
    run = run_workflow(load_workflow(sample_path()), cpu_device, inputs={"max_tokens": 5, "seed": 1})
    out = run.python_outputs()
    assert isinstance(out["generated_tokens"], list) and len(out["generated_tokens"]) == 5
    assert out["text"] == bytes(out["generated_tokens"]).decode()


def test_literal_push_predicated_on_the_device_stop_flag(device):
    # A literal value with a stop flag goes through a device constant, so the push can be
    # skipped on the device: one 9 per generated token, none after EOS.
    doc = json.load(open(sample_path()))
    doc["steps"][7]["body"].append({"op": "stream_write_u32", "channel": "tokens", "value": 9,
                                    "stop": "stop"})
    run = run_workflow(load_workflow(doc), device, mode="windowed",
                       inputs={"prompt": "Love is", "max_tokens": 3000, "window": 64, "seed": 3})
    generated = run.outputs["generated_tokens"].tolist()
    emitted = drained(run.context, "tokens")
    assert run.loops[0].stop_flag == 1
    assert emitted[0::2] == generated and emitted[1::2] == [9] * len(generated)
