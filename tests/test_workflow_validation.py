"""Every load-time rule, each asserting that the message names the step path."""

from __future__ import annotations

import copy
import json

import pytest

from foundry_channels.workflow import WorkflowValidationError, load_workflow, sample_path
from foundry_channels.workflow.loop_config import MAX_WINDOW

SAMPLE = json.load(open(sample_path("text_generation_stream_u32")))
LOOP = 7  # index of the while_batched step in the sample


def sample() -> dict:
    return copy.deepcopy(SAMPLE)


def body(doc: dict) -> list:
    return doc["steps"][LOOP]["body"]


def error_of(doc) -> str:
    with pytest.raises(WorkflowValidationError) as info:
        load_workflow(doc)
    return str(info.value)


def test_the_sample_is_valid():
    wf = load_workflow(sample())
    assert [s.op for s in wf.steps][LOOP] == "while_batched"
    assert [s.op for s in wf.steps[LOOP].body] == ["lm_decode_step", "stream_write_u32"]
    assert wf.steps[LOOP].body[1].path == "steps[7].body[1]"


@pytest.mark.parametrize("text, where", [
    ('{"steps": [\n  {"op": "lm_load" "out": "m"}]}', "line 2, column 20"),
    ('{"steps": [}', "line 1, column 12"),
    ('', "line 1, column 1"),
])
def test_bad_json_reports_line_and_column(text, where, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(text)
    message = error_of(str(path))
    assert where in message and "invalid JSON" in message and str(path) in message


def test_duplicate_keys_are_rejected():
    assert "'op' appears twice" in error_of('{"steps": [{"op": "lm_load", "op": "lm_load", "out": "m"}]}')


def test_unknown_op():
    doc = sample()
    body(doc)[1]["op"] = "stream_write_u64"
    assert "steps[7].body[1].op: unknown op 'stream_write_u64'" in error_of(doc)


def test_missing_argument():
    doc = sample()
    del body(doc)[1]["value"]
    assert "steps[7].body[1]: missing argument 'value' (stream_write_u32)" in error_of(doc)


def test_extra_argument():
    doc = sample()
    body(doc)[1]["valu"] = 3
    assert "steps[7].body[1].valu: unexpected argument 'valu' for op 'stream_write_u32'" in error_of(doc)


@pytest.mark.parametrize("bad", [1.5, -1, 2 ** 32, True, [1], {"x": 1}])
def test_mistyped_argument(bad):
    doc = sample()
    body(doc)[1]["value"] = bad
    message = error_of(doc)
    assert "steps[7].body[1].value (stream_write_u32): expected a u32" in message
    assert json.dumps(bad) in message


def test_undefined_name():
    doc = sample()
    body(doc)[1]["value"] = "next_tokn"
    assert "steps[7].body[1].value (stream_write_u32): undefined name 'next_tokn'" in error_of(doc)


def test_name_used_before_it_is_defined():
    doc = sample()
    doc["steps"].insert(0, {"op": "stream_close", "channel": "tokens"})
    assert "steps[0].channel (stream_close): undefined name 'tokens'" in error_of(doc)


def test_channel_where_a_tensor_is_expected():
    doc = sample()
    body(doc)[1]["value"] = "tokens"
    message = error_of(doc)
    assert "steps[7].body[1].value (stream_write_u32): wrong value kind: 'tokens' is a channel" in message


def test_tensor_where_a_channel_is_expected():
    doc = sample()
    body(doc)[1]["channel"] = "next_token"
    message = error_of(doc)
    assert "steps[7].body[1].channel (stream_write_u32): wrong value kind: 'next_token' is a tensor u32[1]" in message
    assert "takes the name of a channel" in message


def test_tensor_of_the_wrong_shape():
    doc = sample()
    doc["steps"][3]["shape"] = [2]  # next_token becomes u32[2]
    assert "steps[7].body[0].token (lm_decode_step): wrong value kind: 'next_token' is a tensor u32[2]" in error_of(doc)


def test_loop_without_a_bound():
    doc = sample()
    del doc["steps"][LOOP]["max_steps"]
    assert "steps[7]: a loop needs a bound: missing argument 'max_steps'" in error_of(doc)


def test_window_out_of_range():
    doc = sample()
    doc["steps"][LOOP]["window"] = 0
    assert "steps[7].window (while_batched): expected a u32 (1..4096" in error_of(doc)


def test_loop_output_needs_collect():
    doc = sample()
    del doc["steps"][LOOP]["collect"]
    assert "steps[7].out (while_batched): the loop's output is the collected tokens" in error_of(doc)


def test_only_device_steps_in_a_body():
    doc = sample()
    body(doc).append({"op": "stream_flush", "wait": True})
    assert "steps[7].body[2] (stream_flush): op 'stream_flush' cannot run inside a while_batched body" in error_of(doc)


def test_body_only_on_loops_and_out_only_on_producers():
    doc = sample()
    doc["steps"][1]["body"] = [{"op": "stream_flush"}]
    body(doc)[1]["out"] = "x"
    message = error_of(doc)
    assert "steps[1].body: op 'tensor_zeros' has no body" in message
    assert "steps[7].body[1].out: op 'stream_write_u32' produces no value to name" in message


def test_missing_out_on_a_producer():
    doc = sample()
    del doc["steps"][0]["out"]
    assert "steps[0]: op 'lm_load' produces a value: name it with \"out\"" in error_of(doc)


def test_name_defined_twice():
    doc = sample()
    doc["steps"][4]["out"] = "model"
    assert "steps[4].out: name 'model' is already defined at steps[0].out" in error_of(doc)


def test_capacity_must_be_a_power_of_two():
    doc = sample()
    doc["steps"][5]["capacity"] = 1000
    assert "steps[5].capacity (stream_init): capacity must be a power of two from 1 to 67108864 (2^26), got 1000" in error_of(doc)


def test_bad_choice_and_shape_literals():
    doc = sample()
    doc["steps"][1]["dtype"] = "u64"
    doc["steps"][2]["shape"] = [0]
    message = error_of(doc)
    assert "steps[1].dtype (tensor_zeros): expected one of 'u32'" in message
    assert "steps[2].shape (tensor_zeros): expected a shape" in message


def test_outputs_must_be_defined_values_not_channels():
    doc = sample()
    doc["outputs"] += ["nope", "tokens"]
    message = error_of(doc)
    assert "outputs[2]: undefined name 'nope'" in message
    assert "outputs[3]: 'tokens' is a channel" in message


def test_input_declarations_are_checked():
    doc = sample()
    doc["inputs"]["seed"]["default"] = "zero"
    assert "inputs.seed.default: 'zero' is not of type 'integer'" in error_of(doc)
    doc = sample()
    doc["inputs"]["window"]["default"] = 0
    assert "inputs.window.default: 0 is outside 1..4096" in error_of(doc)
    doc = sample()
    doc["inputs"]["prompt"]["minimum"] = 1
    assert "inputs.prompt: minimum/maximum apply to u32 inputs only" in error_of(doc)


def test_unknown_top_level_key_and_empty_steps():
    doc = sample()
    doc["stepz"] = []
    doc["steps"] = []
    message = error_of(doc)
    assert "stepz: unexpected key 'stepz'" in message
    assert "steps: [] should be non-empty" in message


def test_all_problems_are_reported_together():
    doc = sample()
    body(doc)[1]["value"] = "tokens"
    del doc["steps"][LOOP]["max_steps"]
    with pytest.raises(WorkflowValidationError) as info:
        load_workflow(doc)
    # Structure errors come first (the names pass needs a well-formed file).
    assert [p for p, _ in info.value.errors] == ["steps[7]"]
    del body(doc)[1]["value"]
    doc["steps"][LOOP]["max_steps"] = 5
    doc["steps"][0]["op"] = "nope"
    with pytest.raises(WorkflowValidationError) as info:
        load_workflow(doc)
    assert {p for p, _ in info.value.errors} >= {"steps[0].op", "steps[7].body[1]"}


def test_unreadable_file(tmp_path):
    assert "cannot read workflow" in error_of(str(tmp_path / "missing.json"))


@pytest.mark.parametrize("name", ["text_generation_stream_u32", "multi_turn_chat_u32"])
def test_shipped_window_inputs_use_the_runners_bound(name):
    # JSON cannot import the bound: the shipped files state it, and must state the same one.
    assert load_workflow(sample_path(name)).inputs["window"].maximum == MAX_WINDOW
