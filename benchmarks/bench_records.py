"""Record channels: payload rate and small-record latency.

CUDA (needs the C++ instruments: FC_BUILD_BENCHMARKS=ON): record pushes of 64 B .. 4 MiB, one
`record_push` kernel per record captured in CUDA graphs of 32 (as a decode window holds its
pushes), with a CPU reader draining meanwhile, against one cudaMemcpyAsync device -> pinned host
of the same bytes per record, in graphs of 32 on the same stream, in the same run (GPU time).
Reference columns, same run, one kernel per record with the push's threads and no protocol: 16-byte
stores into mapped host memory, and a u32 channel's 8-byte (value, tag) slots (payload bytes/s).
Then where a 64 KiB record's GPU time goes (--cost-bytes), and the GPU-write -> CPU-reader
latency of 16 and 64-byte records pushed from inside the kernel that made them. Host (`cpu`):
records pushed by the device thread and drained by a reader thread, against numpy's memcpy of
the same bytes.

Prints tables and writes benchmarks/results/bench_records.json.

    python benchmarks/bench_records.py [--quick] [--cost-bytes N] [--skip-host]
"""

from __future__ import annotations

import argparse
import datetime
import platform
import threading
import time

import numpy as np

import foundry_channels as fc
from foundry_channels import _core
from results_io import default_path, write_json  # noqa: E402

SIZES = [64, 1 << 10, 64 << 10, 1 << 20, 4 << 20]


def host_rates(quick: bool) -> list[dict]:
    rows = []
    for size in SIZES:
        count = max(4, min(2000, (256 << 20 if not quick else 16 << 20) // size))
        with fc.Device("cpu") as dev:
            ch = fc.Channel(dev, dtype="u8", shape=(size,), capacity=8)
            src = dev.buffer(size)
            cb = dev.new_queue().command_buffer()
            ch.encode_init(cb)
            for _ in range(count):
                ch.encode_push(cb, src)
            ch.encode_close(cb)
            reader = ch.reader()
            out = np.empty((8, size), np.uint8)
            got = [0]

            def drain():
                while True:
                    n = reader.drain_into(out)
                    got[0] += n
                    if n == 0 and reader.wait(30) == "closed":
                        return

            t = threading.Thread(target=drain)
            t0 = time.perf_counter()
            cb.commit()
            t.start()
            cb.wait_until_completed(120)
            push_s = time.perf_counter() - t0
            t.join()
        a, b = np.ones(size, np.uint8), np.empty(size, np.uint8)
        reps = max(10, count)
        t0 = time.perf_counter()
        for _ in range(reps):
            np.copyto(b, a)
        memcpy_gbps = size * reps / (time.perf_counter() - t0) / 1e9
        rows.append({"record_bytes": size, "records": count,
                     "push_gbps": size * count / push_s / 1e9, "memcpy_gbps": memcpy_gbps,
                     "delivered": got[0], "dropped": reader.dropped})
    return rows


def cuda_rates(dev, quick: bool) -> list[dict]:
    rows = []
    for size in SIZES:
        count = max(16, min(20000, (1 << 30 if not quick else 64 << 20) // size))
        r = _core.cuda_bench_record_rate(dev, size, count)
        rows.append({"record_bytes": size, "records": count, **r,
                     "vs_memcpy": r["push_gbps"] / r["memcpy_gbps"]})
    return rows


def cuda_cost(dev, record_bytes: int, quick: bool) -> list[dict]:
    count = max(64, min(4096, (64 << 20 if quick else 256 << 20) // record_bytes))
    return [{"what": what, "us_per_record": us}
            for what, us in _core.cuda_bench_record_cost(dev, record_bytes, count)]


def cuda_latency(dev, quick: bool) -> list[dict]:
    rows = []
    for size in (16, 64):
        r = _core.cuda_bench_record_latency(dev, size, 500 if quick else 4000, 20_000)
        lat = np.asarray(r["latency_us"])
        rows.append({"record_bytes": size, "samples": len(lat),
                     "p50_us": float(np.percentile(lat, 50)), "p99_us": float(np.percentile(lat, 99)),
                     "clock_error_us": r["clock_error_us"]})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--cost-bytes", type=int, default=64 << 10,
                    help="record size of the 'where the time goes' table (default 64 KiB)")
    ap.add_argument("--skip-host", action="store_true", help="CUDA tables only")
    ap.add_argument("--json", default=default_path("bench_records"))
    args = ap.parse_args()
    result = {"date": datetime.date.today().isoformat(), "machine": platform.processor() or platform.machine()}
    if not args.skip_host:
        result["host"] = host_rates(args.quick)
        print("host (cpu backend): record push + concurrent drain vs numpy memcpy")
        print(f"{'record':>9} {'push GB/s':>10} {'memcpy GB/s':>12} {'delivered':>10} {'dropped':>8}")
        for r in result["host"]:
            print(f"{r['record_bytes']:>9} {r['push_gbps']:10.2f} {r['memcpy_gbps']:12.2f} "
                  f"{r['delivered']:>10} {r['dropped']:>8}")
    if not fc.backend_status()["cuda"] and getattr(_core, "HAS_BENCHMARKS", False):
        dev = fc.Device("cuda")
        result["card"] = dev.name
        result["cuda"] = cuda_rates(dev, args.quick)
        result["cuda_cost"] = {"record_bytes": args.cost_bytes,
                               "parts": cuda_cost(dev, args.cost_bytes, args.quick)}
        result["cuda_latency"] = cuda_latency(dev, args.quick)
        dev.close()
        print(f"\n{result['card']}: record push (GPU time) vs cudaMemcpyAsync device -> pinned host; "
              "references: a kernel's 16-byte stores, u32 (value, tag) slots")
        print(f"{'record':>9} {'push GB/s':>10} {'memcpy GB/s':>12} {'ratio':>6} {'read GB/s':>10} "
              f"{'dropped':>8} {'16B st GB/s':>12} {'slots GB/s':>11}")
        for r in result["cuda"]:
            print(f"{r['record_bytes']:>9} {r['push_gbps']:10.2f} {r['memcpy_gbps']:12.2f} "
                  f"{r['vs_memcpy']:6.2f} {r['delivered_gbps']:10.2f} {r['dropped']:>8} "
                  f"{r['stores16_gbps']:12.2f} {r['pairs_gbps']:11.2f}")
        print(f"\nwhere a {args.cost_bytes}-byte record's GPU time goes (one per record, graphs of 32)")
        for part in result["cuda_cost"]["parts"]:
            print(f"  {part['what']:44s} {part['us_per_record']:7.2f} us")
        for r in result["cuda_latency"]:
            print(f"latency, {r['record_bytes']}-byte records pushed in-kernel: p50 {r['p50_us']:.2f} us, "
                  f"p99 {r['p99_us']:.2f} us (clock error <= {r['clock_error_us']:.2f} us, "
                  f"{r['samples']} samples)")
    else:
        print("\ncuda: skipped (no CUDA device, or a build without FC_BUILD_BENCHMARKS=ON)")
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
