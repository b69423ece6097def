"""Byte-level tokens: token id = byte value (0..255); 0 doubles as the model's EOS."""

from __future__ import annotations

import codecs
from typing import Iterable


def encode_prompt(text: str) -> list[int]:
    """UTF-8 bytes of `text` as token ids. NUL is refused: it is the document boundary."""
    data = text.encode("utf-8")
    if b"\0" in data:
        raise ValueError("prompt: the NUL character is the model's end-of-text token and "
                         "cannot appear in a prompt")
    return list(data)


def detokenize(tokens: Iterable[int]) -> str:
    """Text of a token sequence (on the CPU, for display); invalid UTF-8 becomes U+FFFD."""
    return bytes(_checked_bytes(tokens)).decode("utf-8", errors="replace")


class StreamingDetokenizer:
    """Turns tokens into text as they arrive; a character split across two chunks of tokens
    is held back until its last byte arrives."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, tokens: Iterable[int]) -> str:
        return self._decoder.decode(bytes(_checked_bytes(tokens)))

    def feed_bytes(self, data: bytes) -> str:
        """As feed(), for tokens that are bytes already (no check per token)."""
        return self._decoder.decode(data)

    def finish(self) -> str:
        return self._decoder.decode(b"", final=True)


def _checked_bytes(tokens: Iterable[int]) -> list[int]:
    out = [int(t) for t in tokens]
    for t in out:
        if not 0 <= t <= 255:
            raise ValueError(f"detokenize: token {t} is not a byte (the model's vocabulary is 0..255)")
    return out
