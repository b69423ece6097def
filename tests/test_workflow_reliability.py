"""Issue 9, the workflow layer: a loop delivers exactly its own tokens (nothing after EOS,
nothing another loop or step pushed, nothing lost to a slow consumer), its window reports say
what they document, and bad workflow files are refused at load time with the place named."""

from __future__ import annotations

import copy
import json
import time

import pytest

from foundry_channels.workflow import (
    WindowedLoop,
    WorkflowExecutionContext,
    WorkflowRuntimeError,
    WorkflowValidationError,
    load_workflow,
    run_workflow,
    sample_path,
)
from foundry_channels.workflow.loader import MAX_NESTING
from foundry_channels.workflow.streaming import pipeline
from foundry_channels.workflow.values import TensorArg

SAMPLE = json.load(open(sample_path("text_generation_stream_u32")))
MULTI_TURN = json.load(open(sample_path("multi_turn_chat_u32")))
LOOP = 7  # the while_batched step of the sample
PROMPT = "We hold"
STREAMING = ("throughput", "interactive")


def sample() -> dict:
    return copy.deepcopy(SAMPLE)


def error_of(doc) -> str:
    with pytest.raises(WorkflowValidationError) as info:
        load_workflow(doc)
    return str(info.value)


def generate(doc, device, mode, **inputs):
    """(generated tokens, tokens handed to on_token, the run)."""
    seen: list[int] = []
    run = run_workflow(load_workflow(doc), device, mode=mode, on_token=seen.append,
                       inputs={"prompt": PROMPT, **inputs})
    generated = run.outputs["generated_tokens"].tolist()
    run.context.close()
    return generated, seen, run


# ---- 12: no token after EOS --------------------------------------------------------------


def test_collect_without_the_stop_flag_is_refused_at_load_time():
    # The reproduction: a windowed loop without "stop" collected 25 copies of the
    # last token after EOS. A stopped step cannot be told from a real one without the flag.
    doc = sample()
    doc["steps"][LOOP]["mode"] = "windowed"
    del doc["steps"][LOOP]["stop"]
    assert "steps[7].collect (while_batched): 'collect' needs the loop's 'stop' flag" in error_of(doc)


def test_collect_without_the_stop_flag_is_refused_by_the_runner(cpu_device):
    with WorkflowExecutionContext(cpu_device) as ctx:
        token = TensorArg.zeros(cpu_device, "u32", (1,))
        with pytest.raises(ValueError, match="'collect' needs the loop's 'stop' flag"):
            WindowedLoop(ctx, lambda: None, max_steps=4, window=2, collect=token)


def test_body_steps_must_use_the_loops_stop_flag():
    doc = sample()
    doc["steps"].insert(5, {"op": "tensor_zeros", "dtype": "u32", "shape": [1], "out": "stop2"})
    doc["steps"][LOOP + 1]["body"][0]["stop"] = "stop2"
    message = error_of(doc)
    assert "steps[8].body[0].stop (lm_decode_step): the loop stops on 'stop' but this step uses 'stop2'" in message


# ---- 13: a loop delivers its own tokens, whatever else used the channel --------------------


def shared_channel_turns(modes: tuple[str, ...]) -> dict:
    """The multi-turn sample with one channel for all three turns, closed at the end, and a
    mode per turn's loop."""
    doc = copy.deepcopy(MULTI_TURN)
    first_init = next(s for s in doc["steps"] if s["op"] == "stream_init")
    steps = [s for s in doc["steps"]  # one init (the first), no close between turns
             if s["op"] != "stream_close" and (s["op"] != "stream_init" or s is first_init)]
    for step in steps:
        for s in (step, *step.get("body", ())):
            for key in ("out", "stream", "channel"):
                if str(s.get(key, "")).endswith("_stream"):
                    s[key] = "shared"
    steps.append({"op": "stream_close", "channel": "shared"})
    for loop, mode in zip((s for s in steps if s["op"] == "while_batched"), modes):
        loop["mode"] = mode
    doc["steps"] = steps
    return doc


def test_streaming_loops_after_a_windowed_loop_on_one_channel(device):
    # The reproduction (a): on_token got 160 tokens for 120 generated, the windowed
    # turn's tokens, which nobody read from the channel, delivered again by the next turn.
    doc = shared_channel_turns(("windowed", "throughput", "throughput"))
    seen: list[int] = []
    run = run_workflow(load_workflow(doc), device, on_token=seen.append,
                       inputs={"seed": 3, "max_tokens": 40, "eos_token": 10, "window": 4})
    turns = [run.outputs[f"turn{i}_tokens"].tolist() for i in (1, 2, 3)]
    run.context.close()
    assert seen == turns[0] + turns[1] + turns[2]
    assert [r.delivered for r in run.loops] == [len(t) for t in turns]


@pytest.mark.parametrize("mode", ["windowed", *STREAMING])
def test_a_value_pushed_before_the_loop_is_not_a_token(device, mode):
    # The reproduction (b): the streaming modes delivered the 7 pushed before the loop.
    doc = sample()
    doc["steps"].insert(LOOP, {"op": "stream_write_u32", "channel": "tokens", "value": 7})
    generated, seen, _ = generate(doc, device, mode, seed=0, max_tokens=30, window=4)
    assert seen == generated and len(generated) == 30


# ---- 14: the loop's stream is the channel its body writes ----------------------------------


def test_a_stream_the_body_never_writes_is_refused():
    doc = sample()
    doc["steps"].insert(6, {"op": "stream_init", "capacity": 64, "out": "other"})
    doc["steps"][LOOP + 1]["stream"] = "other"
    message = error_of(doc)
    assert "steps[8].stream (while_batched): the body never pushes into 'other'" in message


