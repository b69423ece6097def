"""A slow test double of foundry_channels.serving.Engine, for the HTTP tests that need a
generation to outlast the client: a disconnect must cancel a request that is still running,
and the real engine on `cpu` finishes a whole request (EOS within a few hundred tokens) in
about a millisecond. Everything else is tested on the real engine.

Deterministic: the tokens are bytes of a fixed text (multi-byte characters included), read
from an offset that (prompt, seed) selects, one token per request per step of a decode thread.
Stop strings end the text before their first occurrence (not sent, finish_reason "stop");
cancel() stops the request at the next step."""

from __future__ import annotations

import asyncio
import codecs
import threading
import zlib
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

TEXT = ("We hold these truths to be self-evident, that all men are created equal. "
        "Größe, naïveté, ½ ✓ — “quoted” text.\nShall I compare thee to a summer's day? ").encode()
MAX_TOKENS = 4096


@dataclass
class Piece:
    text: str
    tokens: np.ndarray
    logprobs: Optional[np.ndarray]


def expected_output(prompt, seed: int, max_tokens: int, stop: Sequence[str] = ()):
    """(text, tokens, finish_reason) of a request that runs to its end."""
    raw = prompt.encode() if isinstance(prompt, str) else bytes(prompt)
    start = zlib.crc32(raw + seed.to_bytes(8, "little")) % len(TEXT)
    data = (TEXT * (max_tokens // len(TEXT) + 2))[start:start + max_tokens]
    text = data.decode("utf-8", errors="ignore")
    hits = [(text.find(s), s) for s in stop if s in text]
    if not hits:
        return text, list(data), "length"
    cut, first = min(hits)
    used = len(text[:cut + len(first)].encode())
    return text[:cut], list(data[:used]), "stop"


class _Immediate:
    """The "loop" of a blocking reader: wakes it directly."""

    @staticmethod
    def call_soon_threadsafe(callback):
        callback()


class FakeRequest:
    _ids = 0

    def __init__(self, prompt, max_tokens: int, seed: int, stop, logprobs: bool) -> None:
        FakeRequest._ids += 1
        self.id = FakeRequest._ids
        self.prompt_tokens = len(prompt.encode()) if isinstance(prompt, str) else len(prompt)
        self.completion_tokens = 0
        self.finish_reason: Optional[str] = None
        self.first_token_s: Optional[float] = None
        self._text, self._tokens, self._reason = expected_output(prompt, seed, max_tokens, stop)
        self._logprobs = logprobs
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="ignore")
        self._sent_chars = 0
        self._cancel = False
        self._lock = threading.Lock()
        self._pieces: list = []
        self._done = False
        self._waiters: list = []

    def cancel(self) -> None:
        self._cancel = True

    def _step(self) -> None:  # the decode thread: one token, or the end
        if self._cancel or self.completion_tokens == len(self._tokens):
            self.finish_reason = "cancelled" if self._cancel else self._reason
            self._publish(None)
            return
        token = self._tokens[self.completion_tokens]
        self.completion_tokens += 1
        decoded = len(self._decoder.decode(bytes((token,))))
        text = self._text[self._sent_chars:self._sent_chars + decoded]
        self._sent_chars += len(text)
        logprobs = np.full(1, -0.25 * (token % 7 + 1), np.float32) if self._logprobs else None
        self._publish(Piece(text, np.array([token], np.uint32), logprobs))

    def _publish(self, piece) -> None:
        with self._lock:
            if piece is None:
                self._done = True
            else:
                self._pieces.append(piece)
            waiters = list(self._waiters)
        for loop, event in waiters:
            loop.call_soon_threadsafe(event.set)

    async def stream(self):
        event = asyncio.Event()
        entry = (asyncio.get_running_loop(), event)
        with self._lock:
            self._waiters.append(entry)
        sent = 0
        try:
            while True:
                event.clear()
                with self._lock:
                    pieces, done = self._pieces[sent:], self._done
                for piece in pieces:
                    yield piece
                sent += len(pieces)
                if done and not pieces:
                    return
                if not pieces:
                    await event.wait()
        finally:
            with self._lock:
                self._waiters.remove(entry)

    def pieces(self, timeout=None):
        sent = 0
        event = threading.Event()
        with self._lock:
            self._waiters.append((_Immediate, event))
        try:
            while True:
                event.clear()
                with self._lock:
                    pieces, done = self._pieces[sent:], self._done
                yield from pieces
                sent += len(pieces)
                if done and not pieces:
                    return
                if not pieces and not event.wait(timeout):
                    raise TimeoutError("no piece within the timeout")
        finally:
            with self._lock:
                self._waiters.remove((_Immediate, event))

    @property
    def active(self) -> bool:
        return self.finish_reason is None


class FakeEngine:
    def __init__(self, step_s: float = 0.0005) -> None:
        from foundry_channels.serving.vocabulary import load_vocabulary

        self.vocabulary = load_vocabulary("bytes")
        self.step_s = step_s
        self.requests: list[FakeRequest] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._decode, daemon=True)
        self._thread.start()

    def submit(self, prompt, *, max_tokens: int, seed: int = 0, stop: Sequence[str] = (),
               logprobs: bool = False) -> FakeRequest:
        if not prompt:
            raise ValueError("prompt must not be empty")
        if not 1 <= max_tokens <= MAX_TOKENS:
            raise ValueError(f"max_tokens must be 1..{MAX_TOKENS}, got {max_tokens}")
        if not 0 <= seed < 2**32:
            raise ValueError(f"seed must be 0..2^32-1, got {seed}")
        if any(not s for s in stop):
            raise ValueError("stop strings must not be empty")
        request = FakeRequest(prompt, max_tokens, seed, tuple(stop), logprobs)
        with self._lock:
            self.requests.append(request)
        return request

    def _decode(self) -> None:
        while not self._closed.wait(self.step_s):
            with self._lock:
                active = [r for r in self.requests if r.active]
            for request in active:
                request._step()

    def close(self) -> None:
        with self._lock:
            for request in self.requests:
                request.cancel()
        self._closed.set()
        self._thread.join()
        for request in self.requests:
            if request.active:
                request.finish_reason = "cancelled"
                request._publish(None)
