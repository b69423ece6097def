"""`async for piece in request.stream()` without a timeout: the event loop awaits its streams
through the engine's notify fd (serving/loop_notifier.py), written by the engine's driver
thread, instead of arming the process's poller per wait. Every stream must still equal the
request run alone, a cancel or close from another thread must end an awaited stream, and a
second event loop must still be served (the generic way)."""

from __future__ import annotations

import asyncio
import random
import threading

import pytest

import foundry_channels as fc
from foundry_channels.lm import encode_prompt
from foundry_channels.serving import Engine
from foundry_channels.serving.loop_notifier import AVAILABLE
from serving_support import expected

pytestmark = pytest.mark.skipif(not AVAILABLE, reason="no eventfd here: the generic path serves")

PROMPTS = ("We hold these truths", "Four score and seven", "It was the best of times", "Call me")


async def read(request):
    pieces = [piece async for piece in request.stream()]
    return [int(t) for p in pieces for t in p.tokens], "".join(p.text for p in pieces)


def test_streams_on_one_loop_are_served_by_the_notify_fd_and_equal_alone():
    rng = random.Random(3)
    cases = [(rng.choice(PROMPTS), rng.randrange(2**32), rng.randint(1, 300)) for _ in range(160)]

    async def main(engine):
        # Waves of requests, some joining while others run.
        results, requests = [], []
        for start in range(0, len(cases), 40):
            wave = [engine.submit(p, max_tokens=m, seed=s) for p, s, m in cases[start:start + 40]]
            requests += wave
            results += await asyncio.wait_for(asyncio.gather(*(read(r) for r in wave)), 60)
        return requests, results, engine._notifiers._current.loop is asyncio.get_running_loop()

    with Engine("cpu", lanes=64, window=4) as engine:
        completions_before = fc.poller_stats()["completions"]
        requests, results, owned = asyncio.run(main(engine))
        assert owned  # this loop's notifier served the streams ...
        assert fc.poller_stats()["completions"] == completions_before  # ... not the poller
    for request, (tokens, text), (prompt, seed, max_tokens) in zip(requests, results, cases):
        want = expected(encode_prompt(prompt), seed, max_tokens)
        assert tokens == want.tokens and text == want.text
        assert request.finish_reason == want.finish_reason


def test_a_cancel_from_another_thread_ends_an_awaited_stream():
    rng = random.Random(5)

    async def main(engine):
        for _ in range(30):
            prompt, seed = rng.choice(PROMPTS), rng.randrange(2**32)
            request = engine.submit(prompt, max_tokens=4000, seed=seed)
            timer = threading.Timer(rng.random() * 0.003, request.cancel)
            timer.start()
            tokens, _ = await asyncio.wait_for(read(request), 10)  # never hangs
            timer.join()
            assert tokens == expected(encode_prompt(prompt), seed, 4000).tokens[:len(tokens)]
            assert request.finish_reason in ("cancelled", "stop")

    with Engine("cpu", lanes=4, window=2) as engine:
        asyncio.run(main(engine))


def test_closing_the_engine_from_another_thread_ends_awaited_streams():
    engine = Engine("cpu", lanes=1, window=2)  # ~1 ms a request: most stay queued a while
    requests = [engine.submit(PROMPTS[i % 4], max_tokens=4000, seed=i) for i in range(300)]

    async def main():
        closer = threading.Timer(0.01, engine.close)
        closer.start()
        await asyncio.wait_for(asyncio.gather(*(read(r) for r in requests)), 30)
        closer.join()

    asyncio.run(main())
    assert all(r.finish_reason in ("cancelled", "stop", "length") for r in requests)
    assert any(r.finish_reason == "cancelled" for r in requests)
    assert engine._notifiers._current is None  # detached, its fd closed


def test_a_second_loop_is_served_and_a_new_loop_takes_over_a_closed_ones_fd():
    with Engine("cpu", lanes=16) as engine:
        owner_ready, other_done = threading.Event(), threading.Event()
        results = {}

        async def owner():
            first = engine.submit("We hold", max_tokens=50, seed=1)
            results["owner"] = await read(first)  # binds the notifier to this loop
            owner_ready.set()
            await asyncio.get_running_loop().run_in_executor(None, other_done.wait, 30)
            results["owner_again"] = await read(engine.submit("Call me", max_tokens=60, seed=2))

        def other():
            owner_ready.wait(30)
            # The owner's loop is open: this loop waits through the poller, and is served.
            results["other"] = asyncio.run(read(engine.submit("Four score", max_tokens=70,
                                                              seed=3)))
            other_done.set()

        thread = threading.Thread(target=other)
        thread.start()
        asyncio.run(owner())
        thread.join(30)
        assert results["owner"][0] == expected(encode_prompt("We hold"), 1, 50).tokens
        assert results["owner_again"][0] == expected(encode_prompt("Call me"), 2, 60).tokens
        assert results["other"][0] == expected(encode_prompt("Four score"), 3, 70).tokens

        async def later():  # the owner's loop is closed now: this one takes the fd over
            tokens = await read(engine.submit("We hold", max_tokens=40, seed=4))
            return tokens, engine._notifiers._current.loop is asyncio.get_running_loop()

        tokens, owned = asyncio.run(later())
        assert owned and tokens[0] == expected(encode_prompt("We hold"), 4, 40).tokens


def test_a_wait_pending_when_its_notifier_closes_returns_instead_of_sleeping_for_ever():
    # The engine closed from another thread ends its streams and writes the fd, then closes the
    # notifier on the loop: if that close runs before the loop has polled the fd, the write is
    # lost with the fd. Close with a wait pending (nothing ever written): the wait must return,
    # and later waits on the closed notifier must not block either.
    with Engine("cpu", lanes=1) as engine:
        async def main():
            notifier = engine._notifiers.for_running_loop()
            assert notifier is not None
            waiter = asyncio.ensure_future(notifier.wait("k", lambda: False))
            await asyncio.sleep(0)  # the waiter is pending on its future now
            asyncio.get_running_loop().call_soon(notifier.close)
            await asyncio.wait_for(waiter, 5)
            assert notifier.closed
            await asyncio.wait_for(notifier.wait("k", lambda: False), 5)

        asyncio.run(main())
