"""The baseline a CPU-sampled loop is compared with: one command buffer and one
synchronisation per step, as engines that sample on the CPU do today.

Each step commits a command buffer that runs the previous step's decode (with the CPU's token)
and lm_next_counts for the next position, waits for it, reads the distribution and calls the
sampler. The tokens equal those of the same sampler inside one running command buffer
(workflow `sampler: cpu`, host_sampler.py); only the cost per step differs
(benchmarks/bench_h2d.py measures both).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ..lm import EOS_TOKEN, builtin_table
from ..workflow import TensorArg

FORCED_FROM_CPU = 2  # lm_decode_step's forced_mode


def per_step_sync(device, sampler: Callable[[np.ndarray, int], int], prompt: Sequence[int],
                  *, max_tokens: int, eos: int = EOS_TOKEN, history: int = 65536,
                  table=None) -> list[int]:
    """The tokens of `max_tokens` steps (fewer at EOS) sampled by `sampler` on the CPU with a
    synchronisation per step."""
    table = table or builtin_table()
    vocab = 1 << table.bits
    queue = device.new_queue()
    model = TensorArg.from_array(device, table.words)
    state = TensorArg.zeros(device, "u32", (4,))
    hist = TensorArg.zeros(device, "u32", (history,))
    out = TensorArg.zeros(device, "u32", (1,))
    stop = TensorArg.zeros(device, "u32", (1,))
    counts = TensorArg.zeros(device, "u32", (1 + vocab,))
    token = TensorArg.zeros(device, "u32", (1,))
    got = TensorArg.from_array(device, [1])
    prompt_t = TensorArg.from_array(device, list(prompt) or [0])
    counts_view, token_view, stop_view = counts.numpy(), token.numpy(), stop.numpy()

    def next_counts(cb) -> None:
        cb.dispatch("lm_next_counts", vocab, model=model.buffer, state=state.buffer,
                    history=hist.buffer, out=counts.buffer, stop=stop.buffer, vocab=vocab,
                    predicated=1)

    def run(cb) -> None:
        cb.commit()
        if not cb.wait_until_completed(timeout=60):
            raise TimeoutError("a per-step command buffer did not finish within 60 s")

    cb = queue.command_buffer()
    cb.dispatch("lm_prefill", 1, state=state.buffer, history=hist.buffer, prompt=prompt_t.buffer,
                stop=stop.buffer, prompt_length=len(prompt), history_capacity=history)
    next_counts(cb)
    run(cb)
    tokens: list[int] = []
    for _ in range(max_tokens):
        token_view[0] = sampler(counts_view[1:], int(counts_view[0]))
        cb = queue.command_buffer()
        cb.dispatch("lm_decode_step", 1, model=model.buffer, state=state.buffer,
                    history=hist.buffer, out=out.buffer, stop=stop.buffer, seed=0, eos=eos,
                    max_tokens=0, history_capacity=history, forced=token.buffer,
                    forced_got=got.buffer, forced_mode=FORCED_FROM_CPU)
        next_counts(cb)
        run(cb)
        if stop_view[0] != 0:
            break
        tokens.append(int(token_view[0]))
    return tokens
