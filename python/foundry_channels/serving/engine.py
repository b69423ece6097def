"""The resident serving engine: one device, one uploaded model, one decode loop for every
request (the C++ core, csrc/serving/engine.hpp, runs the loop on its own thread).

    with Engine("cpu") as engine:
        req = engine.submit("We hold these truths", max_tokens=100, seed=7, stop=["\\n\\n"])
        for piece in req.pieces():
            print(piece.text, end="")
        print(req.finish_reason)

Thread-safe: submit() and Request.cancel() from any thread or event loop; each Request has one
reader. The same (prompt, seed, max_tokens, stop) gives the same tokens whether the request runs
alone, beside others or joins mid-way: the sampler is keyed by (seed, position)."""

from __future__ import annotations

import numbers
import threading
from typing import Optional, Sequence, Union

import numpy as np

from .._core import (
    SERVING_MAX_LANES,
    Device,
    DeviceClosedError,
    EngineBusyError,
    _EngineCore,
    lane_layout,
)
from .loop_notifier import EngineNotifiers
from .request import Request
from .text import TextAssembler
from .vocabulary import load_vocabulary

_LAYOUT = lane_layout()
MAX_STOPS = _LAYOUT["LANE_MAX_STOPS"]
MAX_STOP_BYTES = _LAYOUT["LANE_MAX_STOP_TOKENS"]  # a stop string's bytes (so its tokens fit)
U32_MAX = 0xFFFFFFFF


class EngineClosedError(DeviceClosedError):
    """submit() on an engine that was closed (or whose device failed)."""


def _int_arg(name: str, value, low: int, high: int) -> int:
    if value.__class__ is int and low <= value <= high:  # the usual case, before the ABC check
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {type(value).__name__}")
    if not low <= int(value) <= high:
        raise ValueError(f"{name} must be {low}..{high}, got {value}")
    return int(value)


