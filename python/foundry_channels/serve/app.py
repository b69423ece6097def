"""The server: one resident engine per process behind `GET /` (the page), `GET /generate`
(plain SSE), the OpenAI routes, `GET /v1/models` and `GET /stats` (the engine's counters).

The engine is created by the app's lifespan when the server starts and closed when it shuts
down, so `uvicorn --factory foundry_channels.serve:default_app` runs one engine for all its
requests (one device, one uploaded model, one decode loop)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional

from .engine_generator import engine_generator
from .generate_route import generate_endpoint
from .openai_errors import OpenAIError
from .sse import require_starlette

STATIC = Path(__file__).parent / "static"
OWNER = "foundry-channels"


class ServingState:
    """What the routes share: the engine (None until the lifespan started it) and the name and
    vocabulary of its model (`engine.vocabulary`: its name and the bytes of each token)."""

    def __init__(self, model_id: Optional[str], device: str) -> None:
        self.engine: Any = None
        self.device = device
        self.model_id = model_id or ""
        self.created = int(time.time())
        self.token_bytes: Optional[Callable[[int], bytes]] = None

    def start(self, engine: Any) -> None:
        self.model_id = self.model_id or f"foundry-ngram-{engine.vocabulary.name}"
        self.token_bytes = engine.vocabulary.token_bytes
        self.engine = engine

    def check_model(self, name: str) -> None:
        if name != self.model_id:
            raise OpenAIError(f"The model '{name}' does not exist (this server has "
                              f"'{self.model_id}')", "model", status=404,
                              code="model_not_found")

    def model_card(self) -> Dict[str, Any]:
        return {"id": self.model_id, "object": "model", "created": self.created, "owned_by": OWNER}

    def generate(self, params: Dict[str, Any]):
        if self.engine is None:
            raise ValueError("the engine is not running (the app's lifespan did not start it)")
        return engine_generator(self.engine, self.device)(params)


def create_engine_app(engine_factory: Callable[[], Any], *, model_id: Optional[str] = None,
                      device: str = "", close_engine: bool = True):
    """An ASGI app over the engine `engine_factory()` returns, called once by the app's
    lifespan at startup (in a worker thread: opening a device and uploading a model take a
    while); the engine is closed at shutdown unless close_engine is False (an engine the caller
    owns). `model_id` is what /v1/models lists and requests must name (default
    "foundry-ngram-<vocab>")."""
    require_starlette()
    from starlette.applications import Starlette
    from starlette.responses import FileResponse, JSONResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    from .openai_routes import chat_completions, completions, model, models  # pydantic: the extra

    serving = ServingState(model_id, device)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        engine = await asyncio.to_thread(engine_factory)
        serving.start(engine)
        try:
            yield
        finally:
            serving.engine = None
            if close_engine:
                await asyncio.to_thread(engine.close)

    async def page(request):
        return FileResponse(STATIC / "index.html")

    async def stats(request):  # the decode loop's counters (requests, lanes, queue)
        if serving.engine is None:
            return JSONResponse({"error": "the engine is not running"}, status_code=503)
        return JSONResponse({"model": serving.model_id, "device": serving.device,
                             **serving.engine.stats()})

    app = Starlette(lifespan=lifespan, routes=[
        Route("/", page),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
        Route("/generate", generate_endpoint(serving.generate)),
        Route("/stats", stats),
        Route("/v1/models", models),
        Route("/v1/models/{model:path}", model),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    ])
    app.state.serving = serving
    return app


ENV_DEVICE = "FOUNDRY_SERVE_DEVICE"
ENV_LANES = "FOUNDRY_SERVE_LANES"
ENV_VOCAB = "FOUNDRY_SERVE_VOCAB"


def default_app(device: Optional[str] = None, **engine_options: Any):
    """The server over foundry_channels.serving.Engine (for `uvicorn --factory`): device from
    the argument, else FOUNDRY_SERVE_DEVICE, else "cpu"; FOUNDRY_SERVE_LANES and
    FOUNDRY_SERVE_VOCAB set the engine's lanes and vocab unless given as arguments."""
    device = device or os.environ.get(ENV_DEVICE, "cpu")
    if ENV_LANES in os.environ:
        engine_options.setdefault("lanes", _env_int(ENV_LANES))
    if ENV_VOCAB in os.environ:
        engine_options.setdefault("vocab", os.environ[ENV_VOCAB])

    def make_engine():
        from ..serving import Engine

        return Engine(device, **engine_options)

    return create_engine_app(make_engine, device=device)


def _env_int(name: str) -> int:
    try:
        return int(os.environ[name])
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {os.environ[name]!r}") from None
