"""The command line, run as `python -m foundry_channels` in a subprocess."""

from __future__ import annotations

import json
import re
import os
import pty
import signal
import subprocess
import sys
import textwrap

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


def cli_in_process(capsys, *args: str) -> subprocess.CompletedProcess:
    """cli() without a new interpreter (main() is what `python -m foundry_channels` runs):
    for the many quick usage-error cases."""
    from foundry_channels.cli import main

    try:
        rc = main(list(args))
    except SystemExit as e:  # argparse's own errors and --help
        rc = e.code
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, rc, out, err)


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
    (["demo", "--window", "0"], "argument --window: 0 is outside 1..4294967295"),
    (["demo", "--max-tokens", "-5"], "argument --max-tokens: -5 is outside 1..4294967295"),
    (["demo", "--prompt", "a", "--prompt-file", "p.txt"], "not allowed with argument --prompt"),
    (["demo", "--prompt-file", "missing.txt"], "--prompt-file missing.txt: No such file"),
    (["demo", "--prompt", b"We \xff".decode("utf-8", "surrogateescape")],
     "input 'prompt': not UTF-8 text: undecodable character '\\udcff' at position 3"),
    (["demo", "--seed", "abc"], "argument --seed: expected an integer, got 'abc'"),
    (["demo", "--seed", "-1"], "argument --seed: -1 is outside 0..4294967295"),
    (["demo", "--device", "gpu"], "argument --device: expected cpu, cuda, cuda:N or metal"),
    (["demo", "--max-tokens", "70000"], "input 'max_tokens': 70000 is outside 1..65000"),
    (["demo", "--bogus"], "unrecognized arguments: --bogus"),
    (["run", "missing.json"], "cannot read workflow"),
    (["run", SAMPLE, "--input", "seed"], "expected NAME=VALUE, got 'seed'"),
    (["run", SAMPLE, "--input", "temperature=1"], "has no input 'temperature'"),
    (["stream", "--capacity", "1000"], "--capacity: must be a power of two from 1 to 67108864"),
    (["stream", "--capacity", str(2 ** 27)], "--capacity: must be a power of two from 1 to 67108864"),
])
def test_bad_arguments_give_one_line_and_exit_2(args, message, capsys):
    result = cli_in_process(capsys, *args)
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


def test_workflow_file_that_is_not_utf8(tmp_path):
    bad = tmp_path / "latin1.json"
    bad.write_bytes(b'{"name": "caf\xe9", "steps": []}')
    result = cli("run", str(bad))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert f"{bad}: not UTF-8 text: byte 0xe9 at line 1, column 14" in result.stderr


def test_prompt_file_that_is_not_utf8(tmp_path):
    bad = tmp_path / "prompt.txt"
    bad.write_bytes(b"line one\nab\xffc")
    result = cli("run", SAMPLE, "--prompt-file", str(bad))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert f"--prompt-file {bad}: not UTF-8 text: byte 0xff at line 2, column 3" in result.stderr


def test_version():
    result = cli("--version")
    assert result.returncode == 0 and result.stdout == f"foundry-channels {fc.__version__}\n"


def test_a_prompt_too_long_for_the_history_says_why_nothing_was_generated(tmp_path):
    # A 1 MB prompt cannot pass argv; the history (65536 tokens) cannot hold it either: the
    # run ends at once, and the human output says so instead of printing nothing.
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("We hold these truths. " * 50_000)
    result = cli("run", SAMPLE, "--prompt-file", str(prompt))
    assert result.returncode == 0, result.stderr
    assert "generated_tokens: []" in result.stdout
    # how many steps ran before the flag was seen depends on the windows in flight, not a token
    assert re.search(r"\(loop 1: 0 tokens in \d+ steps, stopped by history full\)", result.stderr)
    result = cli("run", SAMPLE, "--prompt-file", str(prompt), "--json")
    assert json.loads(result.stdout)["loops"][0]["stop_reason"] == "history full"


# Runs the CLI as `python -m foundry_channels` does, after installing an import hook that
# delivers a real SIGINT when the named module is first imported: a Ctrl-C at a known point.
INTERRUPT_AT_IMPORT = textwrap.dedent("""
    import runpy, signal, sys

    module = sys.argv[1]

    class Interrupt:
        def find_spec(self, name, path=None, target=None):
            if name == module:
                signal.raise_signal(signal.SIGINT)
            return None

    sys.meta_path.insert(0, Interrupt())
    sys.argv = ["foundry-channels", *sys.argv[2:]]
    runpy.run_module("foundry_channels", run_name="__main__", alter_sys=True)
""")


def default_sigint() -> None:
    """preexec_fn: a process started in the background inherits SIGINT ignored, and Python
    then installs no KeyboardInterrupt handler; a terminal's Ctrl-C finds it at its default."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("module, args", [
    # while the parser is built (the first ~0.3 s of any command): a traceback
    ("jsonschema", ["backends"]),
    # inside numpy's C initialisation, which turned the KeyboardInterrupt into an ImportError
    ("datetime", ["backends"]),
    ("foundry_channels.lm", ["demo", "--max-tokens", "5"]),  # a module a command needs
])
def test_ctrl_c_at_start_up_is_one_line_and_exit_130(tmp_path, module, args):
    hook = tmp_path / "interrupt.py"
    hook.write_text(INTERRUPT_AT_IMPORT)
    result = subprocess.run([sys.executable, str(hook), module, *args], capture_output=True,
                            text=True, env=env(), timeout=120, preexec_fn=default_sigint)
    assert result.returncode == 130
    assert result.stderr == "foundry-channels: interrupted\n"


def test_ctrl_c_while_generating(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "foundry_channels", "demo", "--max-tokens",
                             "65000", "--window", "1"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env(), preexec_fn=default_sigint)
    prompt = b"We hold these truths"
    out = b""
    while len(out) <= len(prompt):  # the prompt, then the first generated text
        chunk = proc.stdout.read1(4096)
        assert chunk, proc.communicate(timeout=60)  # ended before generating anything
        out += chunk
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    lines = err.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("interrupted after ")


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


def test_stream_is_lossless_by_default():
    # The README's example: the default capacity holds every item (it dropped 97-99% with a
    # capacity of 1024 on cpu, where the device thread outruns the printing reader).
    result = cli("stream", "--items", "100000")
    assert result.returncode == 0, result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.startswith("items 100000, dropped 0,") and "capacity 131072" in summary


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
