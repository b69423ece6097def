"""torch interop on a GPU: stream_write from CUDA tensors, and a decode loop of a tiny random
model that streams every sampled token with torch's sync debug mode set to "error" (any
per-token synchronisation fails the test), eagerly and captured in a CUDA graph."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import foundry_channels as fc
from conftest import make_channel

torch = pytest.importorskip("torch")


def drain(reader, n, timeout=60):
    out = np.empty(n, dtype=np.uint32)
    got = 0
    while got < n:
        if reader.wait(timeout=timeout) != "ready":
            break
        got += reader.drain_into(out[got:])
    return out[:got]


DTYPES = [torch.int32, torch.int64] + ([torch.uint32] if hasattr(torch, "uint32") else [])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_stream_write_shapes_and_dtypes(cuda, dtype):
    ch = make_channel(cuda, 256)
    reader = ch.reader()
    one = torch.tensor([41], dtype=dtype, device="cuda")
    # built as int64 then converted: torch has no arithmetic on uint32 tensors
    batch = (torch.arange(5, dtype=torch.int64, device="cuda") + 100).to(dtype)
    strided = (torch.arange(10, dtype=torch.int64, device="cuda") + 200).to(dtype)[::2]
    other = torch.tensor([42], dtype=dtype, device="cuda")
    fc.stream_write(ch, one)
    fc.stream_write(ch, batch)
    fc.stream_write(ch, strided)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        fc.stream_write(ch, other)  # current stream inside the context: `side`
    torch.cuda.synchronize()
    expected = [41, 100, 101, 102, 103, 104, 200, 202, 204, 206, 208, 42]
    assert drain(reader, len(expected)).tolist() == expected


def test_stream_write_bad_input(cuda):
    ch = make_channel(cuda, 16)
    with pytest.raises(ValueError, match="CUDA tensor"):
        fc.stream_write(ch, torch.tensor([1], dtype=torch.int32))
    with pytest.raises(TypeError, match="dtype"):
        fc.stream_write(ch, torch.tensor([1.0], device="cuda"))
    with pytest.raises(ValueError, match="shape"):
        fc.stream_write(ch, torch.zeros(2, 2, dtype=torch.int32, device="cuda"))
    with pytest.raises(ValueError, match="empty"):
        fc.stream_write(ch, torch.zeros(0, dtype=torch.int32, device="cuda"))
    with pytest.raises(TypeError, match="CUDA tensor"):
        fc.stream_write(ch, [1, 2])
    with fc.Device("cpu") as cpu:
        with pytest.raises(ValueError, match="'cpu' device"):
            fc.stream_write(make_channel(cpu, 16), torch.tensor([1], device="cuda"))


class TinyLM(torch.nn.Module):
    """Embedding -> 2-layer MLP -> vocabulary logits; random weights, nothing downloaded."""

    def __init__(self, vocab=97, dim=64):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, dim)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(dim, dim), torch.nn.GELU(),
                                       torch.nn.Linear(dim, vocab))

    def forward(self, token):  # token: int64 [1]
        return self.mlp(self.embed(token))[0]


def make_model():
    torch.manual_seed(1234)
    return TinyLM().cuda().eval()


def reference_tokens(model, first, steps):
    tok = torch.tensor([first], device="cuda")
    out = []
    with torch.no_grad():
        for _ in range(steps):
            tok = model(tok).argmax().reshape(1)
            out.append(int(tok.item()))
    return out


def collect_in_thread(reader, n):
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("tokens", drain(reader, n)))
    t.start()
    return t, result


@pytest.fixture
def sync_is_an_error():
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(0)


def test_decode_loop_streams_every_token_without_sync(cuda):
    steps = 200
    model = make_model()
    expected = reference_tokens(model, 3, steps)
    ch = make_channel(cuda, 1024)
    thread, result = collect_in_thread(ch.reader(), steps)
    computed = torch.empty(steps, dtype=torch.int64, device="cuda")
    tok = torch.tensor([3], device="cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        with torch.no_grad():
            for i in range(steps):
                tok = model(tok).argmax().reshape(1)
                fc.stream_write(ch, tok)
                computed[i : i + 1].copy_(tok)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    thread.join(timeout=120)
    assert not thread.is_alive()
    assert result["tokens"].tolist() == computed.tolist() == expected


def test_decode_step_captured_in_cuda_graph(cuda):
    steps = 150
    model = make_model()
    expected = reference_tokens(model, 5, steps + 3)
    ch = make_channel(cuda, 1024)
    reader = ch.reader()
    tok = torch.tensor([5], device="cuda")
    with torch.no_grad():
        # warm up on a side stream (torch's rule before capture); its 3 pushes count too
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                tok.copy_(model(tok).argmax().reshape(1))
                fc.stream_write(ch, tok)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            nxt = model(tok).argmax().reshape(1)
            fc.stream_write(ch, nxt)
            tok.copy_(nxt)
    torch.cuda.synchronize()
    thread, result = collect_in_thread(reader, steps + 3)
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(steps):
            graph.replay()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    thread.join(timeout=120)
    assert not thread.is_alive()
    assert result["tokens"].tolist() == expected
