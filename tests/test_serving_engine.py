"""The serving engine (foundry_channels.serving): every request's pieces equal the same request
run alone, however many run beside it, whenever it joined, cancelled or not."""

from __future__ import annotations

import asyncio
import gc
import random
import subprocess
import sys
import threading
import time
import tracemalloc

import numpy as np
import pytest

import foundry_channels as fc
from foundry_channels._core import serving_live_streams
from foundry_channels.lm import builtin_table, encode_prompt
from foundry_channels.serving import Engine, EngineBusyError, EngineClosedError, EngineError
from lm_support import decode_on_device
from serving_support import collect, expected, reference_logprobs

WORDS = ("We", "hold", "these", "truths", "the", "people", "of", "Four", "score", "and",
         "seven", "years", "ago", "a", "new", "nation", "liberty", "government", "é", "ç")


def random_prompt(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 8)))


def random_stops(rng: random.Random, prompt: str, seed: int, max_tokens: int) -> list:
    """0-3 stop strings, most of them taken from the request's own completion so they match."""
    text = bytes(expected(encode_prompt(prompt), seed, max_tokens).tokens)
    stops = []
    for _ in range(rng.randint(0, 3)):
        if text and rng.random() < 0.7:
            i = rng.randrange(len(text))
            piece = text[i:i + rng.randint(1, 6)].decode("utf-8", "ignore")
            if piece and "\0" not in piece:
                stops.append(piece)
        else:
            stops.append(rng.choice(["\n\n", "zzz", "the", "qx", "."]))
    return stops


def busy_device(device, pushes: int = 100_000_000):
    """Keeps the device thread busy for a while (~0.1 s): work committed after this waits,
    so a test can act on requests that cannot have run yet."""
    ch = fc.ChannelU32(device, 1024)
    cb = device.new_queue().command_buffer()
    cb.channel_init(ch)
    cb.dispatch("channel_u32_push_sequence", 1, channel=ch, capacity=1024, start=0, count=pushes)
    cb.commit()
    return cb


def check(request, prompt: str, seed: int, max_tokens: int, stops=()) -> None:
    want = expected(encode_prompt(prompt), seed, max_tokens, [s.encode() for s in stops])
    tokens, text, _ = collect(request)
    assert tokens == want.tokens, (prompt, seed, max_tokens, stops)
    assert text == want.text
    assert request.finish_reason == want.finish_reason
    assert request.completion_tokens == want.completion_tokens
    assert request.prompt_tokens == len(encode_prompt(prompt))


def test_lane_tokens_equal_the_single_sequence_kernel(device):
    """lm_lanes_step samples like lm_prefill + lm_decode_step, lane by lane (every backend)."""
    rng = random.Random(5)
    cases = [(random_prompt(rng), rng.randrange(2**32), rng.randint(1, 120)) for _ in range(12)]
    with Engine(device, lanes=8, window=4, history_capacity=256) as engine:
        requests = [engine.submit(p, max_tokens=m, seed=s) for p, s, m in cases]
        for request, (prompt, seed, max_tokens) in zip(requests, cases):
            single = decode_on_device(device, encode_prompt(prompt), seed=seed, steps=max_tokens,
                                      max_tokens=max_tokens)
            assert collect(request)[0] == single.tokens
    assert not device.closed  # an engine leaves a device it was given open


