"""What the HTTP tests share: a real uvicorn server on loopback in a thread (the app's lifespan
runs, so the engine is created and closed as in production), an engine wrapper that records
the requests the server submitted, and a server-sent-events reader."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from typing import Any, Iterator, List

import pytest

uvicorn = pytest.importorskip("uvicorn")


@contextlib.contextmanager
def running_server(app, lifespan: str = "on") -> Iterator[str]:
    """Serves `app` on 127.0.0.1 (a free port) while the block runs; yields its base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan=lifespan)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        assert not thread.is_alive(), "uvicorn did not stop"


class RecordingEngine:
    """The engine, with every request the server submitted kept in `requests` (the tests look
    at finish_reason and completion_tokens after a client left)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.vocabulary = engine.vocabulary
        self.requests: List[Any] = []

    def submit(self, *args, **kwargs):
        request = self.engine.submit(*args, **kwargs)
        self.requests.append(request)
        return request

    def stats(self) -> dict:
        return self.engine.stats()

    def close(self) -> None:  # the test owns the engine
        pass


def run_alone(engine, prompt, **kwargs):
    """(text, tokens, finish_reason, request) of a request run in-process by itself."""
    request = engine.submit(prompt, **kwargs)
    texts, tokens = [], []
    for piece in request.pieces(timeout=60):
        texts.append(piece.text)
        tokens.extend(int(t) for t in piece.tokens)
    return "".join(texts), tokens, request.finish_reason, request


def sse_records(response) -> List[dict]:
    """The events of a streamed response: {"event": name or None, "data": raw data string}."""
    out, event, data = [], None, []
    for line in response.iter_lines():
        if line.startswith(":"):
            continue  # a ping
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])
        elif line == "" and data:
            out.append({"event": event, "data": "\n".join(data)})
            event, data = None, []
    return out


def openai_chunks(response) -> List[Any]:
    """The JSON chunks of an OpenAI stream; the final `[DONE]` is kept as the string."""
    return [r["data"] if r["data"] == "[DONE]" else json.loads(r["data"])
            for r in sse_records(response)]


def wait_until(condition, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


# Fixtures the serve tests import: one engine and one server per test module, on the real
# engine (cpu); `slow_served` is the same server over the slow test double (fake_engine.py).

@pytest.fixture(scope="module")
def engine():
    from foundry_channels.serving import Engine

    with Engine("cpu") as engine:
        yield engine


@contextlib.contextmanager
def _serving(engine):
    import httpx

    from foundry_channels.serve import create_engine_app

    recorder = RecordingEngine(engine)
    with running_server(create_engine_app(lambda: recorder, close_engine=False)) as url:
        with httpx.Client(base_url=url, timeout=60) as client:
            yield client, recorder


@pytest.fixture(scope="module")
def served(engine):
    """(httpx client on the server's base URL, the RecordingEngine the server submits to)."""
    with _serving(engine) as served:
        yield served


@pytest.fixture(scope="module")
def slow_served():
    """`served` over the slow test double: its generations outlast a client that leaves."""
    from fake_engine import FakeEngine

    engine = FakeEngine()
    try:
        with _serving(engine) as served:
            yield served
    finally:
        engine.close()
