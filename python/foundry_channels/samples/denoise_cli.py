"""`foundry-channels denoise`: the previews sample (samples/denoise.py) on the command line:
a progress bar with steps/s while the previews stream in, each preview and the final image
written as PNG files (Pillow: the `images` extra), and a --json summary.

Registered by cli.py (add_command); this module does not import cli.py (cli.py imports it),
so it reports its own errors: one line on stderr, exit code 2 for bad input, 1 for a failed run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from typing import Callable, Optional

from .._cli_args import int_in

EXIT_FAILED = 1
EXIT_USAGE = 2
PNG_EXTRA = "pip install 'foundry-channels[images]'"


class _BadInput(Exception):
    """Found before anything runs: one line, exit code 2."""


def add_command(sub, add_device: Callable[[argparse.ArgumentParser], None]) -> None:
    """Adds the `denoise` subcommand to cli.py's subparsers (add_device: cli's --device)."""
    from .denoise import MAX_SIDE, MAX_STEPS

    p = sub.add_parser("denoise", help="streaming previews from an iterative device loop",
                       description="Run a toy iterative denoiser on the device (all steps in "
                                   "one command buffer); each step pushes a preview that the "
                                   "CPU writes as a PNG while the later steps run.")
    add_device(p)
    p.add_argument("--steps", type=int_in(1, MAX_STEPS), default=50, metavar="N",
                   help="denoising steps (default 50)")
    p.add_argument("--seed", type=int_in(0, 0xFFFFFFFF), default=0, metavar="S",
                   help="noise seed, 0..2^32-1 (default 0)")
    p.add_argument("--size", type=int_in(1, MAX_SIDE), default=64, metavar="PX",
                   help="image width and height in pixels (default 64)")
    p.add_argument("--out", default="denoise_previews", metavar="DIR",
                   help="where the PNG files go (preview_0001.png ..., final.png; created if "
                        "missing; default ./denoise_previews)")
    p.add_argument("--no-png", action="store_true", help="write no files (no Pillow needed)")
    p.add_argument("--json", action="store_true", help="print one JSON summary (no progress bar)")
    p.set_defaults(handler=_handle)


def _handle(args) -> int:
    try:
        return _run(args)
    except _BadInput as e:  # cli.py words its usage errors the same way
        print(f"foundry-channels denoise: error: {e}", file=sys.stderr)
        return EXIT_USAGE


def _png_writer(args) -> Optional[Callable]:
    """Pillow's PNG writer with the output folder ready, or None for --no-png; _BadInput
    when Pillow is missing or --out cannot be a folder (checked before the run)."""
    if args.no_png:
        return None
    try:
        from PIL import Image
    except ImportError:
        raise _BadInput(f"writing PNG files needs Pillow, which is not installed: {PNG_EXTRA} "
                        "(or pass --no-png)") from None
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise _BadInput(f"--out {args.out}: exists and is not a folder")
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as e:
        raise _BadInput(f"--out {args.out}: {e.strerror}") from None

    def write(name: str, image) -> str:
        import numpy as np

        path = os.path.join(args.out, name)
        pixels = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)  # [0, 1) -> 0..255
        Image.fromarray(pixels, "RGB").save(path)
        return path

    return write


class _Progress:
    """A one-line progress bar with steps/s on stderr, redrawn at most 20 times a second."""

    WIDTH = 30

    def __init__(self, steps: int, live: bool) -> None:
        self.steps, self.live = steps, live
        self.start = time.perf_counter()
        self.drawn_at = 0.0

    def update(self, done: int, final: bool = False) -> None:
        now = time.perf_counter() - self.start
        if not self.live or (not final and now - self.drawn_at < 0.05):
            return
        self.drawn_at = now
        filled = self.WIDTH * done // self.steps
        rate = done / now if now > 0 else 0.0
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (self.WIDTH - filled)}] {done}/{self.steps} "
                         f"steps  {rate:,.1f} steps/s" + ("\n" if final else ""))
        sys.stderr.flush()


def _run(args) -> int:
    import foundry_channels as fc

    from . import denoise

    write_png = _png_writer(args)
    try:
        device = fc.Device(args.device)
    except fc.BackendUnavailableError as e:
        raise _BadInput(f"--device {args.device}: {e}") from None
    files: list[str] = []
    progress = _Progress(args.steps, live=not args.json and sys.stderr.isatty())

    def on_preview(step: int, image) -> None:  # each step's image while later steps run
        if write_png is not None:
            files.append(write_png(f"preview_{step + 1:04d}.png", image))
        progress.update(step + 1)

    try:
        result = denoise.run(device, args.steps, args.seed, on_preview, width=args.size,
                             height=args.size)
    finally:
        device.close()
    progress.update(args.steps, final=True)
    final_png = write_png("final.png", result.image) if write_png is not None else None
    summary = {"steps": result.steps, "seed": args.seed, "size": args.size,
               "backend": result.backend, "previews": result.previews,
               "dropped": result.dropped, "seconds": round(result.seconds, 6),
               "steps_per_second": round(result.steps_per_second, 3),
               # the same seed gives the same image on every backend: compare this
               "final_sha256": hashlib.sha256(result.image.tobytes()).hexdigest(),
               "out": args.out if write_png is not None else None,
               "preview_files": len(files), "final_png": final_png}
    if args.json:
        print(json.dumps(summary))
    else:
        where = f", PNG files in {args.out}" if write_png is not None else ""
        print(f"{result.steps} steps in {result.seconds:.3f} s "
              f"({result.steps_per_second:,.1f} steps/s), {result.previews} previews, "
              f"{result.dropped} dropped, backend {result.backend}{where}")
    return 0
