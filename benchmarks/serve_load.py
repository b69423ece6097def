"""The load generator of bench_serve.py (and of tests/test_serve_soak.py): streamed OpenAI
completions over plain asyncio connections on loopback (uvloop's loop where installed), parsed
by hand, so the client costs little of the 2 cores it shares with the server; one keep-alive
connection per worker.

`soak()` sends requests with random stop strings and random disconnects and checks every
stream against the same request run alone in-process (same seed): the text, every token (from
each chunk's logprobs, so a token lost or sent twice shows), the finish_reason and the usage;
a stream the client left must be a prefix of it."""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence
from urllib.parse import urlsplit


PROMPTS = ("We hold these truths", "Shall I compare thee", "Four score and seven",
           "It was the best of times", "Call me", "In the beginning", "The quality of mercy")


@dataclass
class StreamResult:
    status: int = 0
    started: float = 0.0  # perf_counter when the request was sent
    first_token_at: Optional[float] = None  # ... when the first chunk with text arrived
    ended_at: float = 0.0
    chunks: List[Dict[str, Any]] = field(default_factory=list)
    done: bool = False  # `data: [DONE]` arrived
    left: bool = False  # the client disconnected on purpose
    error: Optional[str] = None

    @property
    def first_token_s(self) -> Optional[float]:
        return None if self.first_token_at is None else self.first_token_at - self.started

    def text(self) -> str:
        return "".join(c["choices"][0].get("text", "") for c in self.chunks if c.get("choices"))

    def finish_reason(self) -> Optional[str]:
        reasons = [c["choices"][0]["finish_reason"] for c in self.chunks if c.get("choices")]
        return next((r for r in reasons if r), None)

    def usage(self) -> Optional[Dict[str, int]]:
        return next((c["usage"] for c in self.chunks if c.get("usage")), None)

    def token_bytes(self) -> List[bytes]:
        out = []
        for c in self.chunks:
            if c.get("choices") and c["choices"][0].get("logprobs"):
                out += [token_string_bytes(t) for t in c["choices"][0]["logprobs"]["tokens"]]
        return out


def token_string_bytes(token: str) -> bytes:
    """A token string of the OpenAI logprobs back to its bytes ("bytes:\\xe2" form included)."""
    if token.startswith("bytes:"):
        return bytes(int(h, 16) for h in token[len("bytes:"):].split("\\x")[1:])
    return token.encode()


