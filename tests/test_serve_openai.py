"""The OpenAI-compatible routes over HTTP (a real uvicorn server on loopback, httpx as the
client): chunk and body shapes, usage, stop strings, logprobs, errors naming the field, the
model list, and a client that disconnects cancelling its engine request."""

from __future__ import annotations

import json

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("sse_starlette")

from serve_support import (RecordingEngine, engine, openai_chunks, run_alone,  # noqa: E402,F401
                           running_server, served, slow_served, wait_until)

from foundry_channels.serve import create_engine_app  # noqa: E402

PROMPT = "We hold these truths"


@pytest.fixture
def client(served):
    return served[0]


@pytest.fixture
def model(client):
    return client.get("/v1/models").json()["data"][0]["id"]


def post_stream(client, path, body):
    with client.stream("POST", path, json={**body, "stream": True}) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return openai_chunks(response)


def test_streamed_completion_has_the_openai_chunk_shapes_and_a_usage_chunk(client, model, engine):
    body = {"model": model, "prompt": PROMPT, "max_tokens": 40, "seed": 7,
            "stream_options": {"include_usage": True}}
    chunks = post_stream(client, "/v1/completions", body)
    assert chunks[-1] == "[DONE]"
    *texts, last, usage = chunks[:-1]
    ids = {c["id"] for c in chunks[:-1]}
    assert len(ids) == 1 and ids.pop().startswith("cmpl-")
    for chunk in chunks[:-1]:
        assert chunk["object"] == "text_completion" and chunk["model"] == model
        assert isinstance(chunk["created"], int)
    for chunk in texts + [last]:
        assert chunk["usage"] is None  # include_usage: null on every chunk but the last
        (choice,) = chunk["choices"]
        assert choice["index"] == 0 and choice["logprobs"] is None
        assert isinstance(choice["text"], str)
    assert all(c["choices"][0]["finish_reason"] is None for c in texts)
    assert usage["choices"] == []

    text, tokens, reason, alone = run_alone(engine, PROMPT, max_tokens=40, seed=7)
    assert last["choices"][0] == {"index": 0, "text": "", "logprobs": None, "finish_reason": reason}
    assert "".join(c["choices"][0]["text"] for c in texts) == text
    assert usage["usage"] == {"prompt_tokens": alone.prompt_tokens, "completion_tokens": len(tokens),
                              "total_tokens": alone.prompt_tokens + len(tokens)}


@pytest.mark.parametrize("max_tokens, reason", [(3, "length"), (3000, "stop")])
def test_finish_reason_is_length_at_max_tokens_and_stop_at_the_models_end(client, model, max_tokens, reason):
    # The sample model ends a text (EOS) within a few hundred tokens for this seed.
    body = {"model": model, "prompt": PROMPT, "max_tokens": max_tokens, "seed": 1}
    whole = client.post("/v1/completions", json=body).json()
    assert whole["choices"][0]["finish_reason"] == reason
    assert (whole["usage"]["completion_tokens"] == 3) == (reason == "length")
    streamed = post_stream(client, "/v1/completions", body)
    assert streamed[-2]["choices"][0]["finish_reason"] == reason


def test_without_include_usage_chunks_have_no_usage(client, model):
    chunks = post_stream(client, "/v1/completions",
                         {"model": model, "prompt": PROMPT, "max_tokens": 5, "seed": 1})
    assert chunks[-1] == "[DONE]"
    assert all("usage" not in c and len(c["choices"]) == 1 for c in chunks[:-1])
    assert chunks[-2]["choices"][0]["finish_reason"] in ("length", "stop")


def test_whole_completion_equals_the_stream_and_the_request_run_alone(client, model, engine):
    body = {"model": model, "prompt": PROMPT, "max_tokens": 60, "seed": 3}
    whole = client.post("/v1/completions", json=body).json()
    streamed = post_stream(client, "/v1/completions", body)
    text, tokens, reason, alone = run_alone(engine, PROMPT, max_tokens=60, seed=3)
    assert whole["object"] == "text_completion" and whole["id"].startswith("cmpl-")
    assert whole["choices"] == [{"index": 0, "text": text, "logprobs": None, "finish_reason": reason}]
    assert whole["usage"] == {"prompt_tokens": alone.prompt_tokens, "completion_tokens": len(tokens),
                              "total_tokens": alone.prompt_tokens + len(tokens)}
    assert "".join(c["choices"][0]["text"] for c in streamed[:-1]) == text


