"""A `generate` for `GET /generate` over the resident engine: the request is submitted when
the query is parsed (so the engine's ValueError is a 400 before the stream starts) and its
pieces are streamed as they come; the summary comes last. Leaving the stream early (a client
that disconnected) cancels the request: the engine stops its lane within one step."""

from __future__ import annotations

import time
from typing import Any, AsyncIterator, Dict

from .generate_route import GenerateFn

DEFAULT_MAX_TOKENS = 200  # the text-generation sample's own default
ENGINE_PARAMS = ("prompt", "max_tokens", "seed", "stop")


def engine_generator(engine: Any, device: str = "") -> GenerateFn:
    """`engine`: a foundry_channels.serving.Engine (or anything with its submit())."""

    def generate(params: Dict[str, Any]) -> AsyncIterator[Any]:
        for name in params:
            if name not in ENGINE_PARAMS:
                raise ValueError(f"query parameter '{name}' is not used by the engine (it batches "
                                 f"requests in windows of its own); parameters: "
                                 f"{', '.join(ENGINE_PARAMS)}")
        request = engine.submit(params["prompt"],
                                max_tokens=params.get("max_tokens", DEFAULT_MAX_TOKENS),
                                seed=params.get("seed", 0), stop=params.get("stop", ()))
        return _stream(request, device)

    return generate


async def _stream(request: Any, device: str) -> AsyncIterator[Any]:
    start = time.monotonic()
    texts = []
    try:
        async for piece in request.stream():
            texts.append(piece.text)
            yield piece
    finally:
        if request.finish_reason is None:  # left before the end: nobody reads the rest
            request.cancel()
    yield {"tokens": request.completion_tokens, "prompt_tokens": request.prompt_tokens,
           "text": "".join(texts), "finish_reason": request.finish_reason,
           "first_token_s": request.first_token_s, "device": device,
           "seconds": time.monotonic() - start, "ended_at": time.monotonic()}
