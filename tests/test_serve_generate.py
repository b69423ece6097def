"""`GET /generate` over the resident engine (what the page reads): text events with their
token counts, the summary, stop strings, refused parameters, and a disconnect cancelling the
request."""

from __future__ import annotations

import json

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("sse_starlette")

from serve_support import (engine, run_alone, served, slow_served, sse_records,  # noqa: E402,F401
                           wait_until)

PROMPT = "We hold these truths"


def events(client, **params):
    with client.stream("GET", "/generate", params=params) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return [(r["event"], json.loads(r["data"])) for r in sse_records(response)]


def test_generate_streams_text_events_then_the_summary(served, engine):
    client, _ = served
    received = events(client, prompt=PROMPT, max_tokens=80, seed=21)
    *texts, (name, summary) = received
    assert name == "done" and all(event is None for event, _ in texts)
    text, tokens, reason, alone = run_alone(engine, PROMPT, max_tokens=80, seed=21)
    assert "".join(data["text"] for _, data in texts) == text == summary["text"]
    assert sum(data["tokens"] for _, data in texts) == len(tokens) == summary["tokens"]
    assert summary["finish_reason"] == reason
    assert summary["prompt_tokens"] == alone.prompt_tokens
    assert summary["first_token_s"] > 0


def test_generate_sends_text_before_the_generation_ends(slow_served):
    # The slow engine double: each token is its own piece, so the client must see text
    # events while the request still runs (the real engine is done within a millisecond).
    client, recorder = slow_served
    with client.stream("GET", "/generate", params={"prompt": PROMPT, "max_tokens": 400}) as response:
        lines = response.iter_lines()
        assert next(line for line in lines if line.startswith("data: "))
        assert recorder.requests[-1].finish_reason is None  # still generating
        rest = [line for line in lines if line.startswith("data: ")]
    assert len(rest) >= 399 // 2  # one event per piece, not one block at the end


def test_generate_takes_repeated_stop_strings(served, engine):
    client, _ = served
    full, _, _, _ = run_alone(engine, PROMPT, max_tokens=100, seed=2)
    stop = full[40:43]
    received = events(client, prompt=PROMPT, max_tokens=100, seed=2, stop=["\u2603\u2603", stop])
    summary = received[-1][1]
    assert summary["text"] == full[:full.index(stop)] and summary["finish_reason"] == "stop"


@pytest.mark.parametrize("params, words", [
    ({"max_tokens": "lots"}, "max_tokens"),
    ({"window": 4}, "window"),
    ({"mode": "interactive"}, "mode"),
    ({"prompt": "", "max_tokens": 5}, "prompt"),
    ({"max_tokens": 0}, "max_tokens"),
])
def test_generate_refuses_bad_parameters_before_streaming(served, params, words):
    client, _ = served
    response = client.get("/generate", params={"prompt": PROMPT, **params})
    assert response.status_code == 400 and words in response.json()["error"]


def test_leaving_a_generate_stream_cancels_the_request(slow_served):
    client, recorder = slow_served
    with client.stream("GET", "/generate", params={"prompt": PROMPT, "max_tokens": 4000}) as response:
        assert next(line for line in response.iter_lines() if line.startswith("data: "))
        request = recorder.requests[-1]
    wait_until(lambda: request.finish_reason is not None, what="the request to end")
    assert request.finish_reason == "cancelled" and request.completion_tokens < 4000


def test_the_page_and_its_script_are_served(served):
    client, _ = served
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'src="static/page.js"' in page.text
    script = client.get("/static/page.js")
    assert script.status_code == 200 and "new EventSource" in script.text
