"""WorkflowExecutionContext: the device, the named values and the per-run channels of one
workflow run, plus the open command buffer (the "capture window") that device ops encode
into until something commits it (stream_flush, a while_batched loop, a CPU op, the end)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, Optional, Union

from .._core import CommandBuffer, ControlBlock, Device
from ..h2d_channel import H2DChannel
from .cancellation import Cancellation, is_cancelled
from .feeding import TokenFeed
from .host_sampler import HostSampler

FEED_CAPACITY = 4096  # fed tokens in flight to the device
from .values import Channel, TensorArg, Value


class WorkflowExecutionContext:
    """One run's state. `values` maps names to values; `channels` maps each channel made by
    stream_init (under its step's `out` name) to its Channel, for readers.

    on_token(token) is called for every token a while_batched loop delivers, in order (when,
    depends on the loop's mode: runner.py); on_text(piece) instead for a loop whose stream is
    a byte channel (text detokenized on the device, never split inside a character);
    on_window(report) once per completed window (results.WindowReport). The loops' results are returned by the run, not kept here
    (executor.WorkflowRun.loops).
    """

    def __init__(self, device: Union[Device, str] = "cpu", *,
                 on_token: Optional[Callable[[int], None]] = None,
                 on_window: Optional[Callable] = None,
                 on_text: Optional[Callable[[str], None]] = None,
                 cancellation: Optional[Cancellation] = None,
                 cpu_sampler: Optional[Callable] = None,
                 feed: Optional[TokenFeed] = None) -> None:
        if on_token is not None and on_text is not None:
            raise ValueError("give on_token or on_text, not both: a run delivers through one "
                             "path (tokens from u32 channels, text from byte channels)")
        self._owns_device = isinstance(device, str)
        self.device: Device = Device(device) if isinstance(device, str) else device
        self.queue = self.device.new_queue()
        self.values: dict[str, Value] = {}
        self.channels: dict[str, Channel] = {}
        self.on_token = on_token
        self.on_window = on_window
        self.on_text = on_text
        self.overshoot = None  # overshoot.Overshoot while an overshooting loop encodes its body
        self._open: Optional[CommandBuffer] = None
        self._last_committed: Optional[CommandBuffer] = None
        self._constants: dict[int, TensorArg] = {}
        # lm_load's tables (in device memory, so known by identity): buffer id -> NgramTable
        self.lm_tables: dict[int, object] = {}
        # lm_vocabulary's tables, likewise: buffer id -> lm.vocab.Vocabulary
        self.vocabularies: dict[int, object] = {}
        # The run's options (executor.RunOptions: mode, sampler), for the steps of loop bodies
        self.run_options: dict = {}
        self.cancellation = cancellation
        self._control: Optional[ControlBlock] = None
        # CPU sampling (host_sampler.py): the sampler callable a run was given, and the per-run
        # machinery, made by the first CPU-sampled decode step
        self.cpu_sampler = cpu_sampler
        self._host_sampler: Optional[HostSampler] = None
        # Feeding tokens (feeding.py): the caller's TokenFeed and the run's channel for it
        self.token_feed = feed
        self._feed_channel = None

    # ---- feeding tokens -------------------------------------------------------------------

    def feed_channel(self):
        """The run's host-to-device channel of fed tokens (feeding.py), made and initialised
        on first use (by a command buffer of its own, as host_sampler())."""
        if self._feed_channel is None:
            channel = H2DChannel(self.device, FEED_CAPACITY)
            cb = self.queue.command_buffer()
            channel.encode_init(cb)
            self.commit(cb)
            self._feed_channel = channel
            self._feed_buffers = (TensorArg.zeros(self.device, "u32", (1,)),
                                  TensorArg.zeros(self.device, "u32", (1,)))
            self.token_feed.attach(channel.writer())
        return self._feed_channel

    def feed_buffers(self) -> tuple[TensorArg, TensorArg]:
        """(token, got): where each step's h2d_try_pop of a fed token puts it."""
        self.feed_channel()
        return self._feed_buffers

    # ---- CPU sampling ---------------------------------------------------------------------

    def host_sampler(self, vocab: int, default: Callable) -> HostSampler:
        """The run's CPU sampler (host_sampler.py), started on first use with the run's
        sampler callable or `default`. Its channels are initialised by a command buffer of
        their own, committed now: queue order runs it before the loop that uses them (a
        window's own dispatches are replayed, an init among them would restart the channels
        every window)."""
        if self._host_sampler is None:
            sampler = HostSampler(self.device, vocab, self.cpu_sampler or default)
            cb = self.queue.command_buffer()
            sampler.encode_init(cb)
            self.commit(cb)
            sampler.start()
            self._host_sampler = sampler
        elif self._host_sampler.vocab != vocab:
            raise ValueError(f"a run samples on the CPU over one vocabulary: "
                             f"{self._host_sampler.vocab} tokens, then {vocab}")
        return self._host_sampler

    # ---- cancel -------------------------------------------------------------------------

    def control_block(self) -> ControlBlock:
        """The run's control block (made on first use), which every decode step reads:
        cancelling the run's Cancellation cancels it (cancellation.py)."""
        if self._control is None:
            self._control = ControlBlock(self.device)
            if self.cancellation is not None:
                self.cancellation.attach(self._control)
        return self._control

    def stop_device(self) -> None:
        """Cancels the run's control block (if a step uses it): its decode steps stop within one
        step, so closing after an error or Ctrl-C does not wait for whole windows."""
        if self._control is not None:
            self._control.cancel()

    @property
    def cancelled(self) -> bool:
        """True once the run was asked to stop: loops commit no further windows."""
        return is_cancelled(self.cancellation)

    # ---- command buffers --------------------------------------------------------------

    def command_buffer(self) -> CommandBuffer:
        """The open command buffer device ops encode into (made on first use)."""
        if self._open is None:
            self._open = self.queue.command_buffer()
        return self._open

    @contextmanager
    def recording(self, cb: CommandBuffer) -> Iterator[CommandBuffer]:
        """Device ops encode into `cb` inside this block (the loop runner's windows)."""
        saved, self._open = self._open, cb
        try:
            yield cb
        finally:
            self._open = saved

    def commit(self, cb: CommandBuffer) -> None:
        cb.commit()
        self._last_committed = cb

    def flush(self, wait: bool = False, timeout: Optional[float] = None) -> None:
        """Commits the open command buffer (if it holds work); with wait, blocks until every
        command buffer committed so far completed (the queue runs them in order)."""
        if self._open is not None and self._open.dispatch_count > 0:
            cb, self._open = self._open, None
            self.commit(cb)
        if wait and self._last_committed is not None:
            if not self._last_committed.wait_until_completed(timeout=timeout):
                raise TimeoutError(f"the device did not finish within {timeout} s")

    def synchronize(self) -> None:
        self.flush(wait=True)

    # ---- values -------------------------------------------------------------------------

    def constant_u32(self, value: int) -> TensorArg:
        """A u32[1] device tensor holding `value`, made once per value per run (so an encoded
        step that needs an immediate in a buffer allocates nothing when replayed)."""
        tensor = self._constants.get(value)
        if tensor is None:
            tensor = TensorArg.from_array(self.device, [value])
            self._constants[value] = tensor
        return tensor

    def close(self) -> None:
        """Completes pending work; closes the device if the context opened it."""
        try:
            if not self.device.closed:
                self.synchronize()
        finally:
            try:
                sampler, self._host_sampler = self._host_sampler, None
                if sampler is not None:
                    sampler.stop()  # raises the CPU sampler's error, if it had one
            finally:
                if self._feed_channel is not None:
                    self.token_feed.detach()
                if self._control is not None and self.cancellation is not None:
                    self.cancellation.detach(self._control)
                if self._owns_device:
                    self.device.close()

    def check_host_sampler(self) -> None:
        """Raises the CPU sampler's error (HostSamplerError), if it had one."""
        if self._host_sampler is not None:
            self._host_sampler.check()

    def __enter__(self) -> "WorkflowExecutionContext":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