class Engine:
    """Serves the sample n-gram model. `device`: a spec ("cpu", "cuda", ...; the engine opens and
    closes it) or an open Device (left open). `lanes`: requests decoded at once (more wait in a
    queue of `max_queued`); `vocab`: "bytes" or "bpe"; `window`: decode steps per committed
    window (even; new requests join and finished ones leave between windows);
    `history_capacity`: tokens of prompt + completion per request."""

    def __init__(self, device: Union[str, Device] = "cpu", *, lanes: int = 64,
                 vocab: str = "bytes", window: int = 16, history_capacity: int = 4096,
                 max_queued: int = 4096) -> None:
        self.vocabulary = load_vocabulary(vocab)
        self._owns_device = isinstance(device, str)
        self.device = Device(device) if self._owns_device else device
        try:
            self._core = _EngineCore(self.device, self.vocabulary.table.words,
                                     lanes=_int_arg("lanes", lanes, 1, SERVING_MAX_LANES),
                                     window=_int_arg("window", window, 2, 4096),
                                     history_capacity=_int_arg("history_capacity",
                                                               history_capacity, 2, 1 << 24),
                                     eos=self.vocabulary.eos,
                                     max_queued=_int_arg("max_queued", max_queued, 1, 1 << 30))
        except BaseException:
            if self._owns_device:
                self.device.close()
            raise
        self._close_lock = threading.Lock()
        self._notifiers = EngineNotifiers(self._core)  # how event loops await the streams

    @property
    def lanes(self) -> int:
        return self._core.lanes

    @property
    def history_capacity(self) -> int:
        return self._core.history_capacity

    @property
    def closed(self) -> bool:
        return self._core.closed

    def submit(self, prompt: Union[str, Sequence[int]], *, max_tokens: int, seed: int = 0,
               stop: Union[str, Sequence[str]] = (), logprobs: bool = False) -> Request:
        """Queues a completion of `prompt` (text, or token ids of the engine's vocabulary) and
        returns its Request at once. ValueError names a bad argument; EngineBusyError when
        `max_queued` requests already wait for a lane; EngineClosedError after close()."""
        tokens = self._prompt_tokens(prompt)
        capacity = self.history_capacity
        if len(tokens) >= capacity:
            raise ValueError(f"prompt: {len(tokens)} tokens, the engine's context holds "
                             f"{capacity} (prompt and completion together)")
        max_tokens = _int_arg("max_tokens", max_tokens, 1, capacity - len(tokens))
        seed = _int_arg("seed", seed, 0, U32_MAX)
        if not isinstance(logprobs, bool):
            raise ValueError(f"logprobs must be True or False, got {logprobs!r}")
        stops = self._stop_bytes(stop)
        stop_sequences = [self.vocabulary.stop_tokens(s) for s in stops]  # <= its bytes each
        try:
            stream = self._core.submit(tokens, max_tokens, seed, logprobs, stop_sequences)
        except DeviceClosedError as e:
            raise EngineClosedError(str(e)) from None
        return Request(self, stream, len(tokens), TextAssembler(self.vocabulary, stops, logprobs))

    def _prompt_tokens(self, prompt) -> list[int]:
        if isinstance(prompt, str):
            tokens = self.vocabulary.encode(prompt)
        elif isinstance(prompt, (bytes, bytearray)):
            raise ValueError("prompt must be text (str) or a sequence of token ids, got bytes")
        else:
            try:
                tokens = np.asarray(prompt)
            except Exception:
                raise ValueError("prompt must be text (str) or a sequence of token ids") from None
            if tokens.ndim != 1 or (tokens.size and tokens.dtype.kind not in "iu"):
                raise ValueError("prompt must be text (str) or a sequence of token ids")
            tokens = tokens.tolist()
            eos, size = self.vocabulary.eos, self.vocabulary.size
            for i, t in enumerate(tokens):
                if not 0 <= t < size or t == eos:
                    why = "the end-of-text token" if t == eos else f"outside 0..{size - 1}"
                    raise ValueError(f"prompt: token {t} at position {i} is {why} "
                                     f"({self.vocabulary.name} vocabulary)")
        if not tokens:
            raise ValueError("prompt is empty")
        return tokens

    @staticmethod
    def _stop_bytes(stop) -> list[bytes]:
        stops = [stop] if isinstance(stop, str) else stop
        if stops is None:
            return []
        try:
            stops = list(stops)
        except TypeError:
            raise ValueError("stop must be a string or a sequence of strings") from None
        if len(stops) > MAX_STOPS:
            raise ValueError(f"stop: at most {MAX_STOPS} stop strings, got {len(stops)}")
        out = []
        for i, s in enumerate(stops):
            if not isinstance(s, str):
                raise ValueError(f"stop[{i}] must be a string, got {type(s).__name__}")
            data = s.encode("utf-8")
            if not 1 <= len(data) <= MAX_STOP_BYTES:
                raise ValueError(f"stop[{i}]: a stop string has 1..{MAX_STOP_BYTES} bytes of "
                                 f"UTF-8, got {len(data)}")
            out.append(data)
        return out

    def _cancel(self, stream) -> None:
        self._core.cancel(stream)

    def stats(self) -> dict:
        """Counters of the decode loop: requests submitted/completed, windows committed,
        admits, items and batches demultiplexed, active lanes, queued requests."""
        return self._core.stats()

    def close(self) -> None:
        """Ends every request still running or queued (finish_reason "cancelled"), stops the
        decode loop, and closes the device if the engine opened it. Idempotent."""
        with self._close_lock:
            self._core.close()
            self._notifiers.close()
            if self._owns_device and not self.device.closed:
                self.device.close()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"Engine({self.device.backend!r}, lanes={self.lanes}, "
                f"vocab={self.vocabulary.name!r}, closed={self.closed})")


__all__ = ["Engine", "EngineBusyError", "EngineClosedError"]
