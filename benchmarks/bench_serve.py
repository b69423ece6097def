"""The server under load on loopback (issue 15): a real `uvicorn --factory
foundry_channels.serve:default_app` process, streamed OpenAI completions from a light asyncio
client (serve_load.py), bounded in requests and in time.

  in-process      first token of Engine.submit() + pieces() in this process (no HTTP)
  http 1 stream   first token over HTTP, one request at a time (the same requests)
  http C burst    C streams sent at once on C open connections, in rounds (a gap between
                  rounds): first token p50/p99 of every stream, aggregate tokens/s over the
                  rounds' durations
  http C loop     C concurrent streams kept busy (closed loop: a client sends its next request
                  when its last one ended): first token p50/p99, aggregate tokens/s
  soak            N requests with random stop strings and random disconnects, 16 at a time;
                  every completed stream must equal the same request run alone in-process
                  (text, each token from the chunks' logprobs, finish_reason, usage), a left
                  stream must be a prefix of it; the server's RSS is sampled as it runs and the
                  engine must end idle (no lane or queued request left)

First token: from sending the request to the first chunk holding text. Requests ask for 200
tokens (the sample model may end a text earlier: the table shows tokens per request).

    python benchmarks/bench_serve.py [--device cpu] [--quick] [--soak N] [--json PATH]
    python benchmarks/bench_serve.py --soak 10000 --only soak
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from serve_load import (completion_body, run_client, run_rounds, run_workers,  # noqa: E402
                        soak, soak_requests)

from foundry_channels.serving import Engine  # noqa: E402
from results_io import default_path, write_json  # noqa: E402

PROMPT = "We hold these truths"
MAX_TOKENS = 200


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q / 100 * len(values)))] if values else float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """uvicorn with the default app in its own process."""

    def __init__(self, device: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, FOUNDRY_SERVE_DEVICE=device)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "foundry_channels.serve:default_app",
             "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning",
             "--no-access-log"], env=env)
        deadline = time.monotonic() + 120
        while True:
            try:
                self.model = httpx.get(f"{self.url}/v1/models", timeout=5).json()["data"][0]["id"]
                return
            except (httpx.HTTPError, OSError):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    raise RuntimeError("the server did not start") from None
                time.sleep(0.1)

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stats(self) -> dict:
        return httpx.get(f"{self.url}/stats", timeout=10).json()

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def bodies(model: str, n: int, first_seed: int = 0):
    return [completion_body(model, PROMPT, first_seed + i, MAX_TOKENS) for i in range(n)]


def in_process(device: str, n: int) -> dict:
    """One stream at a time in this process; tokens/s measured as for HTTP (all tokens over
    the wall time of the requests run back to back)."""
    first, tokens = [], 0
    with Engine(device) as engine:
        for i in range(n + 5):
            start = time.perf_counter()
            if i == 5:
                began = start
            request = engine.submit(PROMPT, max_tokens=MAX_TOKENS, seed=i)
            got = None
            for piece in request.pieces(timeout=60):
                if got is None and piece.text:
                    got = time.perf_counter() - start
            if i >= 5:  # warm-up
                first.append(got)
                tokens += request.completion_tokens
        wall = time.perf_counter() - began
    return {"first_token_p50_ms": pct(first, 50) * 1e3, "first_token_p99_ms": pct(first, 99) * 1e3,
            "tokens_per_request": tokens / n, "requests": n, "tokens_per_s": tokens / wall,
            "request_ms": wall / n * 1e3}


def thread_cpu_s(pid: int) -> dict:
    """CPU seconds of each thread of process `pid` (Linux /proc; {} elsewhere)."""
    out = {}
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[tid] = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    return out


class CpuMeter:
    """CPU time per request while a phase runs: the server's event-loop thread (its main
    thread), its other threads (the engine's driver, the device thread, the poller) and this
    load-generating client."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.server = thread_cpu_s(pid)
        self.client = resource.getrusage(resource.RUSAGE_SELF)

    def per_request_us(self, requests: int) -> dict:
        server, client = thread_cpu_s(self.pid), resource.getrusage(resource.RUSAGE_SELF)
        if not server or not requests:
            return {}
        main = server.get(str(self.pid), 0.0) - self.server.get(str(self.pid), 0.0)
        total = sum(v - self.server.get(k, 0.0) for k, v in server.items())
        spent = (client.ru_utime + client.ru_stime) - (self.client.ru_utime + self.client.ru_stime)
        return {"server_loop_us_per_request": main / requests * 1e6,
                "server_other_threads_us_per_request": (total - main) / requests * 1e6,
                "client_us_per_request": spent / requests * 1e6}


def over_http(server: Server, concurrency: int, n: int, max_seconds: float, burst: bool) -> dict:
    run_client(run_workers(server.url, bodies(server.model, concurrency), concurrency))  # warm
    meter = CpuMeter(server.process.pid)
    start = time.perf_counter()
    if burst:
        results, wall = run_client(run_rounds(server.url, bodies(server.model, n, 1000),
                                               concurrency, deadline=start + max_seconds))
    else:
        results = run_client(run_workers(server.url, bodies(server.model, n, 1000), concurrency,
                                          deadline=start + max_seconds))
        wall = time.perf_counter() - start
    done = [r for r in results if r is not None]
    bad = [r for r in done if r.status != 200 or not r.done or r.error]
    firsts = [r.first_token_s for r in done if r.first_token_s is not None]
    tokens = sum(r.usage()["completion_tokens"] for r in done if r.usage())
    text_events = sum(1 for r in done for c in r.chunks
                      if c.get("choices") and c["choices"][0].get("text"))
    return {"concurrency": concurrency, "burst": burst, "requests": len(done), "errors": len(bad),
            "first_token_p50_ms": pct(firsts, 50) * 1e3, "first_token_p99_ms": pct(firsts, 99) * 1e3,
            "tokens_per_s": tokens / wall, "tokens_per_request": tokens / max(1, len(done)),
            "text_events_per_request": text_events / max(1, len(done)),
            "seconds": wall, **meter.per_request_us(len(done))}


def run_soak(server: Server, device: str, n: int, max_seconds: float) -> dict:
    requests = soak_requests(server.model, n, seed=12345)
    rss = []
    with Engine(device) as reference_engine:
        result = soak(server.url, reference_engine, requests, concurrency=16,
                      deadline=time.perf_counter() + max_seconds,
                      on_progress=lambda done: rss.append((done, server.rss_mb())))
    stats = server.stats()
    warm = rss[len(rss) // 10] if rss else (0, float("nan"))  # after the first tenth
    result.update(rss_mb=rss, rss_warm_mb=warm[1], rss_end_mb=rss[-1][1] if rss else float("nan"),
                  engine_idle=stats["active_lanes"] == 0 and stats["queued"] == 0,
                  engine_stats=stats)
    result["rss_growth_mb"] = result["rss_end_mb"] - result["rss_warm_mb"]
    result["failures"] = result["failures"][:20]  # the first few, with their requests
    result["ok"] = not result["failures"] and result["engine_idle"]
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quick", action="store_true", help="few requests (a smoke run)")
    ap.add_argument("--soak", type=int, default=300, help="soak requests (10000 for the target)")
    ap.add_argument("--only", nargs="+", choices=("latency", "concurrency", "soak"),
                    default=("latency", "concurrency", "soak"))
    ap.add_argument("--max-seconds", type=float, default=120, help="per phase")
    ap.add_argument("--json", default=default_path("bench_serve"))
    args = ap.parse_args()
    n = 20 if args.quick else 200
    out = {"device": args.device, "machine": platform.node(), "cpus": os.cpu_count(),
           "date": datetime.date.today().isoformat(), "max_tokens": MAX_TOKENS}
    rows = []
    if "latency" in args.only:
        out["in_process"] = in_process(args.device, n)
        rows.append(("in-process, 1 stream", out["in_process"], out["in_process"]["tokens_per_s"]))
    server = Server(args.device)
    try:
        if "latency" in args.only or "concurrency" in args.only:
            out["http_1"] = over_http(server, 1, n, args.max_seconds, burst=False)
            rows.append(("http, 1 stream", out["http_1"], out["http_1"]["tokens_per_s"]))
        if "concurrency" in args.only:
            for c in (8, 64):
                for burst in (True, False):
                    key = f"http_{c}_{'burst' if burst else 'loop'}"
                    out[key] = over_http(server, c, max(n, 4 * c) * (4 if burst else 1),
                                         args.max_seconds, burst)
                    rows.append((f"http, {c} {'burst' if burst else 'loop'}", out[key],
                                 out[key]["tokens_per_s"]))
        if "soak" in args.only:
            out["soak"] = run_soak(server, args.device, 50 if args.quick else args.soak,
                                   args.max_seconds * 10)
    finally:
        server.close()

    print(f"bench_serve on {args.device} ({out['machine']}, {out['cpus']} cpus), "
          f"max_tokens {MAX_TOKENS}")
    print(f"{'':24} {'requests':>8} {'ttft p50 ms':>12} {'ttft p99 ms':>12} {'tok/req':>8} "
          f"{'tok/s':>10} {'events/req':>10} {'loop us/req':>11} {'other us/req':>12} "
          f"{'client us/req':>13}")

    def cell(r, key, width, fmt):
        return f"{r[key]:{width}{fmt}}" if key in r else " " * width

    for name, r, rate in rows:
        print(f"{name:24} {r['requests']:8d} {r['first_token_p50_ms']:12.2f} "
              f"{r['first_token_p99_ms']:12.2f} {r['tokens_per_request']:8.1f} "
              f"{'' if rate is None else f'{rate:10.0f}'} "
              f"{cell(r, 'text_events_per_request', 10, '.1f')} "
              f"{cell(r, 'server_loop_us_per_request', 11, '.0f')} "
              f"{cell(r, 'server_other_threads_us_per_request', 12, '.0f')} "
              f"{cell(r, 'client_us_per_request', 13, '.0f')}")
    print("(loop: the server's event-loop thread; other: its engine driver, device and poller "
          "threads; client: this load generator, on the same machine)")
    if "in_process" in out and "http_1" in out:
        out["http_minus_in_process_ms"] = (out["http_1"]["first_token_p50_ms"]
                                           - out["in_process"]["first_token_p50_ms"])
        print(f"first token p50, http - in-process: {out['http_minus_in_process_ms']:.2f} ms")
    for mode in ("burst", "loop"):
        if f"http_64_{mode}" in out:
            ratio = out[f"http_64_{mode}"]["tokens_per_s"] / out["http_1"]["tokens_per_s"]
            out[f"aggregate_64_{mode}_over_1"] = ratio
            print(f"aggregate tokens/s, 64 streams ({mode}) / 1 stream: {ratio:.1f}x")
    if "soak" in out:
        s = out["soak"]
        print(f"soak: {s['sent']}/{s['requests']} requests sent, {s['completed']} completed and "
              f"equal to the request run alone, {s['left']} left by the client (prefix checked), "
              f"{len(s['failures'])} failures; server RSS {s['rss_warm_mb']:.1f} -> "
              f"{s['rss_end_mb']:.1f} MB; engine idle at the end: {s['engine_idle']}")
        for failure in s["failures"]:
            print("  FAIL", failure)
    write_json(args.json, out)
    return 0 if "soak" not in out or out["soak"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
