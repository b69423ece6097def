"""The sample model's kernels driven directly (no workflow): prefill, decode steps with the
device-side collect list, optional overshoot and rollback, all in one command buffer.
Shared by the kernel-level tests of test_workflow_lm.py and test_overshoot.py."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from foundry_channels.lm import EOS_TOKEN, builtin_table
from foundry_channels.workflow import TensorArg


class Decoded(NamedTuple):
    tokens: list  # what the collect list got (visible tokens)
    out: int  # the `out` word after the last step
    flag: int  # the stop flag
    state: list  # state u32[4]
    history: np.ndarray  # a copy of the history buffer


def decode_on_device(device, prompt: list, *, seed: int, steps: int, eos: int = EOS_TOKEN,
                     history: int = 256, max_tokens: int = 0, overshoot: int = 0,
                     rollback: bool = False) -> Decoded:
    model = TensorArg.from_array(device, builtin_table().words)
    state = TensorArg.zeros(device, "u32", (4,))
    hist = TensorArg.zeros(device, "u32", (history,))
    out = TensorArg.zeros(device, "u32", (1,))
    stop = TensorArg.zeros(device, "u32", (1,))
    listed = TensorArg.zeros(device, "u32", (steps,))
    count = TensorArg.zeros(device, "u32", (1,))
    prompt_t = TensorArg.from_array(device, prompt or [0])
    cb = device.new_queue().command_buffer()
    cb.dispatch("lm_prefill", 1, state=state.buffer, history=hist.buffer, prompt=prompt_t.buffer,
                stop=stop.buffer, prompt_length=len(prompt), history_capacity=history)
    for _ in range(steps):
        cb.dispatch("lm_decode_step", 1, model=model.buffer, state=state.buffer,
                    history=hist.buffer, out=out.buffer, stop=stop.buffer, seed=seed, eos=eos,
                    max_tokens=max_tokens, history_capacity=history, overshoot=overshoot)
        cb.dispatch("decode_collect_u32", 1, source=out.buffer, list=listed.buffer,
                    count=count.buffer, stop=stop.buffer, list_capacity=steps, predicated=1)
    if rollback:
        cb.dispatch("lm_rollback", 1, state=state.buffer, history=hist.buffer, stop=stop.buffer,
                    history_capacity=history)
    cb.commit()
    assert cb.wait_until_completed(timeout=60)
    n = int(count.numpy()[0])
    return Decoded(listed.numpy()[:n].tolist(), int(out.numpy()[0]), int(stop.numpy()[0]),
                   state.numpy().tolist(), hist.numpy().copy())
