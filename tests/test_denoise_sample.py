"""The previews sample (issue 11): an iterative device loop pushes a preview record from inside
each step's kernel, all steps in one command buffer, while the CPU reads them.

The streamed previews are checked against a per-step-synchronised run (one command buffer per
step, the image read back after each): equal bit for bit, since the kernels compute in integers
(csrc/kernels/denoise_kernels.inc). No test asserts a time."""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest

from foundry_channels.samples import denoise


def collect(device, steps, seed, **kw):
    got: list[tuple[int, np.ndarray]] = []
    result = denoise.run(device, steps, seed, lambda step, image: got.append((step, image)), **kw)
    return result, got


# (width, height): one thread per word (45 words), and more words than a step has threads
# (4800 > 1024: each thread writes several words of the record before the last one commits).
@pytest.mark.parametrize("width, height", [(64, 64), (5, 3), (40, 40)])
def test_streamed_previews_equal_the_state_after_each_step(device, width, height):
    steps, seed = 12, 1234
    result, got = collect(device, steps, seed, width=width, height=height)
    reference = denoise.run_stepwise(device, steps, seed, width=width, height=height)
    assert [step for step, _ in got] == list(range(steps))
    assert result.previews == steps and result.dropped == 0
    for (step, preview), state in zip(got, reference):
        assert preview.dtype == np.float32 and preview.shape == (height, width, 3)
        assert np.array_equal(preview, state), f"step {step}"
    assert np.array_equal(result.image, got[-1][1])  # the final image is the last preview


def test_a_small_ring_drops_whole_previews_and_never_mixes_them(device):
    steps = 40
    result, got = collect(device, steps, 5, capacity=4)
    reference = denoise.run_stepwise(device, steps, 5)
    assert result.previews + result.dropped == steps
    assert got[-1][0] == steps - 1  # the last preview always stays readable
    for step, preview in got:
        assert np.array_equal(preview, reference[step]), f"step {step}"


def test_the_loop_starts_from_the_seed_and_lands_on_the_target(cpu_device):
    a, got_a = collect(cpu_device, 8, 1)
    b, got_b = collect(cpu_device, 8, 2)
    again, _ = collect(cpu_device, 8, 1)
    assert np.array_equal(a.image, again.image)  # deterministic
    assert not np.array_equal(got_a[0][1], got_b[0][1])  # the noise depends on the seed
    assert np.array_equal(a.image, b.image)  # the last step reaches the target exactly
    image = a.image
    assert image.min() >= 0.0 and image.max() < 1.0
    assert image[0, 0, 0] == 0.0 and image[0, -1, 0] == np.float32(65535 / 65536)  # red ramp
    # the previews approach the target step by step
    errors = [float(np.abs(p - image).mean()) for _, p in got_a]
    assert errors == sorted(errors, reverse=True) and errors[-1] == 0.0


@pytest.mark.parametrize("kwargs, message", [
    ({"steps": 0}, "steps must be in 1..100000, got 0"),
    ({"seed": -1}, "seed must be in 0..4294967295, got -1"),
    ({"steps": True}, "steps must be an int"),
    ({"width": 5000}, "width must be in 1..4096"),
])
def test_bad_arguments_raise_one_clear_line(cpu_device, kwargs, message):
    args = {"steps": 4, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=message) as info:
        denoise.run(cpu_device, **args)
    assert "\n" not in str(info.value)


# ---- CLI --------------------------------------------------------------------------------------


def cli(*args: str) -> subprocess.CompletedProcess:
    from test_cli import cli as run_cli

    return run_cli(*args)


def test_cli_json_summary_and_png_files(tmp_path):
    pytest.importorskip("PIL", reason="Pillow (the test extra) writes the PNG files")
    from PIL import Image

    out = tmp_path / "previews"
    result = cli("denoise", "--steps", "6", "--seed", "9", "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["steps"] == 6 and summary["previews"] == 6 and summary["dropped"] == 0
    assert summary["backend"] == "cpu" and summary["preview_files"] == 6
    assert sorted(os.listdir(out)) == ["final.png"] + [f"preview_{i:04d}.png" for i in range(1, 7)]
    assert summary["final_png"] == str(out / "final.png")
    final = np.asarray(Image.open(out / "final.png"))
    assert final.shape == (64, 64, 3) and final.dtype == np.uint8
    assert np.array_equal(final, np.asarray(Image.open(out / "preview_0006.png")))


def test_cli_without_png_needs_no_pillow(tmp_path):
    result = cli("denoise", "--steps", "3", "--size", "8", "--no-png", "--json",
                 "--out", str(tmp_path / "unused"))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["preview_files"] == 0 and summary["out"] is None
    assert not (tmp_path / "unused").exists()


def test_cli_says_clearly_when_pillow_is_missing(tmp_path, capsys, monkeypatch):
    from test_cli import cli_in_process

    monkeypatch.setitem(__import__("sys").modules, "PIL", None)  # import PIL now fails
    result = cli_in_process(capsys, "denoise", "--steps", "2", "--out", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "needs Pillow" in result.stderr and "--no-png" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["--steps", "0"], "argument --steps: 0 is outside 1..100000"),
    (["--seed", "-1"], "argument --seed: -1 is outside 0..4294967295"),
    (["--size", "0"], "argument --size: 0 is outside 1..4096"),
])
def test_cli_bad_arguments_give_one_line_and_exit_2(capsys, args, message):
    from test_cli import cli_in_process

    result = cli_in_process(capsys, "denoise", *args)
    assert result.returncode == 2 and message in result.stderr and result.stderr.count("\n") == 1


def test_cli_output_folder_that_is_a_file(tmp_path, capsys):
    pytest.importorskip("PIL")
    from test_cli import cli_in_process

    path = tmp_path / "a_file"
    path.write_text("x")
    result = cli_in_process(capsys, "denoise", "--steps", "2", "--out", str(path))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "exists and is not a folder" in result.stderr
