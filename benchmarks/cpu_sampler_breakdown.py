"""Where a CPU-sampled decode step's time goes (bench_cpu_sampler.py --breakdown).

Each row replays windows of 64 steps built from the pieces of a CPU-sampled step, added one at
a time, and reports the device time per step: the `spin_ns` pad alone, then the sample LM's
decode step (its model, state and history device-local, and again in shared memory, as the
sample once kept them), then `lm_next_counts`, then the record push of the distribution. The
last rows time the whole in-flight loop's steady state from the CPU sampler's side: the time
between two sampler calls (one token) and the sampler call itself.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

import foundry_channels as fc
from foundry_channels.lm.cpu_sampler import device_sampler
from foundry_channels.samples.cpu_sampling import _Turn, in_flight
from foundry_channels.workflow import TensorArg

WINDOW = 64
WINDOWS = 32
NO_EOS = 0xFFFFFFFF


class _Pieces:
    """The buffers of one step's pieces on `turn`; encode(cb) encodes the chosen ones."""

    def __init__(self, device, turn, pad_ns: int, *, decode: bool, counts: bool, push: bool,
                 shared: bool) -> None:
        self.turn, self.pad_ns = turn, pad_ns
        self.decode, self.counts, self.push = decode, counts, push
        if shared:  # the decode step's data in host-mapped memory instead of device-local
            turn.model = TensorArg.from_array(device, turn.table.words)
            turn.state = TensorArg.zeros(device, "u32", (4,))
            turn.hist = TensorArg.zeros(device, "u32", (turn.history_capacity,))
        self.distribution = TensorArg.zeros(device, "u32", (1 + turn.vocab,), storage="private")
        self.records = fc.Channel(device, "u32", (1 + turn.vocab,), capacity=4) if push else None

    def encode_init(self, cb) -> None:
        if self.records is not None:
            self.records.encode_init(cb)

    def encode(self, cb) -> None:
        t = self.turn
        cb.dispatch("spin_ns", 1, ns=self.pad_ns)
        if self.counts:
            cb.dispatch("lm_next_counts", t.vocab, model=t.model.buffer, state=t.state.buffer,
                        history=t.hist.buffer, out=self.distribution.buffer,
                        stop=t.stop.buffer, vocab=t.vocab, predicated=1)
        if self.records is not None:
            self.records.encode_push(cb, self.distribution.buffer, stop_flag=t.stop.buffer)
        if self.decode:
            cb.dispatch("lm_decode_step", 1, model=t.model.buffer, state=t.state.buffer,
                        history=t.hist.buffer, out=t.out.buffer, stop=t.stop.buffer, seed=7,
                        eos=NO_EOS, max_tokens=0, history_capacity=t.history_capacity)


def device_us_per_step(device, prompt, pad_ns: int, **pieces) -> float:
    turn = _Turn(device, prompt, WINDOW * (WINDOWS + 2) + len(prompt), None)
    step = _Pieces(device, turn, pad_ns, **pieces)
    cb = turn.first
    step.encode_init(cb)
    turn.encode_prefill(cb)
    cb.commit()
    cb = turn.queue.command_buffer()
    for _ in range(WINDOW):
        step.encode(cb)
    window = cb.to_window()
    cb.commit()  # the first window, untimed: warms the graph and the caches
    if not cb.wait_until_completed(timeout=60):
        raise TimeoutError("a breakdown window did not finish within 60 s")
    start = time.perf_counter()
    for _ in range(WINDOWS):
        last = turn.queue.replay(window)
    if not last.wait_until_completed(timeout=120):
        raise TimeoutError("breakdown windows did not finish within 120 s")
    return (time.perf_counter() - start) / (WINDOW * WINDOWS) * 1e6


def steady_state(device, prompt, pad: Callable, tokens: int) -> tuple[float, float]:
    """(us between two sampler calls, us in one sampler call): medians over the in-flight
    loop's second half, set-up and tear-down left out."""
    draw = device_sampler(7)
    stamps: list[tuple[int, int]] = []

    def stamped(counts: np.ndarray, position: int) -> int:
        begin = time.perf_counter_ns()
        token = draw(counts, position)
        stamps.append((begin, time.perf_counter_ns()))
        return token

    in_flight(device, stamped, prompt, max_tokens=tokens, eos=NO_EOS, pad=pad)
    half = np.array(stamps[len(stamps) // 2:], dtype=np.int64)
    return (float(np.median(np.diff(half[:, 0]))) / 1e3,
            float(np.median(half[:, 1] - half[:, 0])) / 1e3)


ROWS = (
    ("spin_ns pad", dict(decode=False, counts=False, push=False, shared=False)),
    ("+ lm_decode_step", dict(decode=True, counts=False, push=False, shared=False)),
    ("+ lm_decode_step, data in shared memory", dict(decode=True, counts=False, push=False,
                                                     shared=True)),
    ("+ lm_decode_step + lm_next_counts", dict(decode=True, counts=True, push=False,
                                               shared=False)),
    ("+ lm_decode_step + lm_next_counts + record push", dict(decode=True, counts=True,
                                                             push=True, shared=False)),
)


def breakdown(device, prompt, step_ns: int, pad: Callable, tokens: int) -> dict:
    row = {name: device_us_per_step(device, prompt, step_ns, **pieces) for name, pieces in ROWS}
    per_token, sampler = steady_state(device, prompt, pad, tokens)
    row["in flight: one token, steady state (CPU clock)"] = per_token
    row["in flight: one sampler call"] = sampler
    return row