def test_random_requests_joining_mid_run_equal_alone(device):
    """Submitters on several threads at random times, more requests than lanes, random stop
    strings: each request's tokens and text equal its run alone (nothing lost or repeated)."""
    rng = random.Random(11)
    count = 160 if device.backend == "cpu" else 64
    cases = []
    for _ in range(count):
        prompt, seed, max_tokens = random_prompt(rng), rng.randrange(2**32), rng.randint(1, 300)
        cases.append((prompt, seed, max_tokens, random_stops(rng, prompt, seed, max_tokens)))
    failures = []
    with Engine(device, lanes=16, window=4) as engine:
        def submitter(part):
            local = random.Random(part)
            try:
                mine = []
                for prompt, seed, max_tokens, stops in cases[part::4]:
                    mine.append((engine.submit(prompt, max_tokens=max_tokens, seed=seed,
                                               stop=stops), prompt, seed, max_tokens, stops))
                    if local.random() < 0.3:
                        time.sleep(local.random() * 0.003)  # others are mid-run meanwhile
                local.shuffle(mine)
                for request, *case in mine:
                    check(request, *case)
            except BaseException as e:  # reported by the main thread
                failures.append(e)
        threads = [threading.Thread(target=submitter, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not any(t.is_alive() for t in threads)
        if failures:
            raise failures[0]
        stats = engine.stats()
        assert stats["completed"] == stats["submitted"] == count
        assert stats["active_lanes"] == 0


def test_cancel_at_random_points_gives_a_prefix(device):
    """A request cancelled at a random point delivered a prefix of its uncancelled run, nothing
    after the cancel, and its lane stopped on the device (freed for the requests after it)."""
    rng = random.Random(3)
    window = 2
    with Engine(device, lanes=8, window=window) as engine:
        for round_ in range(4 if device.backend == "cpu" else 2):
            cases = [(random_prompt(rng), rng.randrange(2**32), rng.randint(200, 1500))
                     for _ in range(12)]
            requests = [engine.submit(p, max_tokens=m, seed=s) for p, s, m in cases]
            cancel_points = [rng.randint(0, 6) for _ in cases]
            for request, (prompt, seed, max_tokens), after in zip(requests, cases, cancel_points):
                want = expected(encode_prompt(prompt), seed, max_tokens).tokens
                tokens, published_at_cancel = [], None
                for i, piece in enumerate(request.pieces(timeout=30)):
                    tokens += piece.tokens.tolist()
                    if i == after:
                        request.cancel()
                        published_at_cancel = request._stream.published
                assert tokens == want[:len(tokens)]
                if published_at_cancel is None:  # it ended before its cancel point
                    assert tokens == want
                    continue
                assert request.finish_reason in ("cancelled", "stop", "length")
                if request.finish_reason == "cancelled":
                    assert request.completion_tokens == published_at_cancel == len(tokens)
            # Every lane was stopped on the device: all end items arrived, all lanes free.
            deadline = time.monotonic() + 30
            while engine.stats()["active_lanes"] and time.monotonic() < deadline:
                time.sleep(0.002)
            assert engine.stats()["active_lanes"] == 0
            for request in requests:
                stream = request._stream
                if request.finish_reason == "cancelled":
                    # The device made at most what was in flight when the cancel was written
                    # (the channel holds two windows), not the rest of max_tokens.
                    assert stream.received - stream.published <= 4 * window + 2
        prompt = random_prompt(rng)
        check(engine.submit(prompt, max_tokens=50, seed=9), prompt, 9, 50)


def test_cancel_from_another_thread_while_reading():
    rng = random.Random(8)
    with Engine("cpu", lanes=4, window=2) as engine:
        for _ in range(20):
            prompt, seed = random_prompt(rng), rng.randrange(2**32)
            request = engine.submit(prompt, max_tokens=3000, seed=seed)
            timer = threading.Timer(rng.random() * 0.004, request.cancel)
            timer.start()
            tokens = collect(request)[0]
            timer.join()
            want = expected(encode_prompt(prompt), seed, 3000).tokens
            assert tokens == want[:len(tokens)]
            assert request.finish_reason in ("cancelled", "stop")
            request.cancel()  # idempotent
            assert request.finish_reason in ("cancelled", "stop")


def test_cancel_while_queued_never_runs(cpu_device):
    with Engine(cpu_device, lanes=1, window=2) as engine:
        busy_device(cpu_device)  # neither request can run before the cancel
        first = engine.submit("We hold", max_tokens=2000, seed=1)
        queued = engine.submit("Four score", max_tokens=50, seed=2)
        queued.cancel()
        assert queued.finish_reason == "cancelled"
        assert collect(queued)[0] == []
        assert queued._stream.received == 0
        check(first, "We hold", 1, 2000)
        check(engine.submit("the people", max_tokens=40, seed=3), "the people", 3, 40)


def test_64_concurrent_streams_on_one_event_loop():
    """96 requests on 64 lanes, each read with `async for` on one loop: the process's one
    poller thread serves them all."""
    rng = random.Random(21)
    cases = [(random_prompt(rng), rng.randrange(2**32), rng.randint(50, 250)) for _ in range(96)]
    threads_before = fc.poller_stats()["threads_started"]

    async def read(request):
        pieces = [piece async for piece in request.stream(timeout=30)]
        return [int(t) for p in pieces for t in p.tokens], "".join(p.text for p in pieces)

    async def main(engine):
        requests = [engine.submit(p, max_tokens=m, seed=s) for p, s, m in cases]
        return requests, await asyncio.gather(*(read(r) for r in requests))

    with Engine("cpu", lanes=64) as engine:
        requests, results = asyncio.run(main(engine))
    for request, (tokens, text), (prompt, seed, max_tokens) in zip(requests, results, cases):
        want = expected(encode_prompt(prompt), seed, max_tokens)
        assert tokens == want.tokens and text == want.text
        assert request.finish_reason == want.finish_reason
        assert request.first_token_s is not None and request.first_token_s > 0
    assert fc.poller_stats()["threads_started"] <= threads_before + 1


def test_logprobs_are_the_models_probabilities():
    table = builtin_table()
    with Engine("cpu", lanes=4) as engine:
        for seed in range(6):
            prompt = encode_prompt("We hold these truths")
            request = engine.submit(prompt, max_tokens=80, seed=seed, logprobs=True)
            pieces = list(request.pieces(timeout=30))
            tokens = [int(t) for p in pieces for t in p.tokens]
            values = np.concatenate([p.logprobs for p in pieces])
            assert values.dtype == np.float32 and len(values) == len(tokens)
            np.testing.assert_allclose(values, reference_logprobs(table, prompt, tokens),
                                       rtol=1e-6, atol=1e-6)
            assert (values <= 0).all()
        plain = engine.submit("We hold", max_tokens=10)
        assert all(p.logprobs is None for p in plain.pieces(timeout=30))


def test_stop_strings_end_the_text_before_them():
    prompt, seed = "We hold these truths", 4
    full = bytes(expected(encode_prompt(prompt), seed, 200).tokens)
    stop = full[40:43].decode()
    with Engine("cpu", lanes=4) as engine:
        request = engine.submit(prompt, max_tokens=200, seed=seed, stop=stop)  # one string
        tokens, text, _ = collect(request)
        start = full.find(stop.encode())
        assert bytes(tokens) == full[:start] and text == full[:start].decode("utf-8", "replace")
        assert request.finish_reason == "stop"
        # The device matched it: it generated the stop string's tokens and nothing after.
        assert request.completion_tokens == start + len(stop.encode())
        # The string that completes first wins, even when another started earlier.
        a, b = full[30:38].decode(), full[33:35].decode()
        check(engine.submit(prompt, max_tokens=200, seed=seed, stop=[a, b]), prompt, seed, 200,
              [a, b])
        # A stop string that never completes holds nothing back at the end.
        check(engine.submit(prompt, max_tokens=200, seed=seed, stop=["qqq", full[-2:].decode()
                                                                      + "qq"]),
              prompt, seed, 200, ["qqq", full[-2:].decode() + "qq"])


def test_pieces_never_split_a_character():
    with Engine("cpu", lanes=4) as engine:
        for seed in range(10):
            request = engine.submit("Déjà vu: le café é ç", max_tokens=150, seed=seed)
            tokens, text, pieces = collect(request)
            assert text == bytes(tokens).decode("utf-8", "replace")
            for piece in pieces:  # each piece decodes on its own: no character cut in two
                assert "\ufffd" not in piece.text or "\ufffd" in text


@pytest.mark.parametrize("kwargs, match", [
    (dict(prompt=""), "prompt is empty"),
    (dict(prompt=[]), "prompt is empty"),
    (dict(prompt="a\0b"), "NUL"),
    (dict(prompt=[65, 0, 66]), "token 0 at position 1"),
    (dict(prompt=[65, 300]), "token 300 at position 1"),
    (dict(prompt=b"abc"), "got bytes"),
    (dict(prompt="x" * 600), "prompt: 600 tokens"),
    (dict(max_tokens=0), "max_tokens must be 1..505"),
    (dict(max_tokens=600), "max_tokens must be 1..505"),
    (dict(max_tokens="5"), "max_tokens must be an integer"),
    (dict(max_tokens=True), "max_tokens must be an integer"),
    (dict(seed=-1), "seed must be"),
    (dict(seed=2**32), "seed must be"),
    (dict(stop=["a", "b", "c", "d", "e"]), "at most 4 stop strings"),
    (dict(stop=[""]), r"stop\[0\]: a stop string has 1..32 bytes"),
    (dict(stop=["x" * 33]), r"stop\[0\]: a stop string has 1..32 bytes"),
    (dict(stop=[5]), r"stop\[0\] must be a string"),
    (dict(logprobs=1), "logprobs must be True or False"),
])
def test_bad_requests_name_the_argument(kwargs, match):
    args = dict(prompt="We hold", max_tokens=10)
    args.update(kwargs)
    with Engine("cpu", lanes=2, history_capacity=512) as engine:
        with pytest.raises(ValueError, match=match):
            engine.submit(args.pop("prompt"), **args)
        check(engine.submit("We hold", max_tokens=10, seed=0), "We hold", 0, 10)  # still serves


@pytest.mark.parametrize("kwargs, match", [
    (dict(lanes=0), "lanes must be 1..4096"),
    (dict(window=3), "window: must be an even number"),
    (dict(window=0), "window must be 2..4096"),
    (dict(history_capacity=1), "history_capacity must be"),
    (dict(vocab="words"), "vocab must be one of"),
    (dict(lanes=4096, window=4096), "window: 4096 steps of 4096 lanes need a channel"),
])
def test_bad_engine_configuration(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Engine("cpu", **kwargs)


def test_busy_and_closed_engines_refuse_requests():
    engine = Engine("cpu", lanes=1, max_queued=2)
    accepted, busy = [], None
    for i in range(200):  # submits are microseconds, a request milliseconds: the queue fills
        try:
            accepted.append((engine.submit("Four", max_tokens=300, seed=i), i))
        except EngineBusyError as e:
            busy = e
            break
    assert busy is not None and "busy" in str(busy) and "max_queued" in str(busy)
    for request, seed in accepted:
        check(request, "Four", seed, 300)
    engine.close()
    engine.close()  # idempotent
    assert engine.device.closed  # it opened the device, so it closed it
    with pytest.raises(EngineClosedError, match="closed"):
        engine.submit("We hold", max_tokens=5)


def test_close_with_requests_in_flight_ends_them():
    engine = Engine("cpu", lanes=1, window=2)  # ~1 ms a request: most stay queued a while
    requests = [engine.submit(random_prompt(random.Random(i)), max_tokens=4000, seed=i)
                for i in range(400)]
    ended = []

    def reader(request):
        collect(request, timeout=30)
        ended.append(request.finish_reason)

    async def awaiting(many):
        async def one(request):
            return [p async for p in request.stream(timeout=30)]
        return await asyncio.wait_for(asyncio.gather(*(one(r) for r in many)), 30)

    threads = [threading.Thread(target=reader, args=(r,)) for r in requests[:20]]
    for t in threads:
        t.start()
    closer = threading.Thread(target=engine.close)  # most requests are still queued
    closer.start()
    asyncio.run(awaiting(requests[20:40]))
    for t in threads:
        t.join(30)
    closer.join()
    assert not any(t.is_alive() for t in threads)
    assert len(ended) == 20
    assert all(r.finish_reason in ("cancelled", "stop") for r in requests[:40])
    assert requests[-1].finish_reason == "cancelled"  # never read: ended by close() all the same


def test_memory_stays_flat_over_thousands_of_requests():
    rng = random.Random(2)
    gc.collect()
    live_before = serving_live_streams()
    with Engine("cpu", lanes=64, window=2) as engine:
        def batch(n):
            requests = [engine.submit(random_prompt(rng), max_tokens=rng.randint(1, 12),
                                      seed=rng.randrange(2**32)) for _ in range(n)]
            for request in requests:
                collect(request)
        batch(400)  # warm-up: caches, the engine's vectors at their sizes
        gc.collect()
        tracemalloc.start()
        first = tracemalloc.take_snapshot()
        for _ in range(6):
            batch(400)
        gc.collect()
        second = tracemalloc.take_snapshot()
        tracemalloc.stop()
        grown = sum(s.size_diff for s in second.compare_to(first, "filename"))
        assert grown < 256 * 1024, f"Python memory grew {grown} bytes over 2400 requests"
        assert engine.stats()["completed"] == 2800
    gc.collect()
    assert serving_live_streams() == live_before  # every C++ stream was freed


def test_a_dropped_request_frees_its_lane(cpu_device):
    with Engine(cpu_device, lanes=1, window=2) as engine:
        check(engine.submit("We hold", max_tokens=5, seed=0), "We hold", 0, 5)  # warm
        blocker = busy_device(cpu_device)
        streams = []
        for i in range(5):  # none can run while the device is busy
            request = engine.submit("We hold", max_tokens=4000, seed=i)
            streams.append(request._stream)  # the C++ side outlives the Request here
            del request
        assert blocker.status != "completed"  # (else the test proved nothing)
        assert [s.finish_reason for s in streams] == ["cancelled"] * 5
        check(engine.submit("Four score", max_tokens=30, seed=1), "Four score", 1, 30)


def test_one_reader_per_request():
    with Engine("cpu", lanes=2) as engine:
        request = engine.submit("We hold", max_tokens=3000, seed=1)
        first = request.pieces(timeout=10)
        next(first)
        with pytest.raises(fc.ConcurrentUseError, match="one reader"):
            next(request.pieces(timeout=10))
        request.cancel()
        list(first)


def test_bpe_vocabulary():
    pytest.importorskip("tokenizers")
    from foundry_channels.lm import reference_generate
    from foundry_channels.lm.bpe import bpe_table, encode_prompt_bpe, shipped_vocabulary

    table, vocab = bpe_table(), shipped_vocabulary()
    with Engine("cpu", lanes=4, vocab="bpe") as engine:
        for seed in range(6):
            prompt = "東京と大阪の間を"
            request = engine.submit(prompt, max_tokens=60, seed=seed)
            tokens, text, _ = collect(request)
            want, _ = reference_generate(table, encode_prompt_bpe(prompt), seed, 60)
            assert tokens == want
            assert text == vocab.decode(want).decode("utf-8", "replace")
        # A stop string found in the text ends it, however the tokens spell it.
        full = vocab.decode(reference_generate(table, encode_prompt_bpe("We hold"), 1, 100)[0])
        stop = full[20:24].decode("utf-8", "ignore") or full[:2].decode("utf-8", "ignore")
        request = engine.submit("We hold", max_tokens=100, seed=1, stop=stop)
        _, text, _ = collect(request)
        assert text == full[:full.find(stop.encode())].decode("utf-8", "replace")
        assert request.finish_reason == "stop"


def test_a_device_closed_under_the_engine_fails_its_requests():
    device = fc.Device("cpu")
    engine = Engine(device, lanes=2, window=2)
    requests = [engine.submit(random_prompt(random.Random(i)), max_tokens=4000, seed=i)
                for i in range(10)]
    next(requests[0].pieces(timeout=30))
    device.close()
    errors = 0
    for request in requests:
        try:
            collect(request)
        except EngineError as e:
            errors += 1
            assert "closed" in str(e)
        assert request.finish_reason in ("error", "stop")
    assert errors >= 8  # the queued ones at least
    with pytest.raises(EngineClosedError, match="failed"):
        engine.submit("We hold", max_tokens=5)
    engine.close()


def test_interpreter_exits_with_an_engine_running():
    code = ("from foundry_channels.serving import Engine\n"
            "engine = Engine('cpu')\n"
            "requests = [engine.submit('We hold', max_tokens=4000, seed=i) for i in range(80)]\n"
            "next(requests[0].pieces(timeout=30))\n"
            "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_ready_says_whether_the_next_piece_needs_a_wait(cpu_device):
    with Engine(cpu_device, lanes=1, window=2) as engine:
        busy_device(cpu_device)  # the request cannot run yet
        request = engine.submit("We hold", max_tokens=30, seed=4)
        assert not request.ready  # nothing generated: the next piece needs a wait
        pieces = request.pieces(timeout=30)
        first = next(pieces)
        while request._stream.finish_reason is None:  # let it finish without reading
            time.sleep(0.001)
        assert request.ready  # the rest (and the end) can be had at once
        rest = list(pieces)
        assert request.ready and request.finish_reason is not None  # ended: ready stays
        tokens = [int(t) for p in [first] + rest for t in p.tokens]
        assert tokens == expected(encode_prompt("We hold"), 4, 30).tokens
