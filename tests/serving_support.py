"""What a serving request must produce, computed without the engine: the sample model's
reference sampler (lm.reference_generate, which the device kernels match token for token) plus
OpenAI's stop-string rule (the stop string that completes first ends the text, before it)."""

from __future__ import annotations

import math
from typing import NamedTuple, Optional, Sequence

from foundry_channels.lm import builtin_table, reference_generate
from foundry_channels.lm.ngram import NgramTable, context_key
from foundry_channels.lm.stop import StopFlag


class Expected(NamedTuple):
    tokens: list  # the tokens the request's pieces carry
    text: str  # the pieces' text joined
    completion_tokens: int  # tokens the device generates (a stop string's included)
    finish_reason: str


def first_stop(data: bytes, stops: Sequence[bytes]) -> Optional[tuple[int, int]]:
    """(end, start) of the stop string that completes first in `data` (None if none does)."""
    found = [(i + len(s), i) for s, i in ((s, data.find(s)) for s in stops) if i >= 0]
    return min(found) if found else None


def expected(prompt: list, seed: int, max_tokens: int, stops: Sequence[bytes] = (),
             table: Optional[NgramTable] = None) -> Expected:
    """The byte model's request: tokens are bytes."""
    table = table or builtin_table()
    generated, flag = reference_generate(table, prompt, seed, max_tokens)
    stop = first_stop(bytes(generated), stops)
    if stop is not None:
        end, start = stop
        kept = generated[:start]
        return Expected(kept, bytes(kept).decode("utf-8", "replace"), end, "stop")
    reason = "stop" if flag == StopFlag.EOS else "length"
    return Expected(generated, bytes(generated).decode("utf-8", "replace"), len(generated), reason)


def reference_logprobs(table: NgramTable, prompt: list, tokens: list) -> list:
    """log P(token | the context the sampler drew it from) for each generated token."""
    history = list(prompt)
    out = []
    for token in tokens:
        context = 0
        for i in range(table.order):
            t = history[-1 - i] if len(history) > i else table.boundary
            context |= t << (table.bits * i)
        for o in range(table.order, -1, -1):
            nexts = table.counts.get(context_key(o, context, table.bits))
            if nexts:
                out.append(math.log(nexts.get(token, 0) / sum(nexts.values())))
                break
        history.append(token)
    return out


def collect(request, timeout: float = 30.0):
    """(tokens, text, pieces) of a request read to its end."""
    pieces = list(request.pieces(timeout=timeout))
    tokens = [int(t) for p in pieces for t in p.tokens]
    return tokens, "".join(p.text for p in pieces), pieces
