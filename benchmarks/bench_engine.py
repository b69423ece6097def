"""Serving engine, in-process (issue 15): can one resident engine serve many streams at once?

Every request asks for `--tokens` tokens (EOS may end one earlier: rates count the tokens
delivered). Measured where a server would see them, by asyncio consumers (`async for piece in
req.stream()` without a timeout, as the server reads them: one event loop, woken through
the engine's notify fd):
  - 1 stream, one request after another: first token (submit -> first piece in the consumer)
    and tokens/s of a request (its tokens over submit -> last piece);
  - 8 and 64 concurrent streams, submitted together: first token p50/p99 over every request
    of every round, and the aggregate tokens/s (all tokens over first submit -> last piece);
  - 64 streams read only once they ended (one piece each): what the engine itself sustains
    when no Python consumer takes a share of the cores (first token: engine-side only).
Targets (issue 15, for HTTP; in-process they tell whether the engine could meet them): on cpu,
64 streams first token p50 <= 10 ms and aggregate >= 8x one stream; on cuda (H200) aggregate
>= 20x one stream and first token p50 <= 2 ms.

    python benchmarks/bench_engine.py [--device cpu|cuda] [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from foundry_channels.serving import Engine
from results_io import write_json  # noqa: E402

TARGETS = {"cpu": {"first_token_p50_ms_64": 10.0, "aggregate_x_64": 8.0},
           "cuda": {"first_token_p50_ms_64": 2.0, "aggregate_x_64": 20.0}}
PROMPTS = ("We hold these truths", "Four score and seven years ago", "The people of",
           "a new nation, conceived in liberty")


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


async def one_request(engine, i, tokens):
    """(first token s, end s, tokens) seen by an asyncio consumer, from submit."""
    start = time.perf_counter()
    request = engine.submit(PROMPTS[i % len(PROMPTS)], max_tokens=tokens, seed=i)
    first = None
    async for piece in request.stream():
        if first is None and len(piece.tokens):
            first = time.perf_counter() - start
    return first, time.perf_counter() - start, request.completion_tokens, request.first_token_s


async def concurrent_round(engine, streams, tokens, seed_base):
    start = time.perf_counter()
    results = await asyncio.gather(*(one_request(engine, seed_base + i, tokens)
                                     for i in range(streams)))
    return results, time.perf_counter() - start


def engine_only(engine, streams, rounds, tokens):
    """`streams` requests at once, each read in one piece after the engine finished it."""
    total, wall, firsts = 0, 0.0, []
    for r in range(rounds):
        start = time.perf_counter()
        requests = [engine.submit(PROMPTS[i % len(PROMPTS)], max_tokens=tokens, seed=r * streams + i)
                    for i in range(streams)]
        for request in requests:
            request.text(timeout=60)
        wall += time.perf_counter() - start
        total += sum(q.completion_tokens for q in requests)
        firsts += [q.first_token_s for q in requests]
    return {"streams": f"{streams}, read at the end", "requests": len(firsts), "tokens": total,
            "first_token_p50_ms": "-", "first_token_p99_ms": "-",
            "engine_first_token_p50_ms": round(percentile(firsts, 50) * 1e3, 3),
            "tokens_per_s": round(total / wall)}


def measure(engine, streams, rounds, tokens):
    firsts, engine_firsts, total_tokens, wall = [], [], 0, 0.0
    if streams == 1:
        per_request_rates = []
        for r in range(rounds):
            first, end, n, engine_first = asyncio.run(one_request(engine, r, tokens))
            firsts.append(first)
            engine_firsts.append(engine_first)
            per_request_rates.append(n / end)
            total_tokens += n
            wall += end
        rate = statistics.median(per_request_rates)
    else:
        for r in range(rounds):
            results, elapsed = asyncio.run(concurrent_round(engine, streams, tokens, r * streams))
            firsts += [f for f, _, _, _ in results]
            engine_firsts += [e for _, _, _, e in results]
            total_tokens += sum(n for _, _, n, _ in results)
            wall += elapsed
        rate = total_tokens / wall
    return {"streams": streams, "requests": len(firsts), "tokens": total_tokens,
            "first_token_p50_ms": round(percentile(firsts, 50) * 1e3, 3),
            "first_token_p99_ms": round(percentile(firsts, 99) * 1e3, 3),
            "engine_first_token_p50_ms": round(percentile(engine_firsts, 50) * 1e3, 3),
            "tokens_per_s": round(rate)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tokens", type=int, default=200, help="max_tokens of every request")
    ap.add_argument("--window", type=int, default=16, help="decode steps per window")
    ap.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / (
        "engine_" + datetime.datetime.now().strftime("%Y%m%d_%H%M%S") + ".json"))
    args = ap.parse_args(argv)
    rounds = {1: 10, 8: 5, 64: 3} if args.quick else {1: 40, 8: 20, 64: 10}
    report = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
              "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cpus, "
                         f"{platform.platform()}", "python": platform.python_version(),
              "device": args.device, "tokens": args.tokens, "window": args.window, "rows": []}
    with Engine(args.device, lanes=64, window=args.window) as engine:
        report["device_name"] = str(engine.device)
        measure(engine, 8, 2, args.tokens)  # warm-up: first windows, caches, the poller
        for streams in (1, 8, 64):
            row = measure(engine, streams, rounds[streams], args.tokens)
            report["rows"].append(row)
            print(row, flush=True)
        report["rows"].append(engine_only(engine, 64, rounds[64], args.tokens))
        print(report["rows"][-1], flush=True)
    one = report["rows"][0]["tokens_per_s"]
    for row in report["rows"]:
        row["aggregate_x"] = round(row["tokens_per_s"] / one, 2)
    backend = args.device.split(":")[0]
    targets = TARGETS.get(backend, {})
    last = report["rows"][2]  # 64 streams read as they arrive
    report["targets"] = targets
    if targets:
        report["met"] = {
            "first_token_p50_ms_64": last["first_token_p50_ms"] <= targets["first_token_p50_ms_64"],
            "aggregate_x_64": last["aggregate_x"] >= targets["aggregate_x_64"]}
    print_table(report)
    write_json(str(args.json), report)
    return 0


COLUMNS = (("streams", "streams"), ("requests", "requests"),
           ("first token p50 ms", "first_token_p50_ms"), ("p99 ms", "first_token_p99_ms"),
           ("engine-side p50 ms", "engine_first_token_p50_ms"), ("tokens/s", "tokens_per_s"),
           ("x one stream", "aggregate_x"))


def print_table(report):
    print(f"\n{report['device_name']} on {report['machine']}, {report['date']}; "
          f"{report['tokens']}-token requests, window {report['window']}\n")
    print("| " + " | ".join(title for title, _ in COLUMNS) + " |")
    print("|" + " --- |" * len(COLUMNS))
    for row in report["rows"]:
        print("| " + " | ".join(str(row[key]) for _, key in COLUMNS) + " |")
    for name, met in (report.get("met") or {}).items():
        print(f"target {name} {report['targets'][name]}: {'met' if met else 'MISSED'}")

if __name__ == "__main__":
    sys.exit(main())
