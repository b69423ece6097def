"""Sampling on the CPU inside a running command buffer (`--sampler cpu`).

Each decode step of a CPU-sampled loop is four dispatches in the same command buffer:

    lm_next_counts   the distribution the device sampler would draw from -> `counts`
    record push      `counts` into a device->CPU record channel
    h2d_pop_wait     waits (bounded) for the CPU's token from a host->device channel
    lm_decode_step   takes that token instead of sampling (forced_mode 2)

and the CPU half is one thread per run: it reads each distribution as soon as it is visible,
calls the sampler (any callable `sampler(counts, position) -> token`: a grammar constraint, a
custom sampler; default lm.cpu_sampler.device_sampler(seed)) and pushes the token back. The
command buffer never ends per step, so a step costs a record's and an item's visibility
(microseconds on a GPU) instead of a launch and a synchronisation.

Every dispatch of a step is predicated on the stop flag: after EOS (or a cancel) no
distribution is pushed and nothing waits for the CPU. If the sampler raises or returns a
non-token, the thread closes the host->device channel: the waiting step gets no token and
stops the turn (stop flag NO_HOST_TOKEN), and the run re-raises the sampler's error.
"""

from __future__ import annotations

import threading
from typing import Callable, Optional

import numpy as np

from ..h2d_channel import H2DChannel
from ..record_channel import Channel as RecordChannel
from .values import TensorArg

HostSamplerFn = Callable[[np.ndarray, int], int]

NO_HOST_TOKEN = 6  # lm.stop.StopFlag.NO_HOST_TOKEN (the workflow package does not import lm)
RING = 4  # one step's request is outstanding at a time: a few slots are plenty
# How often a waiting sampler thread checks that its run is still going: it spins while it
# waits anyway, so a short slice costs nothing, and stop() (the end of every CPU-sampled run)
# waits up to one slice for the thread (50 ms here added 50 ms to every run: measured).
POLL_S = 0.001
DEFAULT_TIMEOUT_S = 2.0  # how long a device step waits for the CPU's token


class HostSamplerError(RuntimeError):
    """The CPU sampler failed (raised, or returned something that is not a token)."""


class HostSampler:
    """The per-run machinery of CPU sampling (made by the context on first use)."""

    def __init__(self, device, vocab: int, sampler: HostSamplerFn, *,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.vocab = vocab
        self.sampler = sampler
        self.timeout_us = int(timeout_s * 1e6)
        self.requests = RecordChannel(device, "u32", (1 + vocab,), capacity=RING)
        self.answers = H2DChannel(device, RING)
        # only kernels touch these: device-local, so a step's reads never cross the bus
        self.counts = TensorArg.zeros(device, "u32", (1 + vocab,), storage="private")
        self.token = TensorArg.zeros(device, "u32", (1,), storage="private")
        self.token_got = TensorArg.zeros(device, "u32", (1,), storage="private")
        self.error: Optional[BaseException] = None
        self.served = 0
        self._stopping = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def encode_init(self, cb) -> None:
        self.requests.encode_init(cb)
        self.answers.encode_init(cb)

    def encode_request(self, cb, model, state, history, stop) -> None:
        """The device half of one step, before its lm_decode_step (forced_mode 2 with
        forced=self.token, forced_got=self.token_got)."""
        cb.dispatch("lm_next_counts", self.vocab, model=model.buffer, state=state.buffer,
                    history=history.buffer, out=self.counts.buffer, stop=stop.buffer,
                    vocab=self.vocab, predicated=1)
        self.requests.encode_push(cb, self.counts.buffer, stop_flag=stop.buffer)
        cb.dispatch("h2d_pop_wait", 1, channel=self.answers, out=self.token.buffer,
                    got=self.token_got.buffer, stop_flag=stop.buffer, predicated=1,
                    stop_code=NO_HOST_TOKEN, timeout_us=self.timeout_us)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="foundry-host-sampler",
                                            daemon=True)
            self._thread.start()

    def _serve(self) -> None:
        reader = self.requests.reader()
        # A request is answered while a device step waits for it: the thread spins for it
        # (one core for the run's duration) instead of learning a sleep (adaptive), which
        # would add its wake-up to every token.
        reader.wait_strategy = "spin"
        writer = self.answers.writer()
        request = np.empty(1 + self.vocab, dtype=np.uint32)
        try:
            while not self._stopping.is_set():
                if not reader.read_into(request):
                    reader.wait(POLL_S)  # GIL released; wakes as soon as a request is visible
                    continue
                position = int(request[0])
                try:
                    token = self.sampler(request[1:], position)
                except Exception as e:
                    raise HostSamplerError(f"the CPU sampler raised at position {position}: "
                                           f"{type(e).__name__}: {e}") from e
                if isinstance(token, bool) or not isinstance(token, (int, np.integer)) \
                        or not 0 <= int(token) < self.vocab:
                    raise HostSamplerError(
                        f"the CPU sampler returned {token!r} at position {position}: not a "
                        f"token of the {self.vocab}-token vocabulary")
                writer.push(int(token), timeout=self.timeout_us / 1e6)
                self.served += 1
        except BaseException as e:  # reported by stop(); the device must not wait for us
            self.error = e
        finally:
            try:
                writer.close(timeout=1.0)
            except Exception:
                pass
            reader.close()

    def stop(self) -> None:
        """Ends the thread (closing the host->device channel, so that no device step waits
        for it) and raises the sampler's error, if it had one."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.check()

    def check(self) -> None:
        """Raises the sampler's error once, if it had one."""
        if self.error is not None:
            error, self.error = self.error, None
            if isinstance(error, HostSamplerError):
                raise error
            raise HostSamplerError(f"the CPU sampler thread failed: {type(error).__name__}: "
                                   f"{error}") from error
