"""Vocabularies for device-side detokenization: a table token id -> bytes, uploaded once, that a
kernel (detok_push, csrc/kernels/bytes_kernels.inc) reads to push each sampled token's bytes
into a byte channel, so the CPU runs no detokenizer.

The shipped tokenizer (data/tokenizer.json) is a byte-level BPE trained with the `tokenizers`
library on the package's own text (`python -m foundry_channels.lm.vocab --train` rebuilds it),
so nothing is downloaded.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Sequence

import numpy as np

from .._core import Buffer, Device

DATA = Path(__file__).parent / "data"
TOKENIZER_FILE = DATA / "tokenizer.json"
CORPUS_FILES = (DATA / "public_domain.txt", DATA / "multilingual.txt")
VOCAB_MAGIC = 0x46564231  # "FVB1", the table's word 0 (bytes_kernels.inc)
HEADER_WORDS = 4


@functools.lru_cache(maxsize=1)
def byte_level_decoding() -> dict[str, int]:
    """The byte-level BPE alphabet (GPT-2's bytes_to_unicode, used by `tokenizers`' ByteLevel):
    printable bytes stand for themselves, the other 68 map to U+0100 onwards in byte order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    chars = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + extra)
            extra += 1
    return {c: b for b, c in chars.items()}


def token_bytes(tokenizer) -> list[bytes]:
    """The bytes of every token id of a byte-level BPE `tokenizers.Tokenizer`."""
    decode = byte_level_decoding()
    out = []
    for token_id in range(tokenizer.get_vocab_size()):
        token = tokenizer.id_to_token(token_id)
        try:
            out.append(bytes(decode[c] for c in token))
        except KeyError as e:
            raise ValueError(f"token {token_id} ({token!r}) is not a byte-level BPE token: "
                             f"character {e.args[0]!r} is outside the byte alphabet") from None
    return out


class Vocabulary:
    """A token id -> bytes table in the layout detok_push reads (u32 words):
    [magic, n, word offset of offsets[n + 1], word offset of the bytes], offsets, bytes."""

    def __init__(self, tokens: Sequence[bytes]) -> None:
        self.tokens = [bytes(t) for t in tokens]
        n = len(self.tokens)
        offsets = np.zeros(n + 1, dtype=np.uint32)
        np.cumsum([len(t) for t in self.tokens], out=offsets[1:])
        blob = b"".join(self.tokens)
        blob += b"\0" * (-len(blob) % 4)
        data = np.frombuffer(blob, dtype="<u4") if blob else np.zeros(0, np.uint32)
        self.words = np.concatenate([
            np.array([VOCAB_MAGIC, n, HEADER_WORDS, HEADER_WORDS + n + 1], dtype=np.uint32),
            offsets, data]).astype(np.uint32)

    @classmethod
    def from_tokenizer(cls, tokenizer) -> "Vocabulary":
        return cls(token_bytes(tokenizer))

    def __len__(self) -> int:
        return len(self.tokens)

    def decode(self, ids: Sequence[int]) -> bytes:
        return b"".join(self.tokens[i] for i in ids)

    def upload(self, device: Device) -> Buffer:
        """A shared buffer holding the table (read by every detok_push)."""
        buffer = device.buffer(self.words.nbytes)
        buffer.numpy("uint32")[:] = self.words
        return buffer


def shipped_tokenizer():
    """The package's byte-level BPE tokenizer (needs the `tokenizers` library)."""
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(TOKENIZER_FILE))


def train_tokenizer(vocab_size: int = 1024):
    """Trains the shipped tokenizer on the package's text (deterministic for one input)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    lines = [line for path in CORPUS_FILES
             for line in path.read_text(encoding="utf-8").splitlines()
             if line and not line.startswith("#")]
    tokenizer.train_from_iterator(lines, trainer=trainer)
    return tokenizer


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="Rebuild the shipped tokenizer.")
    ap.add_argument("--train", action="store_true", help=f"write {TOKENIZER_FILE}")
    args = ap.parse_args()
    if args.train:
        train_tokenizer().save(str(TOKENIZER_FILE))
        print(f"wrote {TOKENIZER_FILE}")
