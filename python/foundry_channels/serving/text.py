"""A request's text layer: tokens in, text pieces out, with OpenAI's stop-string semantics.

Works on bytes (each token stands for fixed bytes, vocabulary.py), in this order:
  1. stop strings: the bytes after the first occurrence of a stop string are never released,
     nor is the stop string itself; bytes that could still become a stop string (a suffix of
     what arrived that is a prefix of one) are held back only until they can't;
  2. UTF-8: released bytes are decoded incrementally, so a piece never ends inside a code point
     (invalid bytes become U+FFFD);
  3. tokens: a token is released with the piece that releases its last byte (a token whose
     bytes reach into a stop string is never released).
The device matches stop strings too, as token sequences, so a lane stops at once; this layer is
the authority for the text (it also finds a stop string spelt with other tokens)."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..lm import StreamingDetokenizer


class StopFilter:
    """Cuts a byte stream at its first stop string, holding back what could still become one."""

    def __init__(self, stops: Sequence[bytes]) -> None:
        self.stops = [s for s in stops if s]
        self._held = b""
        self.stopped = False

    def feed(self, data: bytes) -> bytes:
        """The bytes that can be released now; sets `stopped` at a stop string (after which
        nothing more is released)."""
        if self.stopped:
            return b""
        buf = self._held + data
        if not self.stops:
            return buf
        # The stop string that completes first (then the one that starts first) wins, as if
        # the bytes had come one at a time: the result never depends on how they were batched.
        found = [(i + len(s), i) for s, i in ((s, buf.find(s)) for s in self.stops) if i >= 0]
        if found:
            self.stopped = True
            self._held = b""
            return buf[:min(found)[1]]
        hold = 0
        for s in self.stops:
            for k in range(min(len(s) - 1, len(buf)), hold, -1):
                if buf.endswith(s[:k]):
                    hold = k
                    break
        self._held = buf[len(buf) - hold:]
        return buf[:len(buf) - hold]

    def finish(self) -> bytes:
        """The bytes held back: the stream ended, so they can no longer become a stop string."""
        held, self._held = self._held, b""
        return b"" if self.stopped else held


class Piece:
    """A piece of a completion: its text (never split inside a UTF-8 code point), the tokens
    whose bytes it completes, and their log-probabilities (None unless the request asked)."""

    __slots__ = ("text", "tokens", "logprobs")

    def __init__(self, text: str, tokens: np.ndarray, logprobs: Optional[np.ndarray]) -> None:
        self.text = text
        self.tokens = tokens
        self.logprobs = logprobs

    def __repr__(self) -> str:
        return f"Piece(text={self.text!r}, tokens={self.tokens.tolist()!r})"


class TextAssembler:
    """Turns a request's tokens into Pieces (one consumer). Vectorised: a batch of tokens costs
    a few numpy calls, not Python work per token (the bytes vocabulary's tokens are bytes)."""

    def __init__(self, vocabulary, stops: Sequence[bytes], logprobs: bool) -> None:
        self._vocabulary = vocabulary
        self._filter = StopFilter(stops)
        self._decoder = StreamingDetokenizer()  # bytes in, text out, never a split character
        # Tokens not released yet, their log-probabilities, and where each one's bytes end
        # (counted from the first byte of the completion).
        self._tokens = np.empty(0, np.uint32)
        self._values: Optional[np.ndarray] = np.empty(0, np.float32) if logprobs else None
        self._ends = np.empty(0, np.int64)
        self._received = 0  # bytes of every token so far
        self._released = 0  # bytes released so far

    @property
    def stopped(self) -> bool:
        """A stop string was found: nothing after it is ever released."""
        return self._filter.stopped

    def feed(self, tokens: np.ndarray, logprobs: Optional[np.ndarray]) -> Optional[Piece]:
        data, ends = self._vocabulary.join(tokens)
        if len(self._tokens):  # tokens held back from the last piece come first
            self._tokens = np.concatenate((self._tokens, tokens))
            if self._values is not None:
                self._values = np.concatenate((self._values, logprobs))
            self._ends = np.concatenate((self._ends, ends + self._received))
        else:  # the usual case: everything so far was released
            self._tokens = tokens
            if self._values is not None:
                self._values = logprobs
            self._ends = ends + self._received
        self._received += len(data)
        released = self._filter.feed(data)
        text = self._decoder.feed_bytes(released)
        if self.stopped:  # the text ends here: a character the stop string cut short is U+FFFD
            text += self._decoder.finish()
        return self._piece(released, text)

    def finish(self) -> Optional[Piece]:
        """The last piece once the stream ended: the held bytes, the decoder's tail."""
        released = self._filter.finish()
        return self._piece(released, self._decoder.feed_bytes(released) + self._decoder.finish())

    def _piece(self, released: bytes, text: str) -> Optional[Piece]:
        self._released += len(released)
        done = int(np.searchsorted(self._ends, self._released, side="right"))
        if not text and not done:
            return None
        tokens, self._tokens = self._tokens[:done], self._tokens[done:]
        self._ends = self._ends[done:]
        values = None
        if self._values is not None:
            values, self._values = self._values[:done], self._values[done:]
        return Piece(text, tokens, values)