class Connection:
    """One keep-alive HTTP/1.1 connection to the server. The response is parsed by hand (status
    line, headers, then a chunked or sized body, found with bytes.find): a pure-Python HTTP
    state machine (h11) cost the client ~0.1 ms a request, which on 2 cores shared with the
    server bounded the throughput it could measure."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port
        self._reader: Optional[asyncio.StreamReader] = None
        self._writer: Optional[asyncio.StreamWriter] = None
        self._buffer = b""

    async def _open(self) -> None:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
            self._buffer = b""

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def _more(self) -> None:
        data = await self._reader.read(65536)
        if not data:
            raise ConnectionError("the server closed the connection")
        self._buffer += data

    async def stream(self, path: str, body: Dict[str, Any], leave_after: Optional[int] = None,
                     timeout: float = 60.0) -> StreamResult:
        """POSTs `body` and reads its event stream; with leave_after=k the connection is closed
        after k data events (a client that disconnects)."""
        await self._open()
        result = StreamResult()
        payload = json.dumps(body).encode()
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n")
        result.started = time.perf_counter()
        self._writer.write(head.encode() + payload)
        # One timer for the whole response (asyncio.wait_for around each read made a task per
        # read): it cancels this task, and the cancellation becomes a TimeoutError here.
        task = asyncio.current_task()
        expired = []
        timer = asyncio.get_running_loop().call_later(
            timeout, lambda: (expired.append(True), task.cancel()))
        try:
            keep_alive = await self._read_response(result, leave_after)
        except asyncio.CancelledError:
            if not expired:
                raise
            if hasattr(task, "uncancel"):  # Python >= 3.11 counts cancellations
                task.uncancel()
            result.error = f"TimeoutError: no complete response within {timeout} s"
            self.close()
            return result
        except Exception as e:  # noted on the result: the caller counts errors
            result.error = f"{type(e).__name__}: {e}"
            self.close()
            return result
        finally:
            timer.cancel()
        if result.left:
            self.close()
            return result
        result.ended_at = time.perf_counter()
        if not keep_alive:
            self.close()
        return result

    async def _read_response(self, result: StreamResult, leave_after: Optional[int]) -> bool:
        """Reads one response into `result`; True if the connection can be reused."""
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            await self._more()
        lines = self._buffer[:end].decode("latin-1").split("\r\n")
        self._buffer = self._buffer[end + 4:]
        result.status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip().lower()
        keep_alive = headers.get("connection") != "close"
        events = _EventParser(result, leave_after)
        if headers.get("transfer-encoding") == "chunked":
            while True:
                while (eol := self._buffer.find(b"\r\n")) < 0:
                    await self._more()
                size = int(self._buffer[:eol].split(b";", 1)[0], 16)
                while len(self._buffer) < eol + 2 + size + 2:
                    await self._more()
                data = self._buffer[eol + 2:eol + 2 + size]
                self._buffer = self._buffer[eol + 2 + size + 2:]
                if size == 0:  # the last chunk (no trailers are sent)
                    return keep_alive
                if events.feed(data):
                    return False
        length = int(headers.get("content-length", "0"))
        while len(self._buffer) < length:
            await self._more()
        data, self._buffer = self._buffer[:length], self._buffer[length:]
        events.feed(data)
        return keep_alive


class _EventParser:
    """Server-sent events out of a response body's bytes, into a StreamResult."""

    def __init__(self, result: StreamResult, leave_after: Optional[int]) -> None:
        self.result, self.leave_after = result, leave_after
        self._pending = b""

    def feed(self, data: bytes) -> bool:
        """Takes the events in `data`; True when the client leaves now (leave_after)."""
        result = self.result
        *events, self._pending = (self._pending + data).split(b"\n\n")
        for raw in events:
            if self._take(raw) and self.leave_after is not None \
                    and len(result.chunks) >= self.leave_after:
                result.left = True
                return True
        return False

    def _take(self, raw: bytes) -> bool:
        """One SSE event; True for a data chunk."""
        result = self.result
        for line in raw.split(b"\n"):
            if not line.startswith(b"data: "):
                continue  # a ping (comment) or other field
            data = line[6:]
            if data == b"[DONE]":
                result.done = True
                return False
            chunk = json.loads(data)
            result.chunks.append(chunk)
            if result.first_token_at is None and chunk.get("choices") \
                    and chunk["choices"][0].get("text"):
                result.first_token_at = time.perf_counter()
            return True
        return False


