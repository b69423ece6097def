"""Host-backend channel throughput and latency (issue: channel substrate).

Items/s for push + drain on the host backend, three ways of reading (C++ loop, Python
drain_into, Python iteration) while the device thread pushes flat out, plus drain_into of a
ring filled beforehand (the reader path alone, free of scheduling noise), capacities 2^10..2^20, against a producer thread feeding
queue.Queue and collections.deque on the same machine; and the push-to-reader visibility
latency. Prints a table and writes benchmarks/results/bench_channel.json.

    python benchmarks/bench_channel.py [--items N] [--quick]
"""

from __future__ import annotations

import argparse
import collections
import os
import platform
import queue
import statistics
import threading
import time

import numpy as np

import foundry_channels as fc
from foundry_channels import _core

import native_instruments
from results_io import default_path, write_json  # noqa: E402

CAPACITIES = [1 << k for k in (10, 12, 14, 16, 18, 20)]


def best_of(repeats, fn):
    runs = [fn() for _ in range(repeats)]
    return max(runs, key=lambda r: r["items_per_s"])


def channel_cpp_loop(device, capacity, n_items):
    r = _core._bench_push_drain(device, capacity, n_items, batch=capacity)
    return {"items_per_s": r["received"] / r["seconds"], "dropped": r["dropped"], "received": r["received"]}


def start_producer(device, capacity, n_items):
    ch = fc.ChannelU32(device, capacity)
    cb0 = device.new_queue().command_buffer()
    cb0.channel_init(ch)
    cb0.commit()
    cb0.wait_until_completed()
    reader = ch.reader()
    cb = device.new_queue().command_buffer()
    cb.channel_push_sequence(ch, 0, n_items)
    cb.channel_close(ch)
    return ch, reader, cb


def read_concurrently(device, capacity, n_items, read_once):
    """Starts the device pushing n_items and calls read_once(reader) until the channel is
    closed and drained; read_once returns how many items it took."""
    _, reader, cb = start_producer(device, capacity, n_items)
    received = 0
    t0 = time.perf_counter()
    cb.commit()
    while True:
        n = read_once(reader)
        received += n
        if n == 0 and reader.exhausted:
            break
    dt = time.perf_counter() - t0
    cb.wait_until_completed()
    return {"items_per_s": received / dt, "dropped": reader.dropped, "received": received}


def channel_drain_into(device, capacity, n_items):
    out = np.empty(capacity, dtype=np.uint32)
    return read_concurrently(device, capacity, n_items, lambda reader: reader.drain_into(out))


def channel_drain_only(device, capacity, rounds=20):
    """The reader path alone: the ring is filled first (producer finished), then Python
    drains it with drain_into. No concurrency noise: what one drain call costs per item."""
    ch = fc.ChannelU32(device, capacity)
    queue_ = device.new_queue()
    reader = ch.reader()
    out = np.empty(capacity, dtype=np.uint32)
    cb = queue_.command_buffer()
    cb.channel_init(ch)
    cb.commit()
    cb.wait_until_completed()
    total, seconds = 0, 0.0
    for r in range(rounds):
        cb = queue_.command_buffer()
        cb.channel_push_sequence(ch, r * capacity, capacity)
        cb.commit()
        cb.wait_until_completed()
        t0 = time.perf_counter()
        n = reader.drain_into(out)
        seconds += time.perf_counter() - t0
        total += n
    assert total == rounds * capacity and reader.dropped == 0
    return {"items_per_s": total / seconds, "dropped": 0, "received": total}


def channel_iteration(device, capacity, n_items):
    return read_concurrently(device, capacity, n_items, lambda reader: sum(1 for _ in reader))


def queue_baseline(capacity, n_items):
    q = queue.Queue(maxsize=capacity)
    done = object()

    def produce():
        for i in range(n_items):
            q.put(i)
        q.put(done)

    t = threading.Thread(target=produce)
    received = 0
    t0 = time.perf_counter()
    t.start()
    while q.get() is not done:
        received += 1
    dt = time.perf_counter() - t0
    t.join()
    return {"items_per_s": received / dt, "dropped": 0, "received": received}


