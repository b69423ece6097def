"""The soak's correctness part (benchmarks/bench_serve.py --soak runs 10,000): random requests
with stop strings, some left by their client after a few chunks, 8 at a time against a real
server; every stream must equal the same request run alone (text, each token, finish_reason,
usage), a left stream must be a prefix of it, and the engine must end with no lane or queued
request left."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("sse_starlette")
pytest.importorskip("h11")

from serve_support import engine, served, wait_until  # noqa: E402,F401

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def load_generator():
    spec = importlib.util.spec_from_file_location("serve_load", BENCHMARKS / "serve_load.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("serve_load", module)
    spec.loader.exec_module(module)
    return module


def test_soak_streams_equal_the_requests_run_alone(served, engine):
    load = load_generator()
    client, _ = served
    model = client.get("/v1/models").json()["data"][0]["id"]
    requests = load.soak_requests(model, 120, seed=7, disconnect_rate=0.25)
    result = load.soak(str(client.base_url).rstrip("/"), engine, requests, concurrency=8)
    assert result["failures"] == []
    assert result["sent"] == 120 and result["completed"] + result["left"] == 120
    assert result["left"] >= 10 and result["completed"] >= 60  # both kinds were exercised
    wait_until(lambda: engine.stats()["active_lanes"] == 0 and engine.stats()["queued"] == 0,
               what="the engine to be idle")


def test_the_soak_checker_sees_a_lost_or_duplicated_token(engine):
    from foundry_channels.serve.openai_chunks import token_string

    load = load_generator()
    for data in [bytes([b]) for b in range(256)] + ["é".encode(), "✓".encode()[:2], b" the"]:
        assert load.token_string_bytes(token_string(data)) == data  # the checker reads tokens back
    body = load.completion_body("m", "We hold these truths", 5, 60, logprobs=True)
    expected = load.reference(engine, body)
    text, tokens, reason, count = expected

    def result(token_list, text_value):
        chunk = {"choices": [{"index": 0, "text": text_value, "finish_reason": None,
                              "logprobs": {"tokens": [token_string(t) for t in token_list]}}]}
        final = {"choices": [{"index": 0, "text": "", "finish_reason": reason, "logprobs": None}],
                 "usage": None}
        usage = {"choices": [], "usage": {"completion_tokens": count}}
        return load.StreamResult(status=200, chunks=[chunk, final, usage], done=True)

    assert load.check_stream(result(tokens, text), expected) is None
    assert "lost or duplicated" in load.check_stream(result(tokens[:-1], text), expected)
    assert "lost or duplicated" in load.check_stream(result(tokens + tokens[-1:], text), expected)
    assert "text differs" in load.check_stream(result(tokens, text + "x"), expected)

