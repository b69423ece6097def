"""CPU sampling two ways, driven directly (no workflow): the baseline, one command buffer and
one synchronisation per step as engines that sample on the CPU do today (per_step_sync), and
the whole loop in command buffers of `window` steps that never end per step (in_flight: the
distribution leaves through a record channel, the token comes back through a host-to-device
channel; workflow/host_sampler.py). Both give the same tokens for the same sampler; only the
cost per step differs (benchmarks/bench_cpu_sampler.py). `pad(cb)` encodes extra work per step
(the rest of a model's step, for the benchmark).
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np

from ..lm import EOS_TOKEN, builtin_table
from ..workflow import TensorArg
from ..workflow.host_sampler import HostSampler

FORCED_FROM_CPU = 2  # lm_decode_step's forced_mode


Pad = Optional[Callable[[object], None]]


def per_step_sync(device, sampler: Callable[[np.ndarray, int], int], prompt: Sequence[int],
                  *, max_tokens: int, eos: int = EOS_TOKEN, history: int = 65536,
                  table=None, pad: Pad = None) -> list[int]:
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
        if pad is not None:
            pad(cb)
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


def in_flight(device, sampler: Callable[[np.ndarray, int], int], prompt: Sequence[int], *,
              max_tokens: int, window: int = 64, eos: int = EOS_TOKEN, history: int = 65536,
              table=None, pad: Pad = None) -> list[int]:
    """The same loop with the sampler served while command buffers of `window` steps run,
    two committed ahead; the tokens leave through a u32 channel pushed by the decode step."""
    import foundry_channels as fc

    table = table or builtin_table()
    vocab = 1 << table.bits
    queue = device.new_queue()
    model = TensorArg.from_array(device, table.words)
    state = TensorArg.zeros(device, "u32", (4,))
    hist = TensorArg.zeros(device, "u32", (history,))
    out = TensorArg.zeros(device, "u32", (1,))
    stop = TensorArg.zeros(device, "u32", (1,))
    prompt_t = TensorArg.from_array(device, list(prompt) or [0])
    stream = fc.ChannelU32(device, 1 << 16)
    host = HostSampler(device, vocab, sampler)
    cb = queue.command_buffer()
    cb.channel_init(stream)
    host.encode_init(cb)
    cb.dispatch("lm_prefill", 1, state=state.buffer, history=hist.buffer, prompt=prompt_t.buffer,
                stop=stop.buffer, prompt_length=len(prompt), history_capacity=history)
    cb.commit()
    host.start()
    reader = stream.reader()
    try:
        # One window is encoded, every later one is its replay (CUDA: a graph launch): the
        # launching thread holds the GIL only briefly, so the sampler thread is never kept
        # waiting behind Python encoding. The device's max_tokens ends the run exactly.
        cb = queue.command_buffer()
        for _ in range(window):
            if pad is not None:
                pad(cb)
            host.encode_request(cb, model, state, hist, stop)
            cb.dispatch("lm_decode_step", 1, model=model.buffer, state=state.buffer,
                        history=hist.buffer, out=out.buffer, stop=stop.buffer, seed=0,
                        eos=eos, max_tokens=max_tokens, history_capacity=history,
                        stream=stream, push=1, stream_capacity=stream.capacity,
                        forced=host.token.buffer, forced_got=host.token_got.buffer,
                        forced_mode=FORCED_FROM_CPU)
        encoded = cb.to_window()
        cb.commit()
        pending = [cb]
        for _ in range(1, -(-max_tokens // window)):
            if len(pending) == 2:  # two windows in flight
                if not pending.pop(0).wait_until_completed(timeout=120):
                    raise TimeoutError("a CPU-sampled window did not finish within 120 s")
                if stop.numpy()[0] != 0:
                    break  # EOS or max_tokens: the windows in flight are predicated off
            pending.append(queue.replay(encoded))
        for cb in pending:
            if not cb.wait_until_completed(timeout=120):
                raise TimeoutError("a CPU-sampled window did not finish within 120 s")
        return list(reader)
    finally:
        reader.close()
        host.stop()
