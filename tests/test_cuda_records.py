"""Record channels fed from torch on CUDA: fc.stream_write(channel, tensor) for every record
dtype, on the current stream and inside a CUDA graph capture, with no synchronisation."""

from __future__ import annotations

import numpy as np
import pytest

import foundry_channels as fc

torch = pytest.importorskip("torch")


def init(dev, ch):
    cb = dev.new_queue().command_buffer()
    ch.encode_init(cb)
    cb.commit()
    assert cb.wait_until_completed(30)


def as_numpy(t):
    """The tensor's bits as the record reader returns them (bf16: its uint16 words)."""
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return t.cpu().numpy().view(np.uint16) if t.dtype == torch.int16 else t.cpu().numpy()


@pytest.mark.parametrize("dtype, name", [(torch.float32, "f32"), (torch.float16, "f16"),
                                         (torch.bfloat16, "bf16"), (torch.uint8, "u8"),
                                         (torch.int32, "i32"), (torch.int64, "i64")], ids=str)
def test_stream_write_pushes_records_of_every_dtype(cuda, dtype, name):
    shape = (4, 8)
    ch = fc.Channel(cuda, dtype=name, shape=shape, capacity=8)
    init(cuda, ch)
    tensors = [(torch.arange(32, device="cuda") + 100 * i).reshape(shape).to(dtype)
               for i in range(5)]
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # stream_write must not synchronise
    try:
        for t in tensors:
            fc.stream_write(ch, t)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    reader = ch.reader()
    got = [reader.next(timeout=30) for _ in tensors]
    for g, t in zip(got, tensors):
        assert np.array_equal(g, as_numpy(t).reshape(shape))


def test_stream_write_of_records_inside_a_cuda_graph(cuda):
    ch = fc.Channel(cuda, dtype="f32", shape=(16,), capacity=64)
    init(cuda, ch)
    x = torch.zeros(16, device="cuda")
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.stream(stream):
        with torch.cuda.graph(graph, stream=stream):
            x.add_(1.0)
            fc.stream_write(ch, x)
    reader = ch.reader()
    for _ in range(10):
        graph.replay()
    got = [reader.next(timeout=30) for _ in range(10)]
    assert [float(g[0]) for g in got] == [float(k) for k in range(1, 11)]


def test_a_tensor_that_is_not_the_record_is_refused(cuda):
    ch = fc.Channel(cuda, dtype="f32", shape=(4,), capacity=4)
    init(cuda, ch)
    with pytest.raises(TypeError, match="dtype"):
        fc.stream_write(ch, torch.zeros(4, dtype=torch.float16, device="cuda"))
    with pytest.raises(ValueError, match="shape"):
        fc.stream_write(ch, torch.zeros(5, device="cuda"))
    with pytest.raises(ValueError, match="contiguous"):
        fc.stream_write(ch, torch.zeros(8, device="cuda")[::2])
    with pytest.raises(TypeError, match="CUDA torch tensor"):
        fc.stream_write(ch, torch.zeros(4))