def run_client(coroutine):
    """Runs the load generator's coroutine on uvloop's event loop where it is installed (the
    serve extra's; about half the per-request cost of asyncio's own loop), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def completion_body(model: str, prompt: str, seed: int, max_tokens: int,
                    stop: Sequence[str] = (), logprobs: bool = False) -> Dict[str, Any]:
    body = {"model": model, "prompt": prompt, "seed": seed, "max_tokens": max_tokens,
            "stream": True, "stream_options": {"include_usage": True}}
    if stop:
        body["stop"] = list(stop)
    if logprobs:
        body["logprobs"] = 0
    return body


async def run_workers(url: str, bodies: Sequence[Dict[str, Any]], concurrency: int,
                      leave_after: Optional[Sequence[Optional[int]]] = None,
                      deadline: Optional[float] = None) -> List[Optional[StreamResult]]:
    """Sends `bodies` with `concurrency` workers (closed loop: a worker sends its next request
    when the last one ended); results in the order of `bodies` (None: not sent before
    `deadline`, a perf_counter time)."""
    results: List[Optional[StreamResult]] = [None] * len(bodies)
    next_index = iter(range(len(bodies)))

    async def worker() -> None:
        connection = Connection(url)
        try:
            for i in next_index:
                if deadline is not None and time.perf_counter() > deadline:
                    return
                leave = leave_after[i] if leave_after is not None else None
                results[i] = await connection.stream("/v1/completions", bodies[i], leave)
        finally:
            connection.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results


async def run_rounds(url: str, bodies: Sequence[Dict[str, Any]], concurrency: int,
                     gap_s: float = 0.02, deadline: Optional[float] = None):
    """Bursts: `concurrency` requests sent at once on as many open keep-alive connections,
    the next burst `gap_s` after the last stream of this one ended. Returns (results, busy
    seconds: the bursts' durations without the gaps)."""
    connections = [Connection(url) for _ in range(concurrency)]
    results: List[StreamResult] = []
    busy = 0.0
    try:
        for start in range(0, len(bodies) - concurrency + 1, concurrency):
            if deadline is not None and time.perf_counter() > deadline:
                break
            began = time.perf_counter()
            results += await asyncio.gather(*(
                c.stream("/v1/completions", b)
                for c, b in zip(connections, bodies[start:start + concurrency])))
            busy += time.perf_counter() - began
            await asyncio.sleep(gap_s)
    finally:
        for c in connections:
            c.close()
    return results, busy


@dataclass
class SoakRequest:
    body: Dict[str, Any]
    leave_after: Optional[int]


def soak_requests(model: str, n: int, seed: int = 0, disconnect_rate: float = 0.2,
                  max_tokens: int = 300) -> List[SoakRequest]:
    """n random requests: prompt, seed, max_tokens, 0-2 stop strings (short strings the model
    writes often, so many streams end at one), and a disconnect after a random number of
    chunks for about disconnect_rate of them."""
    rng = random.Random(seed)
    stops = ("e,", "th", " and", "\n", "!", "ing ", ".", "you", "the")
    out = []
    for _ in range(n):
        stop = rng.sample(stops, rng.choice((0, 0, 1, 2)))
        body = completion_body(model, rng.choice(PROMPTS), rng.randrange(2**32),
                               rng.randint(1, max_tokens), stop, logprobs=True)
        leave = rng.randint(1, 6) if rng.random() < disconnect_rate else None
        out.append(SoakRequest(body, leave))
    return out


def reference(engine, body: Dict[str, Any]):
    """(text, token bytes, finish_reason, completion_tokens) of `body` run alone in-process."""
    request = engine.submit(body["prompt"], max_tokens=body["max_tokens"], seed=body["seed"],
                            stop=body.get("stop", ()), logprobs=True)
    texts, tokens = [], []
    for piece in request.pieces(timeout=60):
        texts.append(piece.text)
        tokens += [engine.vocabulary.token_bytes(int(t)) for t in piece.tokens]
    return "".join(texts), tokens, request.finish_reason, request.completion_tokens


def check_stream(result: StreamResult, expected) -> Optional[str]:
    """Why `result` differs from the request run alone (None: it does not)."""
    text, tokens, reason, count = expected
    if result.error is not None:
        return f"client error {result.error}"
    if result.status != 200:
        return f"status {result.status}"
    got_text, got_tokens = result.text(), result.token_bytes()
    if result.left:
        if not text.startswith(got_text) or got_tokens != tokens[:len(got_tokens)]:
            return "a stream the client left is not a prefix of the request run alone"
        return None
    if not result.done:
        return "no [DONE]"
    if got_text != text:
        return f"text differs: {got_text[:40]!r}... vs {text[:40]!r}..."
    if got_tokens != tokens:
        return f"tokens differ ({len(got_tokens)} vs {len(tokens)}): lost or duplicated"
    if result.finish_reason() != reason:
        return f"finish_reason {result.finish_reason()} vs {reason}"
    usage = result.usage()
    if usage is None or usage["completion_tokens"] != count:
        return f"usage {usage} vs {count} completion tokens"
    return None


def soak(url: str, engine, requests: Sequence[SoakRequest], concurrency: int = 16,
         deadline: Optional[float] = None, on_progress=None) -> Dict[str, Any]:
    """Runs `requests` against the server at `url` and checks each against `engine` (an
    in-process Engine of the same model: the request run alone). `on_progress(done)` is
    called between batches (the benchmark samples the server's RSS there)."""
    failures: List[str] = []
    completed = left = sent = 0
    batch = max(concurrency * 8, 64)
    for start in range(0, len(requests), batch):
        part = requests[start:start + batch]
        results = run_client(run_workers(url, [r.body for r in part], concurrency,
                                          [r.leave_after for r in part], deadline))
        for request, result in zip(part, results):
            if result is None:
                continue
            sent += 1
            why = check_stream(result, reference(engine, request.body))
            if why is not None:
                failures.append(f"{json.dumps(request.body)}: {why}")
            elif result.left:
                left += 1
            else:
                completed += 1
        if on_progress is not None:
            on_progress(start + len(part))
        if deadline is not None and time.perf_counter() > deadline:
            break
    return {"requests": len(requests), "sent": sent, "completed": completed, "left": left,
            "failures": failures}
