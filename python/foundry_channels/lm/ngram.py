"""The n-gram table: counting, packing into the device layout, and a pure-Python sampler.

The device layout and the sampling rule are documented once, in csrc/kernels/lm_kernels.inc;
`pack` writes that layout and `reference_generate` mirrors `lm_decode_step` step for step
(same hash, same probing, same integer inverse CDF), so the two must agree token for token.

Tokens are `bits` wide: bytes (8, `builtin_table`) or the ids of the shipped BPE vocabulary
(10, lm/bpe.py). One counter, one packer and one sampler serve both; only the field widths
and the boundary token (the document boundary and EOS) differ.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass
from importlib import resources
from typing import Optional, Sequence

import numpy as np

from .stop import StopFlag

EOS_TOKEN = 0  # byte 0 ends a document in the training text
MAX_ORDER = 3  # context bytes; the key packs order (top byte) and up to 3 bytes
BYTE_BITS = 8
KEY_CONTEXT_BITS = 24  # a key's context field: order * bits must fit (lm_kernels.inc)
MODEL_MAGIC = 0x464C4D31  # "FLM1"
HEADER_WORDS = 8
EMPTY_KEY = 0xFFFFFFFF
_M32 = 0xFFFFFFFF


def load_passages(text: str | None = None) -> list[bytes]:
    """Passages of the training text (the shipped one by default): '#' lines are comments,
    a line holding only '%' separates passages."""
    if text is None:
        text = resources.files(__package__).joinpath("data/public_domain.txt").read_text("utf-8")
    passages, current = [], []
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        if line.strip() == "%":
            passages.append("\n".join(current).strip())
            current = []
        else:
            current.append(line)
    passages.append("\n".join(current).strip())
    return [p.encode("utf-8") for p in passages if p]


def max_order(bits: int) -> int:
    """The longest context of `bits`-bit tokens a key holds (3 bytes, 2 BPE tokens)."""
    return min(MAX_ORDER, KEY_CONTEXT_BITS // bits)


def context_key(order: int, context: int, bits: int = BYTE_BITS) -> int:
    """The table key of the last `order` tokens (`context`: most recent in the low bits)."""
    if order == 0:
        return 0
    return (order << 24) | (context & ((1 << (bits * order)) - 1))


@dataclass(frozen=True)
class NgramTable:
    order: int
    counts: dict[int, dict[int, int]]  # context key -> {next token: count}
    words: np.ndarray  # the packed device layout (u32)
    bits: int = BYTE_BITS  # token width
    boundary: int = EOS_TOKEN  # the document boundary: context before a passage, and EOS
    vocabulary: str = "bytes"  # what the tokens are: "bytes" or "bpe" (lm/bpe.py)

    @property
    def nbytes(self) -> int:
        return int(self.words.nbytes)


def _check_width(order: int, bits: int) -> None:
    if not 1 <= bits <= 16:
        raise ValueError(f"token width must be 1..16 bits, got {bits}")
    if not 0 <= order <= max_order(bits):
        raise ValueError(f"order must be 0..{max_order(bits)} for {bits}-bit tokens (a key holds "
                         f"{KEY_CONTEXT_BITS} bits of context), got {order}")


def count_ngrams(passages: Sequence[Sequence[int]], order: int, bits: int = BYTE_BITS,
                 boundary: int = EOS_TOKEN) -> dict[int, dict[int, int]]:
    """Next-token counts for every context of 0..order tokens of `bits` bits (a passage is a
    token sequence: bytes, or BPE ids). Each passage is read as if preceded by `order`
    boundary tokens and followed by one (the boundary is the EOS token too)."""
    _check_width(order, bits)
    counts: dict[int, Counter] = {}
    for passage in passages:
        tokens = list(passage)
        if boundary in tokens:
            raise ValueError(f"the training text may not contain token {boundary} (the "
                             "boundary and EOS token: for bytes, NUL)")
        if tokens and not 0 <= max(tokens) < 1 << bits:
            raise ValueError(f"token {max(tokens)} does not fit {bits} bits")
        seq = [boundary] * order + tokens + [boundary]
        for t in range(order, len(seq)):
            context = 0
            for i in range(order):
                context |= seq[t - 1 - i] << (bits * i)
            for o in range(order + 1):
                counts.setdefault(context_key(o, context, bits), Counter())[seq[t]] += 1
    return {k: dict(v) for k, v in counts.items()}


def _slot(key: int, bits: int) -> int:
    return ((key * 0x9E3779B1) & _M32) >> (32 - bits)


def pack(counts: dict[int, dict[int, int]], order: int, bits: int = BYTE_BITS,
         boundary: int = EOS_TOKEN) -> np.ndarray:
    """The device layout of lm_kernels.inc: header, keys[slots], spans[slots], entries."""
    _check_width(order, bits)
    if 0 not in counts:
        raise ValueError("the table needs the order-0 context (an empty training text?)")
    slot_bits = 4
    while (1 << slot_bits) < 2 * len(counts):  # load factor <= 1/2 keeps probes short
        slot_bits += 1
    slots = 1 << slot_bits
    keys = np.full(slots, EMPTY_KEY, dtype=np.uint32)
    spans = np.zeros(slots, dtype=np.uint32)
    entries: list[int] = []
    for key in sorted(counts):
        slot = _slot(key, slot_bits)
        while keys[slot] != EMPTY_KEY:
            slot = (slot + 1) & (slots - 1)
        keys[slot] = key
        first, cumulative = len(entries), 0
        for token, n in sorted(counts[key].items()):
            cumulative += n
            entries.append((cumulative << bits) | token)
        if cumulative >= 1 << (32 - bits):
            raise ValueError(f"training text too large: a context count exceeds 2^{32 - bits}")
        if first >= 1 << (31 - bits):
            raise ValueError("training text too large: too many table entries")
        spans[slot] = (first << (bits + 1)) | len(counts[key])
    header = np.array(
        [MODEL_MAGIC, slot_bits, order, HEADER_WORDS, HEADER_WORDS + slots,
         HEADER_WORDS + 2 * slots, len(entries), (boundary << 8) | bits],
        dtype=np.uint32,
    )
    return np.concatenate([header, keys, spans, np.array(entries, dtype=np.uint32)])


def build_table(passages: Sequence[Sequence[int]], order: int = MAX_ORDER,
                bits: int = BYTE_BITS, boundary: int = EOS_TOKEN,
                vocabulary: str = "bytes") -> NgramTable:
    counts = count_ngrams(passages, order, bits, boundary)
    words = pack(counts, order, bits, boundary)
    words.setflags(write=False)
    return NgramTable(order=order, counts=counts, words=words, bits=bits, boundary=boundary,
                      vocabulary=vocabulary)


@functools.lru_cache(maxsize=None)
def builtin_table(order: int = MAX_ORDER) -> NgramTable:
    """The table of the shipped text (built once per process: a few milliseconds)."""
    return build_table(load_passages(), order)


# ---- the sampler, mirrored from lm_kernels.inc ----------------------------------------


def _mix(x: int) -> int:
    x ^= x >> 16
    x = (x * 0x7FEB352D) & _M32
    x ^= x >> 15
    x = (x * 0x846CA68B) & _M32
    x ^= x >> 16
    return x


def sample_random(seed: int, position: int) -> int:
    """fc_lm_random: the u32 that picks the token at `position` for `seed`."""
    return _mix((_mix(seed ^ 0x5BD1E995) + position * 0x9E3779B9) & _M32)


def reference_sample(table: NgramTable, history: list[int], seed: int) -> int:
    position = len(history)
    mask = (1 << table.bits) - 1
    context = 0
    for i in range(table.order):
        t = history[position - 1 - i] & mask if position > i else table.boundary
        context |= t << (table.bits * i)
    for o in range(table.order, -1, -1):
        nexts = table.counts.get(context_key(o, context, table.bits))
        if not nexts:
            continue
        total = sum(nexts.values())
        r = sample_random(seed, position) % total
        cumulative = 0
        for token, n in sorted(nexts.items()):
            cumulative += n
            if r < cumulative:
                return token
    return table.boundary


def reference_generate(table: NgramTable, prompt: list[int], seed: int, max_tokens: int,
                       eos_token: Optional[int] = None, capacity: int = 1 << 30
                       ) -> tuple[list[int], int]:
    """What prefill + decode steps produce on the device: (generated tokens, stop flag), the
    flag as lm_decode_step sets it (0 when the step budget ran out first). `eos_token`
    defaults to the table's boundary token."""
    if eos_token is None:
        eos_token = table.boundary
    history = list(prompt[:capacity])
    if len(prompt) > capacity:
        return [], StopFlag.HISTORY_FULL
    generated: list[int] = []
    for _ in range(max_tokens):
        if len(history) >= capacity:
            return generated, StopFlag.HISTORY_FULL
        token = reference_sample(table, history, seed)
        if token == eos_token:
            return generated, StopFlag.EOS
        history.append(token)
        generated.append(token)
    return generated, StopFlag.RUNNING
