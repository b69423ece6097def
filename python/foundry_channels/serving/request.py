"""A submitted request: its pieces of text as the engine produces them, and its cancel.

The engine's driver thread (C++) demultiplexes the device's tokens into the request's
RequestStream; iterating takes every token that arrived since the last piece at once (one
piece per wake-up, not per token) and runs it through the text layer (text.py)."""

from __future__ import annotations

import threading
from typing import AsyncIterator, Iterator, Optional

from .._core import ConcurrentUseError, FoundryChannelsError
from .text import Piece, TextAssembler


class EngineError(FoundryChannelsError):
    """The engine failed while the request ran (a device fault); the message says why."""


class Request:
    """One completion. Read it once, with `for piece in req.pieces()` or
    `async for piece in req.stream()`; `finish_reason` is set when the iterator ends."""

    def __init__(self, engine, stream, prompt_tokens: int, assembler: TextAssembler) -> None:
        self._engine = engine
        self._stream = stream
        self._assembler = assembler
        self._finish_reason: Optional[str] = None
        self._done = False
        self._consumer = threading.Lock()
        self.id: int = stream.id
        self.prompt_tokens = prompt_tokens

    @property
    def completion_tokens(self) -> int:
        """Tokens the device generated for this request and the engine delivered so far (a
        matched stop string's tokens included, as OpenAI's usage counts them)."""
        return self._stream.published

    @property
    def finish_reason(self) -> Optional[str]:
        """None while running; then "stop" (EOS or a stop string), "length" (max_tokens),
        "cancelled" (cancel(), or the engine closed) or "error" (the device failed: the
        iterators raise EngineError). Set when the iterators end; "cancelled" and "error" also
        as soon as they happen (a request nobody reads ended by cancel() or Engine.close())."""
        if self._finish_reason is None and self._stream.finish_reason in ("cancelled", "error"):
            return self._stream.finish_reason
        return self._finish_reason

    @property
    def first_token_s(self) -> Optional[float]:
        """Seconds from submit() to the engine's first sight of a token (None before)."""
        return self._stream.first_token_s

    @property
    def ready(self) -> bool:
        """True when the next piece, or the end of the iteration, can be had without waiting
        (a server sends what is ready together: one write for several pieces)."""
        stream = self._stream
        return self._done or stream.unread != 0 or stream.exhausted

    def cancel(self) -> None:
        """Stops the request: thread-safe, idempotent. Nothing the device makes after this call
        is delivered; the lane stops on the device at the next window boundary."""
        self._engine._cancel(self._stream)
        if self._finish_reason is None:
            self._finish_reason = "cancelled"

    # ---- reading ---------------------------------------------------------------------------

    def pieces(self, timeout: Optional[float] = None) -> Iterator[Piece]:
        """The pieces as they arrive (blocking; the GIL is released while waiting). Each wait is
        bounded by `timeout` seconds (TimeoutError); None waits as long as the request runs."""
        with self._reading():
            while not self._done:
                piece = self._next_piece()
                if piece is not None:
                    yield piece
                elif not self._done and self._stream.wait(timeout) == "timeout":
                    raise self._timeout(timeout)

    async def stream(self, timeout: Optional[float] = None) -> AsyncIterator[Piece]:
        """The pieces as they arrive, awaited through the engine's notify fd (loop_notifier.py:
        one fd wake-up for every stream a batch fed) or, with a timeout or from a second
        event loop, through the process's poller thread (no thread per request, no Python
        sleeps either way)."""
        from .._reader_async import wait_ready

        stream = self._stream

        def ready() -> bool:
            return stream.unread != 0 or stream.exhausted

        notifier = self._engine._notifiers.for_running_loop() if timeout is None else None
        with self._reading():
            while not self._done:
                piece = self._next_piece()
                if piece is not None:
                    yield piece
                elif self._done:
                    break
                elif notifier is not None and not notifier.closed:
                    await notifier.wait(self, ready)
                elif not await wait_ready(stream, ready, timeout):
                    raise self._timeout(timeout)

    def text(self, timeout: Optional[float] = None) -> str:
        """The whole completion (blocks until the request ends)."""
        return "".join(piece.text for piece in self.pieces(timeout))

    def _timeout(self, timeout) -> TimeoutError:
        return TimeoutError(f"request {self.id}: no token within {timeout} s")

    def _reading(self):
        if not self._consumer.acquire(blocking=False):
            raise ConcurrentUseError(f"request {self.id} is being read by another iterator: a "
                                     "request has one reader")
        return _Release(self._consumer)

    def _next_piece(self) -> Optional[Piece]:
        """Everything that arrived since the last call as one piece (None if nothing did); at
        the end of the stream the last piece, and `_done`."""
        if self._done:
            return None
        stream = self._stream
        tokens, logprobs, n = stream.take()
        if n:
            piece = self._assembler.feed(tokens, logprobs)
            if self._assembler.stopped:  # a stop string in the text: the lane may still run
                self._engine._cancel(stream)
                self._end("stop")
            return piece
        if not stream.exhausted:
            return None
        reason = stream.finish_reason
        if reason == "error":
            self._end("error")
            raise EngineError(f"request {self.id}: {stream.error_message}")
        # Cancelled: what arrived before the cancel was delivered; bytes held back (a possible
        # stop string, an unfinished character) are not flushed into text after it.
        piece = None if reason == "cancelled" else self._assembler.finish()
        self._end(reason)
        return piece

    def _end(self, reason: str) -> None:
        self._done = True
        if self._finish_reason is None:
            self._finish_reason = reason

    def __del__(self) -> None:
        # A request dropped before it ended frees its lane (nobody can read it any more).
        try:
            if self._stream.finish_reason is None:
                self._engine._cancel(self._stream)
        except Exception:  # interpreter shutdown: the engine may be gone already
            pass

    def __repr__(self) -> str:
        return (f"Request(id={self.id}, prompt_tokens={self.prompt_tokens}, "
                f"completion_tokens={self.completion_tokens}, finish_reason={self._finish_reason!r})")


class _Release:
    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc) -> None:
        self._lock.release()
