"""Server-sent events: one response type for every stream of the server.

`EventStream` is sse-starlette's EventSourceResponse (its headers, event encoding, keep-alive
pings and shutdown signal) served with one helper task instead of four. sse-starlette's own
`__call__` runs each response in an anyio task group with a task per concern (the stream, a
ping loop, a shutdown listener, a disconnect listener) and a cancel scope around every send:
measured on the 2-core VM that was ~0.35 ms of the event loop per request, more than uvicorn
and Starlette together, and the largest cost of a short stream under load. Here:
  - events are sent by the task that serves the request (no cancel scope per send);
  - the disconnect listener is the one extra task: when the client goes away it calls
    `on_disconnect` and cancels the stream, so a generation nobody reads stops at once
    instead of running to max_tokens;
  - pings (a comment line every PING_SECONDS, so proxies and idle timeouts leave a slow stream
    open) come from a timer handle, sent by a short task only when one is due;
  - server shutdown (sse-starlette's AppStatus / uvicorn's should_exit, detected by
    sse-starlette's shared watcher) ends every open stream through one task per event loop.
Lines end with a bare "\\n", as OpenAI's stream does (the SSE format allows "\\r\\n" too, but
some line-based clients split on "\\n" only)."""

from __future__ import annotations

import asyncio
import json
import weakref
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


class LastEvent:
    """Wraps the last event of a stream (bytes of whole events): it leaves in the same write
    as the end of the response body, one socket write fewer per stream. Events yielded after
    it are not sent."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


def event_stream_response(events: AsyncIterator[Any],
                          on_disconnect: Optional[Callable[[], None]] = None):
    """A response streaming `events` (server_event's, bytes of whole events, or a LastEvent);
    `on_disconnect()` runs when the client closes the connection before the stream ended (then
    `events` is closed: its `finally` runs)."""
    closed = None
    if on_disconnect is not None:
        async def closed(_message) -> None:
            on_disconnect()

    return _event_stream_class()(events, closed)


_EVENT_STREAM = None


def _event_stream_class():
    """EventStream, defined on first use (sse-starlette is the optional extra's)."""
    global _EVENT_STREAM
    if _EVENT_STREAM is None:
        _EVENT_STREAM = _define_event_stream()
    return _EVENT_STREAM


# Streams open on each event loop, ended together when the server shuts down.
_open_streams: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, set]" = (
    weakref.WeakKeyDictionary())


