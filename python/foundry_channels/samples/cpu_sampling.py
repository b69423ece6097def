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


class _Turn:
    """One turn of the sample LM on `device`: the model, the decode state and a prompt. What
    only kernels read or write lives in device-local (private) memory, as lm_load puts it:
    the model, the state and the history (on a discrete GPU a read of shared memory crosses
    the bus); the stop flag stays shared, the CPU reads it. `first` is the command buffer
    that uploads the model; the loop encodes its prefill into it and commits it."""

    def __init__(self, device, prompt: Sequence[int], history: int, table) -> None:
        self.table = table or builtin_table()
        self.vocab = 1 << self.table.bits
        self.history_capacity = history
        self.queue = device.new_queue()
        self.first = self.queue.command_buffer()
        self.model = TensorArg.upload_private(device, self.first, self.table.words)
        self.state = TensorArg.zeros(device, "u32", (4,), storage="private")
        self.hist = TensorArg.zeros(device, "u32", (history,), storage="private")
        self.out = TensorArg.zeros(device, "u32", (1,), storage="private")
        self.stop = TensorArg.zeros(device, "u32", (1,))
        self.prompt = list(prompt)
        self._prompt_t = TensorArg.from_array(device, self.prompt or [0])

    def encode_prefill(self, cb) -> None:
        cb.dispatch("lm_prefill", 1, state=self.state.buffer, history=self.hist.buffer,
                    prompt=self._prompt_t.buffer, stop=self.stop.buffer,
                    prompt_length=len(self.prompt), history_capacity=self.history_capacity)

    def encode_forced_step(self, cb, token, got, eos: int, max_tokens: int = 0,
                           **stream) -> None:
        """lm_decode_step with the CPU's token (forced_mode 2)."""
        cb.dispatch("lm_decode_step", 1, model=self.model.buffer, state=self.state.buffer,
                    history=self.hist.buffer, out=self.out.buffer, stop=self.stop.buffer,
                    seed=0, eos=eos, max_tokens=max_tokens,
                    history_capacity=self.history_capacity, forced=token.buffer,
                    forced_got=got.buffer, forced_mode=FORCED_FROM_CPU, **stream)


def per_step_sync(device, sampler: Callable[[np.ndarray, int], int], prompt: Sequence[int],
                  *, max_tokens: int, eos: int = EOS_TOKEN, history: int = 65536,
                  table=None, pad: Pad = None, replay: bool = False) -> list[int]:
    """The tokens of `max_tokens` steps (fewer at EOS) sampled by `sampler` on the CPU with a
    synchronisation per step. Each step's command buffer is encoded in Python, as an engine
    launching its kernels one by one does; with `replay` it is encoded once and replayed (a
    CUDA graph launch per step), the cheapest way to launch a step."""
    turn = _Turn(device, prompt, history, table)
    vocab = turn.vocab
    counts = TensorArg.zeros(device, "u32", (1 + vocab,))
    token = TensorArg.zeros(device, "u32", (1,))
    got = TensorArg.from_array(device, [1])
    counts_view, token_view, stop_view = counts.numpy(), token.numpy(), turn.stop.numpy()

    def next_counts(cb) -> None:
        cb.dispatch("lm_next_counts", vocab, model=turn.model.buffer, state=turn.state.buffer,
                    history=turn.hist.buffer, out=counts.buffer, stop=turn.stop.buffer,
                    vocab=vocab, predicated=1)

    def finish(cb) -> None:
        if not cb.wait_until_completed(timeout=60):
            raise TimeoutError("a per-step command buffer did not finish within 60 s")

    def run(cb) -> None:
        cb.commit()
        finish(cb)

    cb = turn.first
    turn.encode_prefill(cb)
    next_counts(cb)
    run(cb)

    def encode_step(cb) -> None:
        if pad is not None:
            pad(cb)
        turn.encode_forced_step(cb, token, got, eos)
        next_counts(cb)

    step = None
    if replay:
        cb = turn.queue.command_buffer()
        encode_step(cb)
        step = cb.to_window()  # encoded once; the command buffer itself is never committed
    tokens: list[int] = []
    for _ in range(max_tokens):
        token_view[0] = sampler(counts_view[1:], int(counts_view[0]))
        if step is not None:
            finish(turn.queue.replay(step))
        else:
            cb = turn.queue.command_buffer()
            encode_step(cb)
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

    turn = _Turn(device, prompt, history, table)
    stream = fc.ChannelU32(device, 1 << 16)
    host = HostSampler(device, turn.vocab, sampler)
    cb = turn.first
    cb.channel_init(stream)
    host.encode_init(cb)
    turn.encode_prefill(cb)
    cb.commit()
    host.start()
    reader = stream.reader()
    try:
        # One window is encoded, every later one is its replay (CUDA: a graph launch): the
        # launching thread holds the GIL only briefly, so the sampler thread is never kept
        # waiting behind Python encoding. The device's max_tokens ends the run exactly.
        cb = turn.queue.command_buffer()
        for _ in range(window):
            if pad is not None:
                pad(cb)
            host.encode_request(cb, turn.model, turn.state, turn.hist, turn.stop)
            turn.encode_forced_step(cb, host.token, host.token_got, eos, max_tokens,
                                    stream=stream, push=1, stream_capacity=stream.capacity)
        encoded = cb.to_window()
        cb.commit()
        pending = [cb]
        for _ in range(1, -(-max_tokens // window)):
            if len(pending) == 2:  # two windows in flight
                if not pending.pop(0).wait_until_completed(timeout=120):
                    raise TimeoutError("a CPU-sampled window did not finish within 120 s")
                if turn.stop.numpy()[0] != 0:
                    break  # EOS or max_tokens: the windows in flight are predicated off
            pending.append(turn.queue.replay(encoded))
        for cb in pending:
            if not cb.wait_until_completed(timeout=120):
                raise TimeoutError("a CPU-sampled window did not finish within 120 s")
        return list(reader)
    finally:
        reader.close()
        host.stop()