def test_a_push_into_the_stream_must_be_predicated_on_the_stop_flag():
    doc = sample()
    del doc["steps"][LOOP]["body"][1]["stop"]  # would push the last token again after EOS
    message = error_of(doc)
    assert "steps[7].body[1] (stream_write_u32): pushes into the loop's stream without its stop flag" in message


# ---- 15: lossless by construction -----------------------------------------------------------


def test_pipeline_fits_the_windows_in_flight_in_the_channel():
    assert pipeline(65536, 64, 1) == (2, 64)
    assert pipeline(8, 64, 1) == (2, 4)
    assert pipeline(8, 64, 2) == (2, 2)
    assert pipeline(1, 64, 1) == (1, 1)
    with pytest.raises(ValueError, match="holds less than one step"):
        pipeline(1, 4, 2)


@pytest.mark.parametrize("mode", STREAMING)
def test_a_slow_consumer_of_a_small_channel_loses_nothing(device, mode):
    # Capacity 8 and window 64 overflowed once on_token was slow (gaps, then an error).
    doc = sample()
    doc["steps"][5]["capacity"] = 8

    def slow(token: int) -> None:
        seen.append(token)
        time.sleep(0.001)  # far slower than a decode step: the device must wait for us

    seen: list[int] = []
    run = run_workflow(load_workflow(doc), device, mode=mode, on_token=slow,
                       inputs={"prompt": PROMPT, "seed": 2, "max_tokens": 60, "window": 64})
    generated = run.outputs["generated_tokens"].tolist()
    run.context.close()
    assert seen == generated and len(generated) == 60
    assert max(r.steps for r in run.loops[0].reports) == 4  # 2 in flight fit in 8


# ---- 17: window reports ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["windowed", *STREAMING])
def test_window_reports_hold_each_windows_collected_tokens(device, mode):
    reports = []
    run = run_workflow(load_workflow(sample()), device, mode=mode, on_window=reports.append,
                       inputs={"prompt": PROMPT, "seed": 1, "max_tokens": 5000, "window": 16})
    generated = run.outputs["generated_tokens"].tolist()
    run.context.close()
    assert run.loops[0].stop_flag == 1  # EOS inside a window
    assert sum((r.tokens for r in reports), []) == generated
    assert all(r.tokens_total <= r.steps_total for r in reports)
    assert reports[-1].tokens_total == len(generated)
    assert [r.tokens_total for r in reports] == \
        [sum(len(x.tokens) for x in reports[:i + 1]) for i in range(len(reports))]


# ---- bad workflow input: refused at load time, the place named ------------------------------


@pytest.mark.parametrize("capacity", [65536.0, 2 ** 27, 0, 1000])
def test_channel_capacity_rule_at_load_time(capacity):
    doc = sample()
    doc["steps"][5]["capacity"] = capacity
    message = error_of(doc)
    assert message.count("\n") == 0 and "steps[5].capacity (stream_init)" in message
    assert ("capacity must be a power of two from 1 to 67108864" in message
            or "expected a u32 (1..4294967295" in message)


def test_capacity_given_by_name_fails_before_the_channel_is_made(cpu_device):
    doc = {"inputs": {"cap": {"kind": "u32"}},
           "steps": [{"op": "stream_init", "capacity": "cap", "out": "ch"}]}
    with pytest.raises(WorkflowRuntimeError, match=r"steps\[0\] \(stream_init\): capacity must "
                                                   r"be a power of two from 1 to 67108864"):
        run_workflow(load_workflow(doc), cpu_device, inputs={"cap": 2 ** 27})


def test_float_literals_are_not_integers():
    doc = sample()
    doc["steps"][LOOP]["window"] = 4.0
    assert "steps[7].window (while_batched): expected a u32 (1..4096, literal or name), got 4.0" in error_of(doc)


def test_stream_init_has_no_zero_argument():
    doc = sample()
    doc["steps"][5]["zero"] = True
    assert "steps[5].zero: unexpected argument 'zero' for op 'stream_init'" in error_of(doc)


def test_a_file_that_is_not_utf8_names_the_file_and_the_byte(tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes(json.dumps(sample()).encode()[:40] + "\u00e9".encode("latin-1") + b"\n}")
    message = error_of(str(path))
    assert message.startswith(str(path)) and "not UTF-8 text: byte 0xe9 at line 1, column 41" in message


@pytest.mark.parametrize("depth", [MAX_NESTING + 5, 100_000])
def test_deeply_nested_json_is_an_error_not_a_recursion_error(depth, tmp_path):
    path = tmp_path / "deep.json"
    path.write_text('{"name": ' + "[" * depth + "]" * depth + ', "steps": []}')
    message = error_of(str(path))
    assert f"nested more than {MAX_NESTING} levels deep" in message and message.count("\n") == 0


def test_a_string_where_a_bool_is_expected_says_so():
    doc = sample()
    doc["steps"][-2]["wait"] = "yes"
    assert ("steps[9].wait (stream_flush): undefined name 'yes': expected a bool (true/false "
            "or name)") in error_of(doc)


def test_minimum_greater_than_maximum():
    doc = sample()
    doc["inputs"]["window"]["minimum"] = 64
    doc["inputs"]["window"]["maximum"] = 8
    assert "inputs.window: minimum 64 is greater than maximum 8" in error_of(doc)


def test_an_undecodable_prompt_is_an_input_error(cpu_device):
    with pytest.raises(WorkflowRuntimeError, match="input 'prompt': not UTF-8 text"):
        run_workflow(load_workflow(sample()), cpu_device, inputs={"prompt": "ab\udcffc"})
