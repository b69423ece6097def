"""The n-gram table: counting, packing into the device layout, and a pure-Python sampler.

The device layout and the sampling rule are documented once, in csrc/kernels/lm_kernels.inc;
`pack` writes that layout and `reference_generate` mirrors `lm_decode_step` step for step
(same hash, same probing, same integer inverse CDF), so the two must agree token for token.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass
from importlib import resources

import numpy as np

from .stop import StopFlag

EOS_TOKEN = 0  # byte 0 ends a document in the training text
MAX_ORDER = 3  # context bytes; the key packs order (top byte) and up to 3 bytes
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


def context_key(order: int, context: int) -> int:
    """The table key of the last `order` tokens (`context`: most recent in the low byte)."""
    if order == 0:
        return 0
    return (order << 24) | (context & ((1 << (8 * order)) - 1))


@dataclass(frozen=True)
class NgramTable:
    order: int
    counts: dict[int, dict[int, int]]  # context key -> {next token: count}
    words: np.ndarray  # the packed device layout (u32)

    @property
    def nbytes(self) -> int:
        return int(self.words.nbytes)


def count_ngrams(passages: list[bytes], order: int) -> dict[int, dict[int, int]]:
    """Next-token counts for every context of 0..order bytes. Each passage is read as if
    preceded by `order` zero bytes (a document boundary) and followed by EOS."""
    if not 0 <= order <= MAX_ORDER:
        raise ValueError(f"order must be 0..{MAX_ORDER}, got {order}")
    counts: dict[int, Counter] = {}
    for passage in passages:
        if EOS_TOKEN in passage:
            raise ValueError("the training text may not contain NUL bytes (the EOS token)")
        seq = bytes(order) + passage + bytes([EOS_TOKEN])
        for t in range(order, len(seq)):
            context = 0
            for i in range(order):
                context |= seq[t - 1 - i] << (8 * i)
            for o in range(order + 1):
                counts.setdefault(context_key(o, context), Counter())[seq[t]] += 1
    return {k: dict(v) for k, v in counts.items()}


def _slot(key: int, bits: int) -> int:
    return ((key * 0x9E3779B1) & _M32) >> (32 - bits)


def pack(counts: dict[int, dict[int, int]], order: int) -> np.ndarray:
    """The device layout of lm_kernels.inc: header, keys[slots], spans[slots], entries."""
    if 0 not in counts:
        raise ValueError("the table needs the order-0 context (an empty training text?)")
    bits = 4
    while (1 << bits) < 2 * len(counts):  # load factor <= 1/2 keeps probes short
        bits += 1
    slots = 1 << bits
    keys = np.full(slots, EMPTY_KEY, dtype=np.uint32)
    spans = np.zeros(slots, dtype=np.uint32)
    entries: list[int] = []
    for key in sorted(counts):
        slot = _slot(key, bits)
        while keys[slot] != EMPTY_KEY:
            slot = (slot + 1) & (slots - 1)
        keys[slot] = key
        first, cumulative = len(entries), 0
        for token, n in sorted(counts[key].items()):
            cumulative += n
            entries.append((cumulative << 8) | token)
        if cumulative >= 1 << 24:
            raise ValueError("training text too large: a context count exceeds 2^24")
        spans[slot] = (first << 9) | len(counts[key])
    header = np.array(
        [MODEL_MAGIC, bits, order, HEADER_WORDS, HEADER_WORDS + slots,
         HEADER_WORDS + 2 * slots, len(entries), 0],
        dtype=np.uint32,
    )
    return np.concatenate([header, keys, spans, np.array(entries, dtype=np.uint32)])


def build_table(passages: list[bytes], order: int = MAX_ORDER) -> NgramTable:
    counts = count_ngrams(passages, order)
    words = pack(counts, order)
    words.setflags(write=False)
    return NgramTable(order=order, counts=counts, words=words)


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
    context = 0
    for i in range(table.order):
        t = history[position - 1 - i] & 255 if position > i else 0
        context |= t << (8 * i)
    for o in range(table.order, -1, -1):
        nexts = table.counts.get(context_key(o, context))
        if not nexts:
            continue
        total = sum(nexts.values())
        r = sample_random(seed, position) % total
        cumulative = 0
        for token, n in sorted(nexts.items()):
            cumulative += n
            if r < cumulative:
                return token
    return EOS_TOKEN


def reference_generate(table: NgramTable, prompt: list[int], seed: int, max_tokens: int,
                       eos_token: int = EOS_TOKEN, capacity: int = 1 << 30
                       ) -> tuple[list[int], int]:
    """What prefill + decode steps produce on the device: (generated tokens, stop flag), the
    flag as lm_decode_step sets it (0 when the step budget ran out first)."""
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
