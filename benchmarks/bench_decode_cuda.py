"""Per-step sync versus channels on a CUDA GPU (not a test: prints a table, writes JSON).

A decode-like loop of N steps; each step is a %globaltimer spin of 2, 10 or 30 us that writes
its token. Variants, all on the same card in the same run:
  (a) sync    launch the step, cudaStreamSynchronize, read the token (what channels remove)
  (b) stream  step + push kernel launched per step; a reader thread drains concurrently
  (c) graph   windows of 64 steps+pushes captured as a CUDA graph; reader draining
  (c') fork   as (c), but each push is a side branch of the graph (after its step and the
              previous push; the next step does not wait for it), tokens in a history buffer
  (c'') fused as (c), but the step kernel pushes its own token through the shared push body
              (no separate push kernel: how an engine's sampler kernel would stream)
  (d) none    graphs of 64 steps, no streaming (the upper bound)
plus visibility latency (token write on the GPU -> arrival in the reader; %globaltimer beside
the token, clock offset from ping-pong round trips, bounded by `clock_err`), the GPU-timeline
cost of one push, a GPU->CPU->GPU ping-pong (raw mapped words vs through a channel), and a
torch decode loop of a tiny random model: per-token .item() versus channel streaming.

    python benchmarks/bench_decode_cuda.py [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import threading
import time

import numpy as np

import foundry_channels as fc
from foundry_channels import _core

import native_instruments
from results_io import default_path, write_json  # noqa: E402

VARIANTS = ("sync", "stream", "graph", "fork", "fused", "none")
LABEL = {"sync": "(a) per-step sync", "stream": "(b) channel, per-step launch",
         "graph": "(c) channel, graph x64", "fork": "(c') graph x64, push beside",
         "fused": "(c'') graph x64, push in step",
         "none": "(d) no streaming"}


def decode_table(dev, step_us_list, quick):
    rows = []
    for step_us in step_us_list:
        steps = 64 * (64 if quick else max(40, int(40_000 / (step_us + 3)) // 64))
        results = {}
        for variant in VARIANTS:
            _core.cuda_bench_decode(dev, variant, 64 * 8, step_us * 1000, 64)  # warm-up
            runs = [_core.cuda_bench_decode(dev, variant, steps, step_us * 1000, 64)
                    for _ in range(1 if quick else 3)]
            us = statistics.median(r["us_per_token"] for r in runs)
            lat = np.concatenate([np.asarray(r["latency_us"]) for r in runs]) if runs[0]["latency_us"] else None
            results[variant] = {
                "us_per_token": us,
                "tokens_ok": all(r["tokens_ok"] for r in runs),
                "dropped": sum(r["dropped"] for r in runs),
                "latency_p50_us": float(np.percentile(lat, 50)) if lat is not None else None,
                "latency_p99_us": float(np.percentile(lat, 99)) if lat is not None else None,
                "clock_error_us": max(r["clock_error_us"] for r in runs),
                "steps": steps,
            }
        for variant in VARIANTS:
            r = results[variant]
            r["vs_none"] = r["us_per_token"] / results["none"]["us_per_token"]
            r["speedup_vs_sync"] = results["sync"]["us_per_token"] / r["us_per_token"]
            rows.append({"step_us": step_us, "variant": variant, **r})
    return rows


def torch_decode(dev, steps):
    try:
        import torch
    except ImportError:
        return None
    torch.manual_seed(0)
    vocab, dim = 256, 256
    model = torch.nn.Sequential(torch.nn.Embedding(vocab, dim), torch.nn.Linear(dim, dim),
                                torch.nn.GELU(), torch.nn.Linear(dim, vocab)).cuda().eval()

    def step(tok):
        return model(tok)[0].argmax().reshape(1)

    out = {}
    with torch.no_grad():
        tok = torch.tensor([1], device="cuda")
        for _ in range(20):
            tok = step(tok)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        items = []
        for _ in range(steps):
            tok = step(tok)
            items.append(tok.item())  # a sync per token
        out["item_per_token_tok_s"] = steps / (time.perf_counter() - t0)

        ch = fc.ChannelU32(dev, 1 << 16)
        cb = dev.new_queue().command_buffer()
        cb.channel_init(ch)
        cb.commit()
        cb.wait_until_completed(timeout=30)
        reader = ch.reader()
        got = []

        def drain(n):
            # A consumer that wakes every 0.5 ms and takes what arrived: waking per token
            # would fight the decode loop for the GIL.
            buf = np.empty(4096, dtype=np.uint32)
            while len(got) < n and reader.wait(timeout=30) == "ready":
                time.sleep(0.0005)
                k = reader.drain_into(buf)
                got.extend(buf[:k].tolist())

        th = threading.Thread(target=drain, args=(steps,))
        th.start()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(steps):
            tok = step(tok)
            fc.stream_write(ch, tok)
        th.join()
        out["channel_tok_s"] = steps / (time.perf_counter() - t0)
        out["channel_tokens_ok"] = len(got) == steps

        # the step captured in a CUDA graph, 16 steps per graph, pushes inside
        static = tok.clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                static.copy_(step(static))
        torch.cuda.current_stream().wait_stream(side)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            for _ in range(16):
                nxt = step(static)
                fc.stream_write(ch, nxt)
                static.copy_(nxt)
        torch.cuda.synchronize()
        got.clear()
        th = threading.Thread(target=drain, args=(steps // 16 * 16,))
        th.start()
        t0 = time.perf_counter()
        for _ in range(steps // 16):
            g.replay()
        th.join()
        out["channel_graph16_tok_s"] = (steps // 16 * 16) / (time.perf_counter() - t0)
        out["channel_graph_tokens_ok"] = len(got) == steps // 16 * 16
    return out


def main(argv=None):
    native_instruments.require()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps (smoke run)")
    ap.add_argument("--json", default=default_path("bench_decode_cuda"))
    args = ap.parse_args(argv)
    reason = fc.backend_status()["cuda"]
    if reason:
        print(f"cuda not available: {reason}", file=sys.stderr)
        return 2
    dev = fc.Device("cuda")
    result = {"card": dev.name, "date": datetime.date.today().isoformat()}
    result["push_cost"] = _core.cuda_bench_push_cost(dev, 20_000 if args.quick else 200_000)
    result["ping_pong"] = _core.cuda_bench_ping_pong(dev, 2000 if args.quick else 20_000)
    result["decode"] = decode_table(dev, (2, 10, 30), args.quick)
    result["torch_decode"] = torch_decode(dev, 500 if args.quick else 3000)
    dev.close()

    print(f"card: {result['card']}   date: {result['date']}")
    pc, pp = result["push_cost"], result["ping_pong"]
    print(f"push cost: {pc['in_kernel_ns']:.0f} ns inside a kernel; {pc['graph_launch_us']:.2f} us "
          f"as its own kernel in a graph; %globaltimer resolution {pc['timer_resolution_ns']:.0f} ns")
    print(f"ping-pong GPU->CPU->GPU: raw mapped words {pp['raw_us']:.2f} us, "
          f"through a channel {pp['channel_us']:.2f} us")
    print(f"{'step':>5} {'variant':<30} {'us/token':>9} {'vs (d)':>7} {'vs (a)':>7} "
          f"{'lat p50':>8} {'lat p99':>8} {'clk err':>7} ok")
    for r in result["decode"]:
        lat = (f"{r['latency_p50_us']:8.2f} {r['latency_p99_us']:8.2f} {r['clock_error_us']:7.2f}"
               if r["latency_p50_us"] is not None else f"{'-':>8} {'-':>8} {'-':>7}")
        print(f"{r['step_us']:>4}u {LABEL[r['variant']]:<30} {r['us_per_token']:9.2f} "
              f"{r['vs_none']:7.3f} {r['speedup_vs_sync']:6.2f}x {lat} {r['tokens_ok']}")
    td = result["torch_decode"]
    if td:
        print(f"torch tiny-model decode: .item() per token {td['item_per_token_tok_s']:.0f} tok/s; "
              f"channel {td['channel_tok_s']:.0f} tok/s (ok={td['channel_tokens_ok']}); "
              f"channel + graph of 16 steps {td['channel_graph16_tok_s']:.0f} tok/s "
              f"(ok={td['channel_graph_tokens_ok']})")
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
