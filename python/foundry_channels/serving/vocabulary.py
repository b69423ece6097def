"""The serving engine's vocabularies: how text becomes the sample model's tokens and back.

`bytes` (the default): a token is a byte of UTF-8. `bpe`: the shipped 1024-token byte-level BPE
(lm/bpe.py; needs the `tokenizers` library). Either way a token stands for a fixed byte string,
so the engine's text layer (text.py) works on bytes and turns them into text once."""

from __future__ import annotations

import functools
from typing import Sequence

import numpy as np

from ..lm import builtin_table, encode_prompt
from ..lm.ngram import NgramTable

VOCABULARIES = ("bytes", "bpe")


class Vocabulary:
    """A model (its n-gram table), its EOS token and the bytes of each token."""

    def __init__(self, name: str, table: NgramTable, token_bytes: Sequence[bytes]) -> None:
        self.name = name
        self.table = table
        self.eos = table.boundary
        self.size = 1 << table.bits
        self._bytes = list(token_bytes)
        self._lengths = np.array([len(b) for b in self._bytes], dtype=np.int64)

    def encode(self, text: str) -> list[int]:
        """The prompt's tokens; ValueError for the NUL character (the model's end of text)."""
        if self.name == "bpe":
            from ..lm.bpe import encode_prompt_bpe

            return encode_prompt_bpe(text)
        return encode_prompt(text)

    def stop_tokens(self, stop: bytes) -> list[int]:
        """The tokens the device matches for a stop string: its bytes, or (BPE) its canonical
        tokenization. A BPE completion may spell the string with other tokens: the CPU text
        layer matches the text itself as well, so such a stop is still found (one step later)."""
        if self.name == "bpe":
            return self.encode(stop.decode("utf-8"))
        return list(stop)

    def token_bytes(self, token: int) -> bytes:
        """The bytes of one token (an OpenAI logprobs entry's `bytes`)."""
        return self._bytes[token]

    def join(self, tokens: np.ndarray) -> tuple[bytes, np.ndarray]:
        """The bytes of `tokens` (u32 array) and where each token's bytes end in them."""
        if self.name == "bytes":  # a token is its byte: no Python work per token
            return tokens.astype(np.uint8).tobytes(), np.arange(1, len(tokens) + 1)
        table = self._bytes
        return b"".join([table[t] for t in tokens.tolist()]), np.cumsum(self._lengths[tokens])


@functools.lru_cache(maxsize=None)
def load_vocabulary(name: str) -> Vocabulary:
    """The vocabulary `name` ('bytes' or 'bpe'), built once per process."""
    if name == "bytes":
        return Vocabulary("bytes", builtin_table(), [bytes([b]) for b in range(256)])
    if name == "bpe":
        from ..lm.bpe import bpe_table, shipped_vocabulary

        return Vocabulary("bpe", bpe_table(), shipped_vocabulary().tokens)
    raise ValueError(f"vocab must be one of {', '.join(repr(v) for v in VOCABULARIES)}, got {name!r}")
