"""HTTP serving: the resident engine behind OpenAI-compatible streaming routes, a plain
server-sent-events route and a page (Starlette, sse-starlette and pydantic, in the optional
`serve` extra).

    uvicorn --factory foundry_channels.serve:default_app --port 8000
    curl -N http://127.0.0.1:8000/v1/completions -H 'Content-Type: application/json' \\
      -d '{"model": "foundry-ngram-bytes", "prompt": "We hold", "max_tokens": 50, "stream": true}'
    curl -N 'http://127.0.0.1:8000/generate?prompt=We%20hold&max_tokens=200'

Modules: app (the server and its lifespan), openai_schema / openai_chunks / openai_routes /
openai_errors (the OpenAI API), chat_template (messages -> prompt), generate_route (GET
/generate over any generator), engine_generator and workflow_generator (its two generators),
sse (the event-stream response), static/ (the page)."""

from .app import create_engine_app, default_app
from .chat_template import render_chat
from .engine_generator import engine_generator
from .generate_route import create_app, parse_request
from .sse import sse_event
from .workflow_generator import workflow_generator

__all__ = ["create_app", "create_engine_app", "default_app", "engine_generator", "parse_request",
           "render_chat", "sse_event", "workflow_generator"]
