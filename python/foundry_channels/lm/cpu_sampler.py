"""Samplers that run on the CPU inside a running decode loop (`--sampler cpu`).

Each step the device pushes the next-token distribution of the sample LM through a record
channel: `counts[vocab]`, the n-gram counts of the context the device sampler itself would
use (lm_next_counts in csrc/kernels/lm_kernels.inc), and the position. A CPU sampler is any
callable `sampler(counts, position) -> token` (a grammar constraint, a custom sampler); its
token goes back to the device through a host-to-device channel and the same command buffer
continues with it.

`device_sampler(seed)` is the device's own inverse-CDF draw, keyed by (seed, position): with
it the CPU-sampled loop produces exactly the tokens of the on-device sampler, which is what
the tests compare.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .ngram import sample_random

CpuSampler = Callable[[np.ndarray, int], int]


def device_sampler(seed: int) -> CpuSampler:
    """The device sampler's draw on the CPU: inverse CDF over the counts in token order with
    r = fc_lm_random(seed, position) % total (lm_kernels.inc, fc_lm_sample)."""

    def sample(counts: np.ndarray, position: int) -> int:
        # u32 is exact: a context's counts sum to its total, a field below 2^(32 - bits) in
        # the table; accumulating in the record's own dtype costs a third of np.cumsum's
        # widening to 64 bits, and this runs once per token on the critical path
        if counts.dtype == np.uint32:
            cumulative = np.add.accumulate(counts, dtype=np.uint32)
        else:  # counts from elsewhere (a test, a user's array): widen, never wrap
            cumulative = np.cumsum(counts, dtype=np.uint64)
        total = int(cumulative[-1])
        if total == 0:
            raise ValueError(f"position {position}: the distribution is empty (all counts 0)")
        r = sample_random(seed, position) % total
        # the first token whose cumulative count exceeds r (it has a non-zero count)
        return int(cumulative.searchsorted(r, side="right"))

    return sample


def greedy_sampler(counts: np.ndarray, position: int) -> int:
    """The most frequent next token (ties: the lowest id)."""
    return int(np.argmax(counts))
