"""CPU sampling inside a running command buffer vs one synchronisation per step.

The sample LM's decode loop with every token drawn on the CPU (lm.cpu_sampler.device_sampler,
the device's own draw, so both loops give the same tokens - checked), and `spin_ns` padding
each step to a model step of known length (10 us: the issue's target point):

  per-step sync   one command buffer per step: commit, wait, read the distribution, sample,
                  write the token, commit the next (samples/cpu_sampling.per_step_sync); the
                  step encoded each time (as an engine launching kernel by kernel does), and
                  "replayed": encoded once, one replay (a CUDA graph launch) per step, the
                  cheapest per-step launch there is
  in flight       windows of 64 steps, two committed ahead; each step pushes its distribution
                  through a record channel and waits (h2d_pop_wait) for the CPU's token from a
                  host-to-device channel (samples/cpu_sampling.in_flight)

Prints a table and writes benchmarks/results/bench_cpu_sampler.json (or --json PATH).

    python benchmarks/bench_cpu_sampler.py [--device cuda|cpu] [--tokens N] [--step-us 10,...]
                                           [--breakdown]
"""

from __future__ import annotations

import argparse
import datetime
import functools
import platform
import time

import foundry_channels as fc
from foundry_channels.lm import encode_prompt
from foundry_channels.lm.cpu_sampler import device_sampler
from foundry_channels.samples.cpu_sampling import in_flight, per_step_sync
from cpu_sampler_breakdown import breakdown  # noqa: E402
from results_io import default_path, write_json  # noqa: E402

NO_EOS = 0xFFFFFFFF  # no token equals it: every run makes exactly --tokens tokens
PROMPT = encode_prompt("We hold these truths")


def pad_of(step_ns: int):
    """Encodes the rest of a model step: a `spin_ns` of step_ns (none at 0)."""

    def pad(cb) -> None:
        if step_ns:
            cb.dispatch("spin_ns", 1, ns=step_ns)

    return pad


def measure(device: fc.Device, tokens: int, step_ns: int) -> dict:
    sampler = device_sampler(7)
    pad = pad_of(step_ns)

    row = {"step_us": step_ns / 1e3, "tokens": tokens}
    results = {}
    loops = (("per_step_sync", per_step_sync),
             ("per_step_replayed", functools.partial(per_step_sync, replay=True)),
             ("in_flight", in_flight))
    for name, run in loops:
        run(device, sampler, PROMPT, max_tokens=min(tokens, 64), eos=NO_EOS, pad=pad)  # warm
        start = time.perf_counter()
        results[name] = run(device, sampler, PROMPT, max_tokens=tokens, eos=NO_EOS, pad=pad)
        row[f"{name}_tokens_per_s"] = tokens / (time.perf_counter() - start)
    row["same_tokens"] = results["per_step_sync"] == results["in_flight"] \
        == results["per_step_replayed"]
    row["speedup"] = row["in_flight_tokens_per_s"] / row["per_step_sync_tokens_per_s"]
    row["speedup_vs_replayed"] = (row["in_flight_tokens_per_s"]
                                  / row["per_step_replayed_tokens_per_s"])
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if fc.backend_status()["cuda"] == "" else "cpu")
    parser.add_argument("--tokens", type=int, default=4000)
    parser.add_argument("--step-us", default="0,10,50")
    parser.add_argument("--breakdown", action="store_true",
                        help="also time a step's pieces (cpu_sampler_breakdown.py)")
    parser.add_argument("--json", default=default_path("bench_cpu_sampler"))
    args = parser.parse_args()
    with fc.Device(args.device) as device:
        name = device.name if hasattr(device, "name") else args.device
        steps_ns = [int(float(us) * 1000) for us in args.step_us.split(",")]
        rows = [measure(device, args.tokens, ns) for ns in steps_ns]
        pieces = {ns / 1e3: breakdown(device, PROMPT, ns, pad_of(ns), args.tokens)
                  for ns in steps_ns} if args.breakdown else {}
    print(f"\n{name} ({args.device}), {args.tokens} CPU-sampled tokens per run, "
          f"{platform.node()}, {datetime.date.today()}")
    print("| step (us) | per-step sync tok/s | replayed per step tok/s | in flight tok/s | "
          "speedup | vs replayed | same tokens |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['step_us']:g} | {r['per_step_sync_tokens_per_s']:,.0f} | "
              f"{r['per_step_replayed_tokens_per_s']:,.0f} | "
              f"{r['in_flight_tokens_per_s']:,.0f} | {r['speedup']:.2f}x | "
              f"{r['speedup_vs_replayed']:.2f}x | {r['same_tokens']} |")
    if pieces:
        print("\nus per step (device pieces: windows of 64 replayed, wall clock / steps)")
        print("| piece | " + " | ".join(f"{us:g} us step" for us in pieces) + " |")
        print("| --- |" + " --- |" * len(pieces))
        for piece in next(iter(pieces.values())):
            print(f"| {piece} | " + " | ".join(f"{p[piece]:.2f}" for p in pieces.values()) + " |")
    write_json(args.json, {"device": name, "backend": args.device,
                           "date": str(datetime.date.today()), "rows": rows,
                           "breakdown_us": {str(k): v for k, v in pieces.items()}})


if __name__ == "__main__":
    main()