def _define_event_stream():
    from sse_starlette import EventSourceResponse
    from sse_starlette.event import ServerSentEvent, ensure_bytes

    # The headers EventSourceResponse.__init__ builds, built once: they are the same for every
    # stream (its __init__ also makes an anyio lock per response that only its own ping task
    # uses).
    template = EventSourceResponse(iter(()), sep=SEPARATOR, ping=PING_SECONDS,
                                   headers={"Cache-Control": "no-cache"})
    raw_headers = list(template.raw_headers)

    class EventStream(EventSourceResponse):
        """EventSourceResponse served by the request's own task plus a disconnect listener
        (see the module docstring). HEAD and websocket scopes are sse-starlette's own."""

        def __init__(self, events: AsyncIterator[Any], on_disconnect=None) -> None:
            # What EventSourceResponse.__init__ sets for these arguments, less the per-stream
            # header building (the headers are the template's) and the lock.
            self.body_iterator = events
            self.status_code = 200
            self.media_type = template.media_type
            self.background = None
            self.data_sender_callable = None
            self.send_timeout = None
            self.sep = SEPARATOR
            self.raw_headers = raw_headers
            self.ping_interval = PING_SECONDS
            self.ping_message_factory = None
            self.client_close_handler_callable = on_disconnect
            self._shutdown_event = None
            self._shutdown_grace_period = 0
            self._cleanup_timeout = template._cleanup_timeout
            self.active = True

        async def __call__(self, scope, receive, send) -> None:
            if scope["type"] != "http" or scope["method"].upper() == "HEAD":
                import anyio  # sse-starlette's own path (a websocket's denial, HEAD)

                self._send_lock = anyio.Lock()
                return await super().__call__(scope, receive, send)
            loop = asyncio.get_running_loop()
            self._task = asyncio.current_task()
            self._send = send
            self._ended_by: Optional[str] = None  # "disconnect" or "shutdown"
            self._sending = False
            self._ping_task: Optional[asyncio.Task] = None
            self._ping_timer = None
            self._body_ended = False
            await send({"type": "http.response.start", "status": self.status_code,
                        "headers": self.raw_headers})
            listener = loop.create_task(self._listen(receive))
            if self.ping_interval > 0:
                self._ping_timer = loop.call_later(self.ping_interval, self._ping_due)
            streams = _streams_of(loop)
            streams.add(self)
            try:
                await self._stream()
            except asyncio.CancelledError:
                if self._ended_by is None:  # cancelled from outside: not ours to swallow
                    raise
                _uncancel(self._task)
            finally:
                self.active = False
                streams.discard(self)
                listener.cancel()
                if self._ping_timer is not None:
                    self._ping_timer.cancel()
                if self._ping_task is not None:
                    await asyncio.gather(self._ping_task, return_exceptions=True)
            if self._ended_by != "disconnect" and not self._body_ended:  # end the body properly
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            if self.background is not None:
                await self.background()

        async def _stream(self) -> None:
            send, sep = self._send, self.sep
            try:
                async for data in self.body_iterator:
                    last = data.__class__ is LastEvent
                    message = {"type": "http.response.body",
                               "body": data.data if last else ensure_bytes(data, sep),
                               "more_body": not last}
                    if self._ping_task is not None:  # a ping is being written: after it
                        await asyncio.gather(self._ping_task, return_exceptions=True)
                    self._sending = True
                    try:
                        await send(message)
                    finally:
                        self._sending = False
                    if last:
                        self._body_ended = True
                        return
            finally:
                aclose = getattr(self.body_iterator, "aclose", None)
                if aclose is not None:  # left early (cancelled): the source's finally runs
                    await aclose()

        def _end(self, why: str) -> None:
            if self.active and self._ended_by is None:
                self._ended_by = why
                self.active = False
                self._task.cancel()

        async def _listen(self, receive) -> None:
            while (message := await receive())["type"] != "http.disconnect":
                pass
            if self.active:
                if self.client_close_handler_callable is not None:
                    await self.client_close_handler_callable(message)
                self._end("disconnect")

        def _ping_due(self) -> None:
            if not self.active:
                return
            loop = asyncio.get_running_loop()
            if self._sending:  # the stream is writing: it is alive; look again later
                self._ping_timer = loop.call_later(self.ping_interval, self._ping_due)
                return
            self._ping_task = loop.create_task(self._ping_once())

        async def _ping_once(self) -> None:
            ping = self.ping_message_factory() if self.ping_message_factory else \
                ServerSentEvent(comment="ping", sep=self.sep)
            try:
                await self._send({"type": "http.response.body",
                                  "body": ensure_bytes(ping, self.sep), "more_body": True})
            finally:
                self._ping_task = None
                if self.active:
                    loop = asyncio.get_running_loop()
                    self._ping_timer = loop.call_later(self.ping_interval, self._ping_due)

    return EventStream


def _streams_of(loop: asyncio.AbstractEventLoop) -> set:
    """The open streams of `loop`; the first one starts the loop's shutdown listener."""
    streams = _open_streams.get(loop)
    if streams is None:
        streams = _open_streams[loop] = set()
        loop.create_task(_end_streams_at_shutdown(loop, streams))
    return streams


async def _end_streams_at_shutdown(loop, streams: set) -> None:
    """Waits for sse-starlette's shutdown signal (AppStatus.should_exit or uvicorn's
    should_exit, polled by its one shared watcher), then ends every open stream of this loop."""
    from sse_starlette import EventSourceResponse

    try:
        await EventSourceResponse._listen_for_exit_signal()
    finally:
        # Forgotten before ending them: a stream opened from now on starts a new listener
        # (which returns at once while the server is exiting).
        if _open_streams.get(loop) is streams:
            del _open_streams[loop]
    for stream in list(streams):
        stream._end("shutdown")


def _uncancel(task: asyncio.Task) -> None:
    """Takes back the cancel() this module made (Python >= 3.11 counts them: a later
    timeout or task group in the same task must not see it)."""
    uncancel = getattr(task, "uncancel", None)
    if uncancel is not None:
        uncancel()
