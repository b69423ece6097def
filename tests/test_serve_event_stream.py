"""The server's event-stream response (serve/sse.py: sse-starlette's EventSourceResponse served
with one helper task): keep-alive pings on a quiet stream, a client that leaves closes the
event source at once, server shutdown ends an endless stream, the last event leaves with the
end of the body, HEAD is answered without starting the stream."""

from __future__ import annotations

import asyncio
import time

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("sse_starlette")

from serve_support import running_server, wait_until  # noqa: E402

from foundry_channels.serve import sse  # noqa: E402


def app_of(events, on_disconnect=None):
    from starlette.applications import Starlette
    from starlette.routing import Route

    async def endpoint(request):
        return sse.event_stream_response(events(), on_disconnect)

    return Starlette(routes=[Route("/s", endpoint, methods=["GET", "HEAD"])])


def test_a_quiet_stream_gets_pings_between_its_events(monkeypatch):
    monkeypatch.setattr(sse, "PING_SECONDS", 0.05)

    async def events():
        yield b"data: one\n\n"
        await asyncio.sleep(0.4)
        yield sse.LastEvent(b"data: two\n\n")

    with running_server(app_of(events), lifespan="off") as url:
        response = httpx.get(f"{url}/s", timeout=30)
    body = response.text
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert body.startswith("data: one\n\n") and body.endswith("data: two\n\n")
    pings = body.count(": ping")
    assert 3 <= pings <= 12  # ~8 in 0.4 s at 0.05 s, on a loaded machine fewer
    assert body.replace(": ping\n\n", "") == "data: one\n\ndata: two\n\n"  # whole events only


def test_a_client_that_leaves_closes_the_events_and_calls_on_disconnect():
    state = {"sent": 0, "closed": False, "disconnected": False}

    async def events():
        try:
            while True:
                state["sent"] += 1
                yield f"data: {state['sent']}\n\n".encode()
                await asyncio.sleep(0.005)
        finally:
            state["closed"] = True

    def on_disconnect():
        state["disconnected"] = True

    with running_server(app_of(events, on_disconnect), lifespan="off") as url:
        with httpx.Client(timeout=30) as client:
            with client.stream("GET", f"{url}/s") as response:
                lines = response.iter_lines()
                assert next(lines) == "data: 1"
        wait_until(lambda: state["closed"], what="the event source to be closed")
        assert state["disconnected"]
        sent = state["sent"]
        time.sleep(0.05)
        assert state["sent"] == sent  # nothing more is produced once the client left


def test_server_shutdown_ends_an_endless_stream():
    from sse_starlette.sse import AppStatus

    async def events():
        while True:
            yield b"data: tick\n\n"
            await asyncio.sleep(0.01)

    try:
        with running_server(app_of(events), lifespan="off") as url:
            with httpx.Client(timeout=30) as client:
                with client.stream("GET", f"{url}/s") as response:
                    lines = response.iter_lines()
                    assert next(lines) == "data: tick"
                    AppStatus.should_exit = True  # what a SIGTERM to uvicorn sets
                    started = time.monotonic()
                    for _ in lines:  # the server ends the body: the iteration stops
                        assert time.monotonic() - started < 10
    finally:
        AppStatus.should_exit = False  # process-global: later servers must not see it


def test_head_is_answered_without_starting_the_stream():
    started = []

    async def events():
        started.append(True)
        yield b"data: x\n\n"

    with running_server(app_of(events), lifespan="off") as url:
        response = httpx.head(f"{url}/s", timeout=30)
    assert response.status_code == 200 and response.content == b""
    assert response.headers["content-type"].startswith("text/event-stream")
    assert started == []
