"""`GET /generate?prompt=...`: a plain text stream as server-sent events (what the web page's
EventSource reads).

One `data: {"text": ...}` event per chunk of text (with `"tokens": n` when the generator says
how many tokens the chunk holds), then `event: done` with the generation's summary. The text
comes from a `generate` function returning an async iterator, so the route knows nothing about
devices: the resident engine (engine_generator) or a per-request workflow run
(workflow_generator)."""

from __future__ import annotations

import json
from typing import Any, AsyncIterator, Callable, Dict, Mapping

from .sse import LastEvent, event_stream_response, require_starlette, server_event

GenerateFn = Callable[[Dict[str, Any]], AsyncIterator[Any]]

_INT_PARAMS = ("max_tokens", "window", "seed")


def parse_request(query: Mapping[str, str]) -> Dict[str, Any]:
    """Parses the query string; ValueError names the bad parameter. The bounds of the values
    are the generator's (it checks them before the stream starts). `stop` may repeat
    (`stop=a&stop=b`) when `query` is a multi-dict such as Starlette's query_params."""
    request: Dict[str, Any] = {"prompt": query.get("prompt", "")}
    for name in _INT_PARAMS:
        if name in query:
            try:
                request[name] = int(query[name])
            except ValueError:
                raise ValueError(f"query parameter '{name}' must be an integer, got {query[name]!r}") from None
    if "stop" in query:
        getlist = getattr(query, "getlist", None)
        request["stop"] = list(getlist("stop")) if getlist else [query["stop"]]
    if "mode" in query:
        # Only the streaming modes: the server hands text over as the device produces it.
        from ..workflow.loop_config import STREAMING_MODES

        if query["mode"] not in STREAMING_MODES:
            allowed = " or ".join(repr(m) for m in STREAMING_MODES)
            raise ValueError(f"query parameter 'mode' must be {allowed}, got {query['mode']!r}")
        request["mode"] = query["mode"]
    return request


def generate_endpoint(generate: GenerateFn):
    """The Starlette endpoint of `GET /generate` over `generate`.

    `generate` receives the parsed query and returns an async iterator of text chunks (a str,
    or an object with `.text` and `.tokens`, such as the engine's Piece); its last item may be
    a dict, sent as the `done` event's data. A ValueError raised by `generate` itself (not by
    the iterator) is a bad request: answered 400 before any event is sent. A failure while
    streaming ends the stream with an `error` event. A client that disconnects closes the
    iterator (its `finally` runs: the engine generator cancels its request there)."""
    from starlette.responses import JSONResponse

    async def generate_route(request):
        try:
            chunks = generate(parse_request(request.query_params))
        except ValueError as e:
            return JSONResponse({"error": str(e)}, status_code=400)
        return event_stream_response(_events(chunks))

    return generate_route


async def _events(chunks: AsyncIterator[Any]):
    summary: Dict[str, Any] = {}
    try:
        async for chunk in chunks:
            if isinstance(chunk, dict):
                summary = chunk
            else:
                yield server_event(json.dumps(_text_event(chunk)))
    except Exception as e:  # the status line is sent already: say so in the stream
        yield server_event(json.dumps({"error": f"{type(e).__name__}: {e}"}), "error")
        return
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:  # a disconnect closes this generator: close the source too
            await aclose()
    yield LastEvent(server_event(json.dumps(summary), "done").encode())  # with the body's end


def _text_event(chunk: Any) -> Dict[str, Any]:
    if isinstance(chunk, str):
        return {"text": chunk}
    return {"text": chunk.text, "tokens": len(chunk.tokens)}


def create_app(generate: GenerateFn):
    """An ASGI app with only `GET /generate`, streaming `generate(request)`'s chunks (see
    generate_endpoint). The server with the resident engine, the OpenAI routes and the page
    is `create_engine_app`."""
    require_starlette()
    from starlette.applications import Starlette
    from starlette.routing import Route

    return Starlette(routes=[Route("/generate", generate_endpoint(generate))])