def test_a_prompt_of_token_ids_is_the_same_as_its_text(client, model):
    body = {"model": model, "max_tokens": 20, "seed": 9}
    as_text = client.post("/v1/completions", json={**body, "prompt": "We hold"}).json()
    as_ids = client.post("/v1/completions", json={**body, "prompt": [list(b"We hold")]}).json()
    assert as_ids["choices"] == as_text["choices"]


@pytest.mark.parametrize("stream", [False, True])
def test_stop_strings_end_the_text_before_the_first_match(client, model, engine, stream):
    full, _, _, _ = run_alone(engine, PROMPT, max_tokens=120, seed=11)
    stop = full[30:34]  # a string the text holds; the text must end before its first match
    expected = full[:full.index(stop)]
    body = {"model": model, "prompt": PROMPT, "max_tokens": 120, "seed": 11,
            "stop": ["never in this text \u2603", stop]}
    if stream:
        chunks = post_stream(client, "/v1/completions", body)
        text = "".join(c["choices"][0]["text"] for c in chunks[:-1])
        reason = chunks[-2]["choices"][0]["finish_reason"]
    else:
        choice = client.post("/v1/completions", json=body).json()["choices"][0]
        text, reason = choice["text"], choice["finish_reason"]
    assert (text, reason) == (expected, "stop")
    # A single string is a stop string too.
    one = client.post("/v1/completions", json={**body, "stop": stop}).json()["choices"][0]
    assert one["text"] == expected


def test_streamed_chat_starts_with_the_role_and_ends_with_an_empty_delta(client, model, engine):
    messages = [{"role": "user", "content": "We hold these truths"},
                {"role": "assistant", "content": " to be self-evident"},
                {"role": "user", "content": [{"type": "text", "text": " Shall I compare"}]}]
    body = {"model": model, "messages": messages, "max_tokens": 50, "seed": 5,
            "stream_options": {"include_usage": True}}
    chunks = post_stream(client, "/v1/chat/completions", body)
    assert chunks[-1] == "[DONE]"
    first, *deltas, last, usage = chunks[:-1]
    assert all(c["object"] == "chat.completion.chunk" and c["id"].startswith("chatcmpl-")
               for c in chunks[:-1])
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(set(c["choices"][0]["delta"]) == {"content"} for c in deltas)
    assert last["choices"][0]["delta"] == {}
    assert last["choices"][0]["finish_reason"] in ("stop", "length")
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] >= 1

    # The conversation's prompt is its messages' text in order; a reply is one line.
    prompt = "We hold these truths to be self-evident Shall I compare"
    text, _, reason, _ = run_alone(engine, prompt, max_tokens=50, seed=5, stop=["\n"])
    assert "".join(c["choices"][0]["delta"]["content"] for c in deltas) == text
    assert last["choices"][0]["finish_reason"] == reason and "\n" not in text


def test_whole_chat_completion(client, model):
    body = {"model": model, "messages": [{"role": "system", "content": "Shall I"},
                                         {"role": "user", "content": " compare thee"}],
            "max_completion_tokens": 30, "seed": 2}
    reply = client.post("/v1/chat/completions", json=body).json()
    assert reply["object"] == "chat.completion"
    (choice,) = reply["choices"]
    assert choice["message"]["role"] == "assistant" and isinstance(choice["message"]["content"], str)
    assert choice["finish_reason"] in ("stop", "length")
    usage = reply["usage"]
    assert usage["prompt_tokens"] == len("Shall I compare thee".encode())
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_completion_logprobs_give_each_sampled_token(client, model, engine):
    body = {"model": model, "prompt": PROMPT, "max_tokens": 24, "seed": 4, "logprobs": 0}
    whole = client.post("/v1/completions", json=body).json()["choices"][0]
    _, tokens, _, _ = run_alone(engine, PROMPT, max_tokens=24, seed=4)
    logprobs = whole["logprobs"]
    assert len(logprobs["tokens"]) == len(logprobs["token_logprobs"]) == len(tokens)
    assert all(v <= 0 for v in logprobs["token_logprobs"]) and logprobs["top_logprobs"] is None
    assert logprobs["text_offset"] == sorted(logprobs["text_offset"])
    streamed = post_stream(client, "/v1/completions", body)
    per_chunk = [c["choices"][0]["logprobs"] for c in streamed[:-2]]
    assert sum((p["token_logprobs"] for p in per_chunk), []) == logprobs["token_logprobs"]
    assert sum((p["text_offset"] for p in per_chunk), []) == logprobs["text_offset"]


