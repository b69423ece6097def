"""The streaming runner end to end (issue: streaming runner): time to first token, tokens/s,
inter-token latency (p50/p99) and the runner thread's CPU use, for windows 1, 4, 16, 64 in
each mode, against the per-step-sync baseline and the no-streaming upper bound.

  per-step sync   windowed mode, window 1: commit one step, wait for it, read its token
  windowed W      tokens per completed window (the plan's on_token path), no pipelining
  throughput W    channel drained while windows of W run back to back (2 in flight)
  interactive W   channel drained; windows grow 1, 2, 4, ... up to W
  ... fused       the decode step kernel pushes its token itself (lm_decode_step `stream`)
  no streaming    the same decode loop without the channel push: windows of 64 replayed back
                  to back (throughput machinery, nothing pushed, nothing drained) - the
                  upper bound the streaming modes are measured against

us/token is the steady state: the Python time to encode each window size the first time
(once per run; replays encode nothing) is excluded there and reported as encode_ms; the time
to first token (TTFT) includes it.

The sample workflow runs with an EOS that never occurs, so every run makes exactly N tokens.
Prints a table per backend and writes benchmarks/results/bench_runner.json.

    python benchmarks/bench_runner.py [--device cpu cuda] [--tokens N]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

import foundry_channels as fc
from foundry_channels.workflow import load_workflow, register_op, run_workflow, sample_path
from foundry_channels.workflow.registry import Arg
from results_io import default_path, write_json  # noqa: E402

NEVER = 256  # tokens are bytes: an EOS of 256 is never sampled


@register_op("bench_push_removed", args={"channel": Arg(("channel",)), "stop": Arg(("tensor",))})
def _bench_push_removed(ctx, args, step):
    """The sample's push with the push taken out, for the no-streaming upper bound: the
    loader requires a streaming loop's body to push into its stream, so this op stands in
    for stream_write_u32 (same arguments) and encodes nothing."""


def sample_without_eos(push="kernel"):
    """push: "kernel" (the sample: a stream_write_u32 dispatch per step), "fused" (the decode
    step pushes its own token: lm_decode_step's `stream`) or "none" (no streaming)."""
    doc = json.loads(Path(sample_path("text_generation_stream_u32")).read_text())
    doc["values"]["eos_token"]["value"] = NEVER
    doc["inputs"]["max_tokens"]["maximum"] = 65000
    loop = next(s for s in doc["steps"] if s["op"] == "while_batched")
    if push == "fused":
        loop["body"] = [dict(loop["body"][0], stream="tokens")]
    elif push == "none":
        loop["body"][1] = {"op": "bench_push_removed", "channel": "tokens", "stop": "stop"}
    return load_workflow(doc)


def measure(workflow, device, mode, window, n_tokens, seed=1, streaming=True):
    stamps = []
    inputs = {"prompt": "We hold these truths", "max_tokens": n_tokens, "window": window, "seed": seed}
    run = run_workflow(workflow, device, inputs=inputs, mode=mode,
                       on_token=lambda t: stamps.append(time.perf_counter()))
    loop = run.loops[-1]
    generated = run.outputs["generated_tokens"].tolist()
    run.context.close()
    assert len(generated) == n_tokens, len(generated)
    assert len(stamps) == (n_tokens if streaming else 0), len(stamps)
    # Steady state: first-time encoding of each window size (Python, once per run) is left
    # out of us/token; it is part of the time to first token, reported on its own.
    loop_s = loop.reports[-1].elapsed_s - loop.encode_s
    gaps_us = np.diff(np.array(stamps)) * 1e6 if streaming else np.zeros(1)
    first_s = loop.first_token_s if loop.first_token_s is not None else loop.reports[0].elapsed_s
    return {
        "mode": mode, "window": window, "tokens": n_tokens,
        "tokens_per_s": n_tokens / loop_s,
        "us_per_token": loop_s / n_tokens * 1e6,
        "ttft_ms": first_s * 1e3,
        "itl_p50_us": float(np.percentile(gaps_us, 50)),
        "itl_p99_us": float(np.percentile(gaps_us, 99)),
        # the runner thread's CPU time over the loop's wall time (encoding, waits, polling)
        "runner_cpu_per_wall": loop.cpu_s / loop.reports[-1].elapsed_s,
        "windows": loop.windows,
        "encode_ms": loop.encode_s * 1e3,
    }


def bench_backend(backend, n_tokens, windows, repeats):
    device = fc.Device(backend)
    workflow = sample_without_eos()
    without_push = sample_without_eos(push="none")
    fused = sample_without_eos(push="fused")
    rows = []

    def best(mode, window, wf=workflow, streaming=True):
        runs = [measure(wf, device, mode, window, n_tokens, streaming=streaming) for _ in range(repeats)]
        return min(runs, key=lambda r: r["us_per_token"])

    measure(workflow, device, "throughput", 16, 64)  # warm-up: first kernel loads, graphs
    baseline = best("windowed", 1)
    baseline["label"] = "per-step sync"
    upper = best("throughput", 64, without_push, streaming=False)
    upper["label"] = "no streaming"
    rows += [baseline, upper]
    for window in windows:
        for mode in ("windowed", "throughput", "interactive"):
            r = best(mode, window)
            r["label"] = f"{mode} {window}"
            rows.append(r)
    for window in (16, 64):  # the decode kernel pushes its own token (no push dispatch)
        for mode in ("throughput", "interactive"):
            r = best(mode, window, fused)
            r["label"] = f"{mode} {window} fused"
            rows.append(r)
    device_name = device.name
    device.close()
    for r in rows:
        r["vs_sync"] = baseline["us_per_token"] / r["us_per_token"]
        r["vs_upper"] = r["us_per_token"] / upper["us_per_token"]
    return device_name, rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", nargs="+", default=None, help="backends (default: every available)")
    ap.add_argument("--tokens", type=int, default=1024)
    ap.add_argument("--windows", type=int, nargs="+", default=[1, 4, 16, 64])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=default_path("bench_runner"))
    args = ap.parse_args()
    backends = args.device or fc.available_backends()
    result = {"date": time.strftime("%Y-%m-%d"), "tokens": args.tokens, "python": platform.python_version(),
              "backends": {}}
    for backend in backends:
        name, rows = bench_backend(backend, args.tokens, args.windows, args.repeats)
        result["backends"][backend] = {"device": name, "rows": rows}
        print(f"\n{backend}: {name}, {args.tokens} tokens per run, best of {args.repeats}")
        print(f"{'variant':>22} | {'us/token':>9} | {'tok/s':>9} | {'TTFT ms':>8} | {'ITL p50 us':>10} | "
              f"{'ITL p99 us':>10} | {'x sync':>6} | {'/ upper':>7} | {'CPU':>5} | {'enc ms':>6}")
        for r in rows:
            print(f"{r['label']:>22} | {r['us_per_token']:>9.2f} | {r['tokens_per_s']:>9.0f} | "
                  f"{r['ttft_ms']:>8.3f} | {r['itl_p50_us']:>10.2f} | {r['itl_p99_us']:>10.2f} | "
                  f"{r['vs_sync']:>6.2f} | {r['vs_upper']:>7.3f} | {r['runner_cpu_per_wall'] * 100:>4.0f}% | "
                  f"{r['encode_ms']:>6.2f}")
    write_json(args.out, result)


if __name__ == "__main__":
    main()
