"""Server-sent events: stream generated text over HTTP as the device produces it.

An ASGI app (Starlette, in the optional `serve` extra) whose `GET /generate?prompt=...`
answers `text/event-stream`: one `data:` event per text chunk the runner hands over, then an
`event: done` with the run's summary. The generation itself is whatever async iterator of
text chunks `generate` returns, so the app knows nothing about devices or windows.

    uvicorn --factory foundry_channels.serve:default_app --port 8000
    curl -N 'http://127.0.0.1:8000/generate?prompt=We%20hold&max_tokens=200'
"""

from __future__ import annotations

import json
from typing import Any, AsyncIterator, Callable, Dict

GenerateFn = Callable[[Dict[str, Any]], AsyncIterator[Any]]


def _require_starlette():
    try:
        import starlette  # noqa: F401
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "foundry_channels.serve needs the optional 'serve' extra: "
            "python3 -m pip install '.[serve]' in a checkout (or starlette and uvicorn)"
        ) from e


def sse_event(data: Any, event: str | None = None) -> bytes:
    """One server-sent event; `data` is sent as JSON on a single line."""
    head = f"event: {event}\n" if event else ""
    return (head + "data: " + json.dumps(data) + "\n\n").encode()


_INT_PARAMS = ("max_tokens", "window", "seed")


def parse_request(query: Dict[str, str]) -> Dict[str, Any]:
    """Parses the query string; ValueError names the bad parameter. The bounds of the values
    are the generator's (workflow_generator: the workflow's input declarations)."""
    request: Dict[str, Any] = {"prompt": query.get("prompt", "")}
    for name in _INT_PARAMS:
        if name in query:
            try:
                request[name] = int(query[name])
            except ValueError:
                raise ValueError(f"query parameter '{name}' must be an integer, got {query[name]!r}") from None
    if "mode" in query:
        # Only the streaming modes: the server hands text over as the device produces it.
        from .workflow.loop_config import STREAMING_MODES

        if query["mode"] not in STREAMING_MODES:
            allowed = " or ".join(repr(m) for m in STREAMING_MODES)
            raise ValueError(f"query parameter 'mode' must be {allowed}, got {query['mode']!r}")
        request["mode"] = query["mode"]
    return request


def create_app(generate: GenerateFn):
    """An ASGI app streaming `generate(request)`'s chunks as server-sent events.

    `generate` receives the parsed query ({prompt, max_tokens?, window?, seed?, mode?}) and
    returns an async iterator of text chunks; its last item may be a dict, sent as the
    `done` event's data (e.g. the run summary). A ValueError raised by `generate` itself
    (not by the iterator) is a bad request: answered 400 before any event is sent. A failure
    while streaming ends the stream with an `error` event."""
    _require_starlette()
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    async def generate_route(request):
        try:
            chunks = generate(parse_request(dict(request.query_params)))
        except ValueError as e:
            return JSONResponse({"error": str(e)}, status_code=400)

        async def events():
            summary: Dict[str, Any] = {}
            try:
                async for chunk in chunks:
                    if isinstance(chunk, dict):
                        summary = chunk
                    else:
                        yield sse_event({"text": chunk})
            except Exception as e:  # the status line is sent already: say so in the stream
                yield sse_event({"error": f"{type(e).__name__}: {e}"}, event="error")
                return
            yield sse_event(summary, event="done")

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    return Starlette(routes=[Route("/generate", generate_route)])


def workflow_generator(device: str = "cpu", workflow_path: str | None = None) -> GenerateFn:
    """A `generate` for create_app that runs the text-generation sample workflow.

    The runner is synchronous (it commits windows and drains the channel), so it runs in a
    worker thread; each token it hands over is passed to the event loop and turned into text
    as it arrives. The final item is the run's summary (tokens, text, first-token time, ...).
    """
    import asyncio
    import time

    from .lm import StreamingDetokenizer
    from .workflow import (Cancellation, WorkflowRuntimeError, load_workflow, run_workflow,
                           sample_path)
    from .workflow.executor import bind_inputs

    workflow = load_workflow(workflow_path or sample_path("text_generation_stream_u32"))

    def generate(params: Dict[str, Any]) -> AsyncIterator[Any]:
        inputs = {k: params[k] for k in ("prompt", "max_tokens", "window", "seed") if k in params}
        try:  # the workflow's own bounds (max_tokens, window, ...), checked before streaming
            bind_inputs(workflow, inputs)
        except WorkflowRuntimeError as e:
            raise ValueError(str(e)) from None
        return stream(inputs, params.get("mode", "interactive"))

    async def stream(inputs: Dict[str, Any], mode: str) -> AsyncIterator[Any]:
        loop = asyncio.get_running_loop()
        feed = _TokenFeed(loop)
        on_token = feed.put
        # A client that disconnects closes this generator: the run is cancelled on the device
        # (its decode steps stop within one step) instead of running to max_tokens.
        cancellation = Cancellation()

        def work() -> None:
            try:
                start = time.monotonic()
                run = run_workflow(workflow, device, inputs=inputs, on_token=on_token, mode=mode,
                                   cancellation=cancellation)
                outputs = run.python_outputs()
                report = run.loops[-1]
                run.context.close()
                summary = {"tokens": len(outputs["generated_tokens"]), "text": outputs["text"],
                           "mode": mode, "device": device, "stop_flag": report.stop_flag,
                           "cancelled": report.cancelled,
                           "first_token_s": report.first_token_s,
                           "seconds": time.monotonic() - start, "ended_at": time.monotonic()}
                feed.put(summary)
            except BaseException as e:  # reported to the client, never swallowed
                feed.put(e)

        worker = loop.run_in_executor(None, work)
        detok = StreamingDetokenizer()
        try:
            while True:
                for item in await feed.get_batch():  # one wake-up, one event per token
                    if isinstance(item, int):
                        text = detok.feed([item])
                        if text:
                            yield text
                    elif isinstance(item, dict):
                        tail = detok.finish()
                        if tail:
                            yield tail
                        yield item
                        return
                    else:
                        raise item
        finally:
            cancellation.cancel()  # no-op when the run already ended
            await worker

    return generate


class _TokenFeed:
    """Tokens from the runner's thread to the event loop, one wake-up per batch.

    The runner drains its channel with the adaptive wait strategy and calls on_token for each
    token of a drained batch; put() queues it and schedules a wake-up only if none is pending,
    so a batch of tokens costs one call_soon_threadsafe, not one per token (the pattern the
    README recommends for a Python launch loop feeding asyncio). get_batch() returns
    everything queued, in order."""

    def __init__(self, loop) -> None:
        import asyncio
        import threading

        self._loop = loop
        self._lock = threading.Lock()
        self._items: list = []
        self._wake_pending = False
        self._event = asyncio.Event()

    def put(self, item: Any) -> None:  # any thread
        with self._lock:
            self._items.append(item)
            if self._wake_pending:
                return
            self._wake_pending = True
        self._loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:  # on the loop
        with self._lock:
            self._wake_pending = False
        self._event.set()

    async def get_batch(self) -> list:
        while True:
            with self._lock:
                if self._items:
                    batch, self._items = self._items, []
                    return batch
            self._event.clear()
            with self._lock:
                if self._items:
                    continue
            await self._event.wait()


def default_app(device: str = "cpu"):
    """The sample text generator as an ASGI app (for `uvicorn --factory`)."""
    return create_app(workflow_generator(device))
