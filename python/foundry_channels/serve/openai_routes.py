"""`POST /v1/completions`, `POST /v1/chat/completions` and `GET /v1/models` over the resident
engine (app.ServingState at `request.app.state.serving`).

One engine request per HTTP request. Streamed (`stream: true`): one chunk per piece the engine
hands over (a piece may hold several tokens), then the chunk with the finish_reason, the usage
chunk when asked, and `data: [DONE]`. A client that disconnects cancels the engine request
(sse-starlette's disconnect callback, and the generator's `finally` when the stream is torn
down): the engine stops the lane within one step and nothing more is sent. A whole response
(`stream: false`) is collected while the connection is watched, so a client that gives up
cancels it too."""

from __future__ import annotations

import asyncio
import json
from typing import Any, AsyncIterator, Callable

from .openai_chunks import CHAT, COMPACT, TEXT, ResponseShape, TokenLogprobs, usage_of
from .openai_errors import OpenAIError, engine_refusal
from .openai_schema import GenerationParams, parse_chat, parse_completion
from .sse import LastEvent, data_event, event_stream_response


class _Endpoint:
    """A request handler as a plain ASGI app for Starlette's Route: the handler's response is
    served directly, without Route's request_response() wrapper, whose exception handling
    (for HTTPException, which these handlers never raise: they answer their errors themselves)
    adds a coroutine around every send of the stream. Starlette's middleware (the 500 for an
    unexpected exception) still wraps it."""

    def __init__(self, handler: Callable[[Any], Any]) -> None:
        self._handler = handler

    async def __call__(self, scope, receive, send) -> None:
        from starlette.requests import Request

        response = await self._handler(Request(scope, receive, send))
        await response(scope, receive, send)


async def _completions(request):
    return await _serve(request, parse_completion, TEXT, prompt_field="prompt")


async def _chat_completions(request):
    return await _serve(request, parse_chat, CHAT, prompt_field="messages")


completions = _Endpoint(_completions)  # POST /v1/completions
chat_completions = _Endpoint(_chat_completions)  # POST /v1/chat/completions


async def models(request):
    from starlette.responses import JSONResponse

    serving = request.app.state.serving
    return JSONResponse({"object": "list", "data": [serving.model_card()]})


async def model(request):
    from starlette.responses import JSONResponse

    serving = request.app.state.serving
    try:
        serving.check_model(request.path_params["model"])
    except OpenAIError as e:
        return e.response()
    return JSONResponse(serving.model_card())


async def _serve(request, parse: Callable[[Any], GenerationParams], kind: str, prompt_field: str):
    serving = request.app.state.serving
    try:
        params = parse(await _json_body(request))
        serving.check_model(params.model)
        engine_request = _submit(serving.engine, params, prompt_field)
    except OpenAIError as e:
        return e.response()
    shape = ResponseShape(kind, params.model, params.include_usage)
    logprobs = TokenLogprobs(kind, serving.token_bytes) if params.logprobs else None
    if params.stream:
        return event_stream_response(_chunks(engine_request, shape, logprobs),
                                     on_disconnect=engine_request.cancel)
    return await _whole(request, engine_request, shape, logprobs)


async def _json_body(request) -> Any:
    try:
        return json.loads(await request.body())
    except ValueError as e:
        raise OpenAIError(f"We could not parse the JSON body of your request: {e}") from None


def _submit(engine, params: GenerationParams, prompt_field: str):
    if engine is None:
        raise OpenAIError("the engine is not running (the app's lifespan did not start it)",
                          status=503, type="server_error", code="engine_not_running")
    from ..serving import EngineBusyError, EngineClosedError

    try:
        return engine.submit(params.prompt, max_tokens=params.max_tokens, seed=params.seed,
                             stop=params.stop, logprobs=params.logprobs)
    except ValueError as e:
        raise engine_refusal(e, prompt_field) from None
    except EngineBusyError as e:  # max_queued requests wait for a lane already: try later
        raise OpenAIError(str(e), status=503, type="server_error", code="engine_busy") from None
    except EngineClosedError as e:  # shutting down
        raise OpenAIError(str(e), status=503, type="server_error", code="engine_closed") from None


def _logprobs_of(logprobs: TokenLogprobs | None, piece) -> Any:
    if logprobs is None or piece.logprobs is None:
        return None
    return logprobs.of(piece.tokens, piece.logprobs)


def _event(data: Any) -> bytes:
    return data_event(json.dumps(data, separators=COMPACT))


async def _chunks(engine_request, shape: ResponseShape, logprobs) -> AsyncIterator[bytes]:
    # One chunk per piece, as the OpenAI API streams; chunks whose pieces were ready at the same
    # time (the engine fed several, or the request has ended already) leave in one write.
    ready = b""
    try:
        if shape.kind == CHAT:
            ready = _event(shape.role_chunk())
        async for piece in engine_request.stream():
            piece_logprobs = _logprobs_of(logprobs, piece)
            if piece_logprobs:
                ready += _event(shape.chunk(piece.text, piece_logprobs))
            elif piece.text:
                ready += data_event(shape.text_chunk_json(piece.text))
            if ready and not engine_request.ready:  # nothing more without waiting: send
                yield ready
                ready = b""
        reason = engine_request.finish_reason
        if reason not in ("stop", "length"):  # cancelled by the engine (it is closing)
            yield ready + _event(OpenAIError(f"the generation ended early ({reason})",
                                             status=503, type="server_error").body())
            return
        # The last chunk, the usage chunk, [DONE] and the end of the body leave in one write
        # (with the text chunks that were ready with them).
        tail = ready + data_event(shape.finish_chunk_json(reason))
        if shape.include_usage:
            tail += data_event(shape.usage_chunk_json(usage_of(engine_request)))
        yield LastEvent(tail + data_event("[DONE]"))
    except Exception as e:  # the status line is sent already: an error chunk, as OpenAI does
        yield ready + _event(OpenAIError(f"{type(e).__name__}: {e}", status=500,
                                         type="server_error").body())
    finally:
        if engine_request.finish_reason is None:  # torn down before the end (disconnect)
            engine_request.cancel()


async def _whole(request, engine_request, shape: ResponseShape, logprobs):
    from starlette.responses import JSONResponse, Response

    collecting = asyncio.ensure_future(_collect(engine_request, logprobs))
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({collecting, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not collecting.done():  # the client left (or this handler was cancelled)
            engine_request.cancel()
            collecting.cancel()
    if not collecting.done() or collecting.cancelled():
        return Response(status_code=499)  # nobody reads it: the connection is closed
    try:
        text, parts = collecting.result()
    except Exception as e:  # the engine failed while generating (EngineError: a device fault)
        return OpenAIError(f"{type(e).__name__}: {e}", status=500, type="server_error").response()
    reason = engine_request.finish_reason
    if reason not in ("stop", "length"):
        return OpenAIError(f"the generation ended early ({reason})", status=503,
                           type="server_error").response()
    return JSONResponse(shape.body(text, TokenLogprobs.merged(parts), reason,
                                   usage_of(engine_request)))


async def _collect(engine_request, logprobs):
    texts, parts = [], []
    async for piece in engine_request.stream():
        texts.append(piece.text)
        piece_logprobs = _logprobs_of(logprobs, piece)
        if piece_logprobs is not None:
            parts.append(piece_logprobs)
    return "".join(texts), parts


async def _disconnected(request) -> None:
    """Returns when the client closes the connection (the body has been read already, so the
    next ASGI message is the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
