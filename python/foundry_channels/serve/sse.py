"""Server-sent events through sse-starlette: one response type for every stream of the server.

sse-starlette sends keep-alive pings (a comment line every PING_SECONDS, so proxies and idle
timeouts leave a slow stream open) and watches the connection: when the client goes away it
calls `on_disconnect` and cancels the task producing the events, so a generation nobody reads
stops at once instead of running to max_tokens. Lines end with a bare "\\n", as OpenAI's stream
does (the SSE format allows "\\r\\n" too, but some line-based clients split on "\\n" only)."""

from __future__ import annotations

import json
from typing import Any, AsyncIterator, Callable, Optional

PING_SECONDS = 15
SEPARATOR = "\n"


def require_starlette() -> None:
    try:
        import pydantic  # noqa: F401
        import sse_starlette  # noqa: F401
        import starlette  # noqa: F401
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "foundry_channels.serve needs the optional 'serve' extra: "
            "python3 -m pip install '.[serve]' in a checkout (starlette, sse-starlette, uvicorn, "
            "pydantic)"
        ) from e


def sse_event(data: Any, event: Optional[str] = None) -> bytes:
    """One server-sent event as bytes; `data` is sent as JSON on a single line."""
    head = f"event: {event}\n" if event else ""
    return (head + "data: " + json.dumps(data) + "\n\n").encode()


def server_event(data: str, event: Optional[str] = None):
    """One event for event_stream_response (`data`: the text after "data: ")."""
    from sse_starlette import ServerSentEvent

    return ServerSentEvent(data=data, event=event, sep=SEPARATOR)


def data_event(data: str) -> bytes:
    """A data-only event, encoded (`data` holds no line break, as JSON never does): what the
    OpenAI stream sends, without building an event object per chunk."""
    return b"data: " + data.encode() + b"\n\n"


def event_stream_response(events: AsyncIterator[Any],
                          on_disconnect: Optional[Callable[[], None]] = None):
    """An EventSourceResponse streaming `events` (server_event's, or bytes of whole events);
    `on_disconnect()` runs when the client closes the connection before the stream ended."""
    from sse_starlette import EventSourceResponse

    closed = None
    if on_disconnect is not None:
        async def closed(_message) -> None:
            on_disconnect()

    return EventSourceResponse(events, sep=SEPARATOR, ping=PING_SECONDS,
                               headers={"Cache-Control": "no-cache"},
                               client_close_handler_callable=closed)
