"""The command line, run as `python -m foundry_channels` in a subprocess."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys

import pytest

import foundry_channels as fc
from foundry_channels.lm import builtin_table, detokenize, encode_prompt, reference_generate
from foundry_channels.workflow import sample_path

PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(fc.__file__)))
SAMPLE = sample_path()


def env() -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = PACKAGE_PARENT + os.pathsep + e.get("PYTHONPATH", "")
    return e


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "foundry_channels", *args], capture_output=True,
                          text=True, env=env(), timeout=timeout)


@pytest.mark.parametrize("args", [[], ["run"], ["demo"], ["stream"], ["backends"]])
def test_help_everywhere(args):
    result = cli(*args, "--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: foundry-channels")
    assert "--help" in result.stdout


@pytest.mark.parametrize("args, message", [
    ([], "the following arguments are required: COMMAND"),
    (["fly"], "invalid choice: 'fly'"),
    (["run"], "the following arguments are required: WORKFLOW.json"),
    (["demo", "--window", "0"], "argument --window: must be at least 1, got 0"),
    (["demo", "--seed", "abc"], "argument --seed: expected an integer, got 'abc'"),
    (["demo", "--seed", "-1"], "argument --seed: -1 is outside 0..4294967295"),
    (["demo", "--device", "gpu"], "argument --device: expected cpu, cuda, cuda:N or metal"),
    (["demo", "--max-tokens", "70000"], "input 'max_tokens': 70000 is outside 1..65000"),
    (["demo", "--bogus"], "unrecognized arguments: --bogus"),
    (["run", "missing.json"], "cannot read workflow"),
    (["run", SAMPLE, "--input", "seed"], "expected NAME=VALUE, got 'seed'"),
    (["run", SAMPLE, "--input", "temperature=1"], "has no input 'temperature'"),
    (["stream", "--capacity", "1000"], "--capacity: expected a power of two"),
])
def test_bad_arguments_give_one_line_and_exit_2(args, message):
    result = cli(*args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0] and "error" in lines[0]
    assert result.stdout == ""


def test_invalid_workflow_file_is_one_line_with_position(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"steps": [\n  {"op": "lm_load",, "out": "m"}]}')
    result = cli("run", str(bad))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "line 2, column 20" in result.stderr
    doc = json.load(open(SAMPLE))
    doc["steps"][7]["body"][1]["value"] = "tokens"
    bad.write_text(json.dumps(doc))
    result = cli("run", str(bad))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "steps[7].body[1].value (stream_write_u32): wrong value kind" in result.stderr


def test_unavailable_backend_is_a_usage_error():
    missing = [b for b, reason in fc.backend_status().items() if reason]
    if not missing:
        pytest.skip("every backend is available here")
    result = cli("demo", "--device", missing[0])
    assert result.returncode == 2 and "not available" in result.stderr
    assert result.stderr.count("\n") == 1


def test_run_json_outputs_the_reference_tokens():
    result = cli("run", SAMPLE, "--max-tokens", "40", "--seed", "2", "--window", "4",
                 "--prompt", "Four score", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    expected, _ = reference_generate(builtin_table(), encode_prompt("Four score"), 2, 40)
    assert data["outputs"]["generated_tokens"] == expected
    assert data["outputs"]["text"] == detokenize(expected)
    (loop,) = data["loops"]
    assert {k: loop[k] for k in ("steps", "windows", "replays", "stop_flag", "mode", "delivered")} == {
        "steps": 40, "windows": 10, "replays": 9, "stop_flag": 0, "mode": "throughput", "delivered": 40}
    assert data["workflow"] == "text_generation_stream_u32"


def test_run_prints_outputs_for_people():
    result = cli("run", SAMPLE, "--max-tokens", "10", "--input", "seed=5")
    assert result.returncode == 0, result.stderr
    expected, _ = reference_generate(builtin_table(), encode_prompt("We hold these truths"), 5, 10)
    assert f"generated_tokens: {expected}" in result.stdout
    assert "text: " + detokenize(expected) in result.stdout


def test_demo_prints_the_generated_text_and_a_summary():
    result = cli("demo", "--max-tokens", "120", "--seed", "6", "--window", "8")
    assert result.returncode == 0, result.stderr
    expected, flag = reference_generate(builtin_table(), encode_prompt("We hold these truths"), 6, 120)
    assert result.stdout.startswith("We hold these truths" + detokenize(expected) + "\n")
    summary = result.stdout.strip().splitlines()[-1]
    assert f"{len(expected)} tokens in" in summary and "tokens/s" in summary
    assert "window 8" in summary and "backend cpu" in summary
    assert "\x1b[" not in result.stdout  # no status line escapes when stdout is not a terminal


def test_demo_live_status_line_on_a_terminal():
    controller, terminal = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "foundry_channels", "demo", "--max-tokens", "64",
                             "--window", "16", "--seed", "2"], stdout=terminal, stderr=terminal,
                            env=env())
    os.close(terminal)
    chunks = []
    while True:
        try:
            data = os.read(controller, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=60) == 0
    os.close(controller)
    out = b"".join(chunks).decode("utf-8", "replace")
    assert "tok/s | interactive | window 16 | cpu" in out  # the live status line
    assert "\x1b[2K" in out  # redrawn in place
    assert "64 tokens in" in out


def test_stream_demo_summary():
    result = cli("stream", "--items", "5000", "--capacity", "1024")
    assert result.returncode == 0, result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    fields = dict(part.strip().split(" ", 1) for part in summary.split(",")[:2])
    received, dropped = int(fields["items"]), int(fields["dropped"])
    assert received + dropped == 5000 and received >= 1024
    assert "items/s" in summary and "in order: yes" in summary and "backend cpu" in summary
    assert result.stdout.startswith("received ")


def test_backends_lists_cpu():
    result = cli("backends")
    assert result.returncode == 0
    assert result.stdout.splitlines()[0].split() == ["cpu", "available"]
