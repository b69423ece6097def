"""The sample model's decode steps driven directly with a control block (fc.ControlBlock):
prefill once, then any number of command buffers of decode steps that read the block, each
step pushing its visible token into a channel. Shared by the control block tests."""

from __future__ import annotations

import foundry_channels as fc
from foundry_channels.lm import builtin_table, encode_prompt
from foundry_channels.workflow import TensorArg

NO_EOS = 0xFFFFFFFF  # no byte token equals it: a run ends only on its bounds or the block


class ControlledDecode:
    """One turn of the sample model on `device`, controlled by `self.control`."""

    def __init__(self, device: fc.Device, *, seed: int, prompt: str = "We hold",
                 history: int = 8192, eos: int = NO_EOS, overshoot: int = 0) -> None:
        self.device, self.seed, self.eos, self.overshoot = device, seed, eos, overshoot
        self.queue = device.new_queue()
        self.control = fc.ControlBlock(device)
        self.model = TensorArg.from_array(device, builtin_table().words)
        self.state = TensorArg.zeros(device, "u32", (4,))
        self.history = TensorArg.zeros(device, "u32", (history,))
        self.out = TensorArg.zeros(device, "u32", (1,))
        self.stop = TensorArg.zeros(device, "u32", (1,))
        self.stream = fc.ChannelU32(device, 1 << 14)
        tokens = encode_prompt(prompt)
        prompt_t = TensorArg.from_array(device, tokens)
        cb = self.queue.command_buffer()
        cb.channel_init(self.stream)
        cb.dispatch("lm_prefill", 1, state=self.state.buffer, history=self.history.buffer,
                    prompt=prompt_t.buffer, stop=self.stop.buffer, prompt_length=len(tokens),
                    history_capacity=history)
        self.run(cb)
        self.reader = self.stream.reader()
        self.tokens: list[int] = []

    def encode_steps(self, cb: fc.CommandBuffer, steps: int, *, pad_words: int = 0,
                     use_control: int = 1) -> None:
        """`steps` decode steps, each pushing its visible token; `pad_words` > 0 puts a kernel
        of that many threads after each step (a slower step)."""
        pad = self.device.buffer(4 * max(pad_words, 1)) if pad_words else None
        for _ in range(steps):
            cb.dispatch("lm_decode_step", 1, model=self.model.buffer, state=self.state.buffer,
                        history=self.history.buffer, out=self.out.buffer, stop=self.stop.buffer,
                        seed=self.seed, eos=self.eos, max_tokens=0,
                        history_capacity=self.history.numel, overshoot=self.overshoot,
                        stream=self.stream, push=1, stream_capacity=self.stream.capacity,
                        control=self.control, use_control=use_control)
            if pad is not None:
                cb.dispatch("fill_pattern_u32", pad_words, out=pad, seed=1, words=pad_words)

    def steps(self, n: int, **kwargs) -> None:
        """Runs `n` steps in one command buffer and waits for it."""
        cb = self.queue.command_buffer()
        self.encode_steps(cb, n, **kwargs)
        self.run(cb)

    def run(self, cb: fc.CommandBuffer) -> None:
        cb.commit()
        assert cb.wait_until_completed(timeout=120)

    def drain(self) -> list[int]:
        self.tokens.extend(self.reader)
        return self.tokens

    @property
    def flag(self) -> int:
        return int(self.stop.numpy()[0])


def reference_tokens(device: fc.Device, seed: int, steps: int, **kwargs) -> list[int]:
    """The tokens of `steps` uncontrolled steps (use_control 0)."""
    run = ControlledDecode(device, seed=seed, **kwargs)
    run.steps(steps, use_control=0)
    return run.drain()