def test_chat_logprobs_carry_token_bytes(client, model, engine):
    body = {"model": model, "messages": [{"role": "user", "content": PROMPT}],
            "max_tokens": 16, "seed": 6, "logprobs": True}
    choice = client.post("/v1/chat/completions", json=body).json()["choices"][0]
    content = choice["logprobs"]["content"]
    raw = b"".join(bytes(entry["bytes"]) for entry in content)
    assert raw.decode("utf-8", errors="replace").startswith(choice["message"]["content"])
    assert all(entry["logprob"] <= 0 and entry["top_logprobs"] == [] for entry in content)


@pytest.mark.parametrize("path, body, status, param, words", [
    ("/v1/completions", {"prompt": "x"}, 400, "model", "model"),
    ("/v1/completions", {"model": "gpt-4", "prompt": "x"}, 404, "model", "gpt-4"),
    ("/v1/completions", {"prompt": "x", "max_tokens": "lots"}, 400, "max_tokens", "integer"),
    ("/v1/completions", {"prompt": "x", "max_tokens": 0}, 400, "max_tokens", "max_tokens"),
    ("/v1/completions", {"prompt": "x", "temperature": 0.2}, 400, "temperature", "only 1"),
    ("/v1/completions", {"prompt": "x", "n": 2}, 400, "n", "one choice"),
    ("/v1/completions", {"prompt": "x", "best_of": 3}, 400, "best_of", "one choice"),
    ("/v1/completions", {"prompt": "x", "frobnicate": 1}, 400, "frobnicate", "Unrecognized"),
    ("/v1/completions", {"prompt": 12}, 400, "prompt", "string"),
    ("/v1/completions", {"prompt": ["a", "b"]}, 400, "prompt", "one prompt"),
    ("/v1/completions", {"prompt": ""}, 400, "prompt", "prompt"),
    ("/v1/completions", {"prompt": "x", "stop": ["a", "b", "c", "d", "e"]}, 400, "stop", "at most 4"),
    ("/v1/completions", {"prompt": "x", "stop": [1]}, 400, "stop", "strings"),
    ("/v1/completions", {"prompt": "x", "logprobs": 3}, 400, "logprobs", "only 0"),
    ("/v1/completions", {"prompt": "x", "seed": -1}, 400, "seed", "seed"),
    ("/v1/completions", {"prompt": "x", "stream_options": {"include_usage": True}}, 400,
     "stream_options", "stream"),
    ("/v1/completions", {"prompt": "x", "stream": "yes"}, 400, "stream", "boolean"),
    ("/v1/chat/completions", {"messages": []}, 400, "messages", "at least 1"),
    ("/v1/chat/completions", {"messages": [{"role": "tool", "content": "x"}]}, 400,
     "messages[0].role", "user"),
    ("/v1/chat/completions", {"messages": [{"role": "user"}]}, 400, "messages[0].content", "content"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
     400, "messages[0].content", "text"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "tools": []}, 400,
     "tools", "Unrecognized"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2},
     400, "top_logprobs", "only 0"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "max_tokens": 5,
                              "max_completion_tokens": 5}, 400, "max_tokens", "not both"),
])
def test_bad_requests_get_openai_errors_naming_the_field(client, model, path, body, status, param, words):
    body = {"model": model, **body} if "model" not in body and param != "model" else body
    response = client.post(path, json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["param"] == param
    assert words.lower() in error["message"].lower()
    assert error["type"] == "invalid_request_error"
    assert set(error) == {"message", "type", "param", "code"}


def test_a_body_that_is_not_json_is_a_400(client):
    response = client.post("/v1/completions", content=b"{not json",
                           headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert "JSON" in response.json()["error"]["message"]
    response = client.post("/v1/chat/completions", json=["a list"])
    assert response.status_code == 400 and "object" in response.json()["error"]["message"]


def test_models_lists_the_served_model(client, model):
    listing = client.get("/v1/models").json()
    assert listing["object"] == "list"
    (card,) = listing["data"]
    assert card["object"] == "model" and card["owned_by"] and isinstance(card["created"], int)
    assert client.get(f"/v1/models/{model}").json() == card
    missing = client.get("/v1/models/gpt-4")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"


def test_a_client_that_disconnects_mid_stream_cancels_its_request(slow_served, model):
    client, recorder = slow_served
    body = {"model": model, "prompt": PROMPT, "max_tokens": 4000, "seed": 8, "stream": True}
    with client.stream("POST", "/v1/completions", json=body) as response:
        lines = response.iter_lines()
        assert next(line for line in lines if line.startswith("data: "))
        request = recorder.requests[-1]
    # The connection is closed: the server must cancel the engine request, which stops early.
    wait_until(lambda: request.finish_reason is not None, what="the request to end")
    assert request.finish_reason == "cancelled"
    assert request.completion_tokens < 4000


def test_a_client_that_gives_up_on_a_whole_response_cancels_its_request(slow_served, model):
    client, recorder = slow_served
    before = len(recorder.requests)
    body = {"model": model, "prompt": PROMPT, "max_tokens": 4000, "seed": 8}
    with pytest.raises(httpx.ReadTimeout):
        client.post("/v1/completions", json=body, timeout=httpx.Timeout(60, read=0.2))
    wait_until(lambda: len(recorder.requests) > before, what="the request to be submitted")
    request = recorder.requests[-1]
    wait_until(lambda: request.finish_reason is not None, what="the request to end")
    assert request.finish_reason == "cancelled" and request.completion_tokens < 4000


def test_disconnecting_clients_leave_the_real_engine_idle(served, model, engine):
    # On the real engine a whole request takes about a millisecond, so the stream may be sent
    # completely before the server sees the disconnect: either way the request ends and its
    # lane is free.
    client, recorder = served
    body = {"model": model, "prompt": PROMPT, "max_tokens": 3000, "seed": 82, "stream": True}
    for _ in range(5):
        with client.stream("POST", "/v1/completions", json=body) as response:
            assert next(line for line in response.iter_lines() if line.startswith("data: "))
            request = recorder.requests[-1]
        wait_until(lambda: request.finish_reason is not None, what="the request to end")
        assert request.finish_reason in ("cancelled", "stop", "length")
    wait_until(lambda: engine.stats()["active_lanes"] == 0 and engine.stats()["queued"] == 0,
               what="the engine to be idle")


def test_one_engine_for_all_requests_created_at_startup_and_closed_at_shutdown(engine):
    events = []

    class Counting(RecordingEngine):
        def close(self):
            events.append("closed")

    def factory():
        events.append("created")
        return Counting(engine)

    app = create_engine_app(factory)
    assert events == []  # nothing before the server starts
    with running_server(app) as url:
        assert events == ["created"]
        with httpx.Client(base_url=url, timeout=60) as client:
            model = client.get("/v1/models").json()["data"][0]["id"]
            for seed in range(3):
                body = {"model": model, "prompt": PROMPT, "max_tokens": 5, "seed": seed}
                assert client.post("/v1/completions", json=body).status_code == 200
        assert events == ["created"]
    assert events == ["created", "closed"]


def test_without_the_lifespan_requests_get_a_503(engine):
    app = create_engine_app(lambda: engine, close_engine=False)
    with running_server(app, lifespan="off") as url:
        response = httpx.post(f"{url}/v1/completions",
                              json={"model": "m", "prompt": "x"}, timeout=30)
    assert response.status_code in (404, 503)
    assert response.json()["error"]["param"] in ("model", None)


def test_openai_python_client_streams_from_the_server(served, model, engine):
    openai = pytest.importorskip("openai")
    client, _ = served
    api = openai.OpenAI(base_url=str(client.base_url).rstrip("/") + "/v1", api_key="unused")
    text, tokens, _, alone = run_alone(engine, PROMPT, max_tokens=30, seed=12)
    stream = api.completions.create(model=model, prompt=PROMPT, max_tokens=30, seed=12,
                                    stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == text
    assert chunks[-1].usage.completion_tokens == len(tokens)
    assert chunks[-1].usage.prompt_tokens == alone.prompt_tokens

    reply = api.chat.completions.create(model=model, seed=5, max_tokens=40,
                                        messages=[{"role": "user", "content": PROMPT}])
    expected, _, reason, _ = run_alone(engine, PROMPT, max_tokens=40, seed=5, stop=["\n"])
    assert reply.choices[0].message.content == expected
    assert reply.choices[0].finish_reason == reason
    assert [m.id for m in api.models.list()] == [model]
    with pytest.raises(openai.BadRequestError) as refused:
        api.completions.create(model=model, prompt=PROMPT, temperature=0.3)
    assert refused.value.body["param"] == "temperature"


def test_a_chat_replays_the_multi_turn_sample_turn_by_turn(client, model):
    # The multi-turn sample keeps one history (prompt, reply, prompt, reply, ...) and ends a
    # reply at a newline; a chat sending the conversation so far gets the same replies.
    from multi_turn_support import reference_turns

    from foundry_channels.lm import detokenize

    prompts = ["We hold these truths", " Shall I compare thee", " Four score and seven"]
    seed, max_tokens = 3, 80
    transcripts, _, _, _ = reference_turns(prompts, seed, max_tokens, eos=10)
    messages = []
    for prompt, expected in zip(prompts, transcripts):
        messages.append({"role": "user", "content": prompt})
        reply = client.post("/v1/chat/completions", json={
            "model": model, "messages": messages, "seed": seed, "max_tokens": max_tokens}).json()
        content = reply["choices"][0]["message"]["content"]
        assert content == detokenize(expected)
        messages.append({"role": "assistant", "content": content})


@pytest.mark.parametrize("kind", ["text", "chat"])
@pytest.mark.parametrize("include_usage", [False, True])
def test_chunks_from_the_templates_are_the_chunks_encoded(kind, include_usage):
    from foundry_channels.serve.openai_chunks import COMPACT, ResponseShape

    for model in ("m", 'a "quoted" model ✓'):
        shape = ResponseShape(kind, model, include_usage)
        for text in ("plain", 'quo"te\\', "line\nbreak", "Größe ✓ \U0001f600", "", "\ufdd0"):
            assert shape.text_chunk_json(text) == json.dumps(shape.chunk(text), separators=COMPACT)
        for reason in ("stop", "length"):
            last = shape.chunk("" if kind == "text" else None, None, reason)
            assert shape.finish_chunk_json(reason) == json.dumps(last, separators=COMPACT)
        usage = {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}
        assert shape.usage_chunk_json(usage) == json.dumps(shape.usage_chunk(usage),
                                                           separators=COMPACT)
    assert ResponseShape(kind, "m").id != ResponseShape(kind, "m").id  # each response its own


def test_default_app_runs_one_engine_from_startup_to_shutdown(monkeypatch):
    from foundry_channels.serve import default_app

    monkeypatch.setenv("FOUNDRY_SERVE_LANES", "8")
    app = default_app()
    assert app.state.serving.engine is None  # created by the lifespan, not by the factory
    with running_server(app) as url:
        engine = app.state.serving.engine
        assert engine.lanes == 8 and engine.device.backend == "cpu" and not engine.closed
        with httpx.Client(base_url=url, timeout=60) as client:
            body = {"model": "foundry-ngram-bytes", "prompt": PROMPT, "max_tokens": 10, "seed": 1}
            for _ in range(3):
                assert client.post("/v1/completions", json=body).status_code == 200
            stats = client.get("/stats").json()
            assert stats["submitted"] == 3 and stats["active_lanes"] == 0
            assert app.state.serving.engine is engine  # the same engine for every request
    assert engine.closed


def test_a_bad_engine_setting_in_the_environment_is_named(monkeypatch):
    from foundry_channels.serve import default_app

    monkeypatch.setenv("FOUNDRY_SERVE_LANES", "many")
    with pytest.raises(ValueError, match="FOUNDRY_SERVE_LANES"):
        default_app()


@pytest.mark.parametrize("stream", [False, True])
def test_an_engine_failure_is_an_openai_server_error(stream):
    class Failing:
        id, prompt_tokens, completion_tokens, finish_reason = 1, 1, 0, None

        def cancel(self):
            self.finish_reason = "cancelled"

        async def stream(self):
            raise RuntimeError("device lost")
            yield  # an async generator

    class Engine:
        vocabulary = type("V", (), {"name": "bytes", "token_bytes": staticmethod(lambda t: b"x")})

        def submit(self, *args, **kwargs):
            return Failing()

        def close(self):
            pass

    with running_server(create_engine_app(Engine)) as url:
        body = {"model": "foundry-ngram-bytes", "prompt": "x", "stream": stream}
        response = httpx.post(f"{url}/v1/completions", json=body, timeout=30)
    if stream:
        assert response.status_code == 200  # the stream had started: an error chunk, no [DONE]
        (line,) = [line for line in response.text.splitlines() if line.startswith("data: ")]
        error = json.loads(line[6:])["error"]
    else:
        assert response.status_code == 500
        error = response.json()["error"]
    assert error["type"] == "server_error" and "device lost" in error["message"]