def deque_baseline(capacity, n_items):
    d = collections.deque(maxlen=capacity)  # drop-oldest, like the channel
    finished = threading.Event()

    def produce():
        for i in range(n_items):
            d.append(i)
        finished.set()

    t = threading.Thread(target=produce)
    received = 0
    t0 = time.perf_counter()
    t.start()
    while True:
        try:
            d.popleft()
            received += 1
        except IndexError:
            if finished.is_set() and not d:
                break
    dt = time.perf_counter() - t0
    t.join()
    return {"items_per_s": received / dt, "dropped": n_items - received, "received": received}


def idle_wait_cpu(device, seconds=1.0):
    """CPU share of a reader blocked on an idle channel (back-off: spin, yield, then sleep)."""
    ch = fc.ChannelU32(device, 64)
    cb = device.new_queue().command_buffer()
    cb.channel_init(ch)
    cb.commit()
    cb.wait_until_completed()
    reader = ch.reader()
    cpu0, t0 = time.thread_time(), time.perf_counter()
    assert reader.wait(timeout=seconds) == "timeout"
    return (time.thread_time() - cpu0) / (time.perf_counter() - t0)


def main():
    native_instruments.require()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=20_000_000, help="items per channel run")
    ap.add_argument("--baseline-items", type=int, default=300_000, help="items per Queue/deque run")
    ap.add_argument("--iter-items", type=int, default=2_000_000, help="items per iteration run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="small sizes, one repeat (smoke run)")
    ap.add_argument("--out", default=default_path("bench_channel"))
    args = ap.parse_args()
    if args.quick:
        args.items, args.baseline_items, args.iter_items, args.repeats = 500_000, 50_000, 100_000, 1

    device = fc.Device("cpu")
    rows = []
    for cap in CAPACITIES:
        row = {"capacity": cap}
        row["cpp_loop"] = best_of(args.repeats, lambda: channel_cpp_loop(device, cap, args.items))
        row["drain_into"] = best_of(args.repeats, lambda: channel_drain_into(device, cap, args.items))
        row["drain_only"] = best_of(args.repeats, lambda: channel_drain_only(device, cap))
        row["iteration"] = best_of(args.repeats, lambda: channel_iteration(device, cap, args.iter_items))
        row["queue.Queue"] = best_of(args.repeats, lambda: queue_baseline(cap, args.baseline_items))
        row["deque"] = best_of(args.repeats, lambda: deque_baseline(cap, args.baseline_items))
        rows.append(row)
    lat = np.array(_core._bench_latency(20_000, 20.0)["latency_ns"])
    idle_cpu = idle_wait_cpu(device)
    device.close()

    cols = ["cpp_loop", "drain_into", "drain_only", "iteration", "queue.Queue", "deque"]
    print(f"host backend, {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}")
    print(f"{'capacity':>9} | " + " | ".join(f"{c:>12}" for c in cols) + " | drain_into/Queue | drop% (drain_into)")
    for row in rows:
        cells = " | ".join(f"{row[c]['items_per_s'] / 1e6:>10.1f} M" for c in cols)
        ratio = row["drain_into"]["items_per_s"] / row["queue.Queue"]["items_per_s"]
        d = row["drain_into"]
        drop = 100.0 * d["dropped"] / max(1, d["dropped"] + d["received"])
        print(f"{row['capacity']:>9} | {cells} | {ratio:>15.0f}x | {drop:>6.1f}")
    p50, p99 = np.percentile(lat, [50, 99])
    print(f"visibility latency push -> reader (C++ spinning reader, host): p50 {p50:.0f} ns, p99 {p99:.0f} ns")
    print(f"CPU use of a reader blocked 1 s on an idle channel: {idle_cpu * 100:.1f}% of a core")

    result = {
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor(), "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d"),
        "items": args.items,
        "rows": rows,
        "latency_ns": {"p50": p50, "p99": p99, "mean": statistics.fmean(lat)},
        "idle_wait_cpu_share": idle_cpu,
    }
    write_json(args.out, result)


if __name__ == "__main__":
    main()
