"""Host-to-device channels: one-way latency, CPU write -> the device sees it, and throughput.

Latency: one h2d_relay_u32 kernel waits in pop_wait while the CPU pushes an item every `gap`;
the kernel stamps the device clock when it takes each item (C++ instrument
benchmarks/native/bench_h2d.cpp: needs FC_BUILD_BENCHMARKS=ON). On `cpu` the device clock is
the CPU's steady clock (no clock error); on CUDA it is %globaltimer, shifted by the offset that
GPU<->CPU ping-pongs measure before and after (the error bound: half the shortest round trip).
"above min" is each latency minus the run's smallest, which needs no clock fit at all.
Throughput: a CPU thread push_many()s 1M items through a 64-slot ring into the relay, which
forwards them to a D2H channel that the main thread drains.

Target (issue 12): CUDA p50 <= 2 us. Prints a table and writes JSON (--json PATH).

    python benchmarks/bench_h2d.py [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import threading
import time
from pathlib import Path

import numpy as np
from native_instruments import require

import foundry_channels as fc
from foundry_channels import _core


def latency(dev: fc.Device, samples: int, gap_ns: int) -> dict:
    if dev.backend == "cuda":
        fits = [_core.cuda_bench_clock_fit(dev)]
    else:
        fits = [{"offset_ns": 0.0, "error_ns": 0.0}]  # the same steady clock on both sides
    r = _core._bench_h2d_latency(dev, samples, gap_ns)
    if dev.backend == "cuda":
        fits.append(_core.cuda_bench_clock_fit(dev))
    offset = float(np.mean([f["offset_ns"] for f in fits]))
    error = max(f["error_ns"] for f in fits)
    lat_us = (np.asarray(r["device_ns"], np.float64) - offset -
              np.asarray(r["written_ns"], np.float64)) / 1000.0
    if not len(lat_us):
        raise SystemExit(f"{dev.backend}: no item was taken (the relay kernel did not run)")
    pct = lambda q: float(np.percentile(lat_us, q))  # noqa: E731
    return {"samples": int(len(lat_us)), "completed": bool(r["completed"]),
            "p50_us": pct(50), "p90_us": pct(90), "p99_us": pct(99), "max_us": float(lat_us.max()),
            "min_us": float(lat_us.min()), "p50_above_min_us": pct(50) - float(lat_us.min()),
            "clock_error_us": error / 1000.0, "gap_us": gap_ns / 1000.0}


def throughput(dev: fc.Device, items: int) -> dict:
    ch = fc.H2DChannel(dev, capacity=64)
    sink = fc.ChannelU32(dev, 1 << 21)
    taken = dev.buffer(8)
    cb = dev.new_queue().command_buffer()
    ch.encode_init(cb)
    cb.channel_init(sink)
    cb.dispatch("h2d_relay_u32", 1, source=ch, sink=sink, taken=taken, count=items + 1,
                timeout_us=30_000_000, sink_capacity=sink.capacity)
    cb.channel_close(sink)
    values = np.arange(items, dtype=np.uint32)
    cb.commit()
    writer = ch.writer()
    start = time.perf_counter()

    def push():
        for at in range(0, items, 4096):
            writer.push_many(values[at:at + 4096], timeout=30)
        writer.close(timeout=30)

    t = threading.Thread(target=push)
    t.start()
    reader = sink.reader()
    out = np.empty(1 << 16, np.uint32)
    got = 0
    while True:
        n = reader.drain_into(out)
        got += n
        if n == 0 and reader.wait(60) == "closed":
            break
    seconds = time.perf_counter() - start
    t.join()
    cb.wait_until_completed(60)
    return {"items": items, "delivered": got, "m_items_per_s": items / seconds / 1e6,
            "exact": got == items and int(taken.numpy()[0]) == items}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer samples and items")
    ap.add_argument("--json", default=str(Path(__file__).parent / "results" / "bench_h2d.json"))
    args = ap.parse_args()
    require()
    samples, items = (500, 100_000) if args.quick else (5000, 1_000_000)
    result = {"date": datetime.date.today().isoformat(),
              "machine": platform.processor() or platform.machine(), "backends": {}}
    backends = [b for b in ("cpu", "cuda") if not fc.backend_status()[b]]
    for backend in backends:
        with fc.Device(backend) as dev:
            result["backends"][backend] = {
                "device": dev.name,
                "latency": latency(dev, samples, 20_000),
                "throughput": throughput(dev, items)}
    print("CPU write -> device sees it (one-way, us), items pushed 20 us apart")
    print(f"{'backend':8} {'samples':>7} {'p50':>6} {'p90':>6} {'p99':>6} {'max':>7} "
          f"{'clock err':>9} {'p50-min':>7}   {'throughput':>14}")
    for backend, r in result["backends"].items():
        lat, thr = r["latency"], r["throughput"]
        print(f"{backend:8} {lat['samples']:>7} {lat['p50_us']:6.2f} {lat['p90_us']:6.2f} "
              f"{lat['p99_us']:6.2f} {lat['max_us']:7.2f} {lat['clock_error_us']:9.2f} "
              f"{lat['p50_above_min_us']:7.2f}   {thr['m_items_per_s']:7.2f} M items/s"
              f"{'' if thr['exact'] else ' (NOT EXACT)'}  [{r['device']}]")
    if "cuda" not in backends:
        print("cuda: skipped (" + fc.backend_status()["cuda"] + ")")
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
