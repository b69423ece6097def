"""A `generate` for `GET /generate` that runs the text-generation sample workflow once per
request: its own device, model upload and runner thread (the path before the resident engine;
kept for workflows other than the engine's model and as the reference the benchmark compares
with)."""

from __future__ import annotations

from typing import Any, AsyncIterator, Dict

from .generate_route import GenerateFn


def workflow_generator(device: str = "cpu", workflow_path: str | None = None) -> GenerateFn:
    """A `generate` for create_app that runs the text-generation sample workflow.

    The runner is synchronous (it commits windows and drains the channel), so it runs in a
    worker thread; each token it hands over is passed to the event loop and turned into text
    as it arrives. The final item is the run's summary (tokens, text, first-token time, ...).
    """
    import asyncio
    import time

    from ..lm import StreamingDetokenizer
    from ..workflow import (Cancellation, WorkflowRuntimeError, load_workflow, run_workflow,
                            sample_path)
    from ..workflow.executor import bind_inputs

    workflow = load_workflow(workflow_path or sample_path("text_generation_stream_u32"))

    def generate(params: Dict[str, Any]) -> AsyncIterator[Any]:
        if "stop" in params:
            raise ValueError("query parameter 'stop' needs the engine (default_app): the "
                             "sample workflow has no stop strings")
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
            cancellation.cancel()  # the client went away (or the run ended: then a no-op)
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
