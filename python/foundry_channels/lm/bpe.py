"""The sample model over the shipped byte-level BPE vocabulary (data/tokenizer.json, 1024
tokens): the same n-gram table and sampler as the byte model (ngram.py), over 10-bit token ids.

Its tokens are turned back into text on the device (detok_push, vocab.Vocabulary), so a run
needs no detokenizer on the CPU; `tokenizers` is needed here only to tokenize the training
text and the prompt.
"""

from __future__ import annotations

import functools

from .ngram import NgramTable, build_table, load_passages, max_order
from .vocab import CORPUS_FILES, Vocabulary, shipped_tokenizer

BPE_BITS = 10  # 1024 tokens
BPE_MAX_ORDER = max_order(BPE_BITS)  # 2 tokens of context: a key holds 24 bits


@functools.lru_cache(maxsize=1)
def _tokenizer():
    return shipped_tokenizer()


@functools.lru_cache(maxsize=1)
def shipped_vocabulary() -> Vocabulary:
    """The shipped tokenizer's token id -> bytes table (what detok_push reads)."""
    return Vocabulary.from_tokenizer(_tokenizer())


def bpe_eos() -> int:
    """The model's boundary and EOS token: the token of the NUL byte, which the training text
    never contains (as byte 0 is the byte model's)."""
    return shipped_vocabulary().tokens.index(b"\0")


def encode_prompt_bpe(text: str) -> list[int]:
    """The prompt's BPE token ids. NUL is refused: its token is the model's end of text."""
    if "\0" in text:
        raise ValueError("prompt: the NUL character is the model's end-of-text token and "
                         "cannot appear in a prompt")
    return _tokenizer().encode(text).ids


def _training_passages() -> list[str]:
    """The tokenizer's own corpus (the shipped text and the multi-byte text), so that the
    model generates multi-byte characters split across tokens."""
    texts = [path.read_text(encoding="utf-8") for path in CORPUS_FILES]
    return [p.decode("utf-8") for text in texts for p in load_passages(text)]


@functools.lru_cache(maxsize=None)
def bpe_table(order: int = BPE_MAX_ORDER) -> NgramTable:
    """The n-gram table of the shipped text over BPE tokens (built once per process)."""
    if not 0 <= order <= BPE_MAX_ORDER:
        raise ValueError(f"order must be 0..{BPE_MAX_ORDER} for the BPE model ({BPE_BITS}-bit "
                         f"tokens: a key holds 24 bits of context), got {order}")
    tokenizer = _tokenizer()
    passages = [tokenizer.encode(p).ids for p in _training_passages()]
    return build_table(passages, order, bits=BPE_BITS, boundary=bpe_eos(), vocabulary="bpe")
