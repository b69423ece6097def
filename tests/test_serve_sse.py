"""End to end over HTTP: a real uvicorn server on loopback streams generated text as
server-sent events; a real HTTP client receives it chunk by chunk, before generation ends."""

from __future__ import annotations

import json
import time

import pytest

httpx = pytest.importorskip("httpx")  # part of the [test] extra: installed wherever tests run
pytest.importorskip("sse_starlette")

from serve_support import running_server  # noqa: E402

from foundry_channels.serve import create_app, parse_request, workflow_generator  # noqa: E402


@pytest.fixture
def server_url(backend):
    from conftest import open_or_skip

    open_or_skip(backend).close()  # skip (or fail when required) like every backend test
    with running_server(create_app(workflow_generator(backend)), lifespan="off") as url:
        yield url


def read_events(response):
    """(event, data, receive time) for each server-sent event."""
    event, data = None, []
    for line in response.iter_lines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])
        elif line == "" and data:
            yield event, json.loads("\n".join(data)), time.monotonic()
            event, data = None, []


def test_sse_stream_delivers_the_runner_text_chunk_by_chunk_before_the_end(server_url):
    # Interactive mode with one-step windows: each token is its own window, so generation
    # takes far longer than one HTTP chunk needs to cross loopback.
    params = {"prompt": "We hold these truths", "max_tokens": 1500, "window": 1, "seed": 5,
              "mode": "interactive"}
    with httpx.Client(timeout=60) as client:
        with client.stream("GET", f"{server_url}/generate", params=params) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            events = list(read_events(response))
    chunks = [(data["text"], t) for event, data, t in events if event is None]
    done = [data for event, data, _ in events if event == "done"]
    assert len(done) == 1 and events[-1][0] == "done"
    summary = done[0]
    assert summary["tokens"] >= 100
    assert "".join(text for text, _ in chunks) == summary["text"]  # same text, nothing lost
    assert len(chunks) >= summary["tokens"] // 4  # chunk by chunk, not one block at the end
    first_chunk_at = chunks[0][1]
    assert first_chunk_at < summary["ended_at"]  # the client had text before generation ended


def test_sse_rejects_bad_parameters(server_url):
    with httpx.Client(timeout=30) as client:
        r = client.get(f"{server_url}/generate", params={"max_tokens": "lots"})
        assert r.status_code == 400 and "max_tokens" in r.json()["error"]
        r = client.get(f"{server_url}/generate", params={"mode": "fast"})
        assert r.status_code == 400 and "mode" in r.json()["error"]


def test_max_tokens_beyond_the_workflows_bound_is_a_400_before_streaming(server_url):
    # Was 200 with an empty body: the server allowed 2^20, the workflow 65000. The bound is
    # now the workflow's own input declaration, checked before the response starts.
    with httpx.Client(timeout=30) as client:
        for params, bound in (({"max_tokens": 100000}, "1..65000"), ({"window": 0}, "1..4096")):
            r = client.get(f"{server_url}/generate", params=params)
            assert r.status_code == 400 and bound in r.json()["error"]


def test_a_failure_while_streaming_ends_with_an_error_event():
    import asyncio

    async def failing(params):
        yield "partial "
        raise RuntimeError("device lost")

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_app(failing))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/generate")

    response = asyncio.run(get())
    assert response.status_code == 200
    assert response.text == ('data: {"text": "partial "}\n\n'
                             'event: error\ndata: {"error": "RuntimeError: device lost"}\n\n')


def test_parse_request_parses_the_query():
    assert parse_request({"prompt": "x", "window": "4"}) == {"prompt": "x", "window": 4}
    with pytest.raises(ValueError, match="window"):
        parse_request({"window": "four"})


def test_a_client_that_goes_away_cancels_its_run_on_the_device(monkeypatch):
    """Closing the event stream (what Starlette does when the client disconnects) cancels the
    run through its control block instead of letting it run to max_tokens."""
    import asyncio

    import foundry_channels.workflow as workflow_pkg

    runs = []
    real_run = workflow_pkg.run_workflow

    def recording_run(*args, **kwargs):
        run = real_run(*args, **kwargs)
        runs.append((run.loops[-1], len(run.outputs["generated_tokens"].numpy())))
        return run

    monkeypatch.setattr(workflow_pkg, "run_workflow", recording_run)
    generate = workflow_generator("cpu")

    async def client_reads_three_chunks_then_leaves():
        chunks = generate({"prompt": "We hold", "max_tokens": 65000, "window": 1, "seed": 2,
                           "mode": "interactive"})
        got = []
        async for chunk in chunks:
            got.append(chunk)
            if len(got) == 3:
                break
        await chunks.aclose()
        return got

    got = asyncio.run(client_reads_three_chunks_then_leaves())
    assert len(got) == 3 and len(runs) == 1
    loop, generated = runs[0]
    assert loop.cancelled
    assert 3 <= generated < 65000
