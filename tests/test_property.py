"""Property test: any interleaving of pushes and reads matches a pure-Python model of the
drop-oldest ring (values returned, drop count, position)."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import make_channel

READ_AHEAD = 256  # ChannelU32Reader::kCacheItems: try_next() reads up to this many at once


class RingModel:
    def __init__(self, capacity):
        self.capacity = capacity
        self.pushed = []  # every value ever pushed, by index
        self.cursor = 0  # next index to take from the ring
        self.cache = []  # taken by try_next's read-ahead, not yet returned
        self.dropped = 0

    def _take(self, limit):
        written = len(self.pushed)
        if written - self.cursor > self.capacity:
            self.dropped += written - self.cursor - self.capacity
            self.cursor = written - self.capacity
        n = min(limit, written - self.cursor)
        taken = self.pushed[self.cursor : self.cursor + n]
        self.cursor += n
        return taken

    def push(self, values):
        self.pushed.extend(values)

    def drain(self, size):
        out = self.cache[:size]
        self.cache = self.cache[size:]
        if len(out) < size:
            out += self._take(size - len(out))
        return out

    def try_next(self):
        if not self.cache:
            self.cache = self._take(READ_AHEAD)
        return self.cache.pop(0) if self.cache else None


ops = st.lists(
    st.one_of(
        st.tuples(st.just("push"), st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=300)),
        st.tuples(st.just("drain"), st.integers(0, 400)),
        st.tuples(st.just("next"), st.integers(1, 5)),
    ),
    max_size=25,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(capacity_log2=st.integers(0, 9), operations=ops)
def test_reader_matches_ring_model(device, capacity_log2, operations):
    capacity = 1 << capacity_log2
    ch = make_channel(device, capacity)
    queue = device.new_queue()
    reader = ch.reader()
    model = RingModel(capacity)
    for op, arg in operations:
        if op == "push":
            cb = queue.command_buffer()
            for v in arg:
                cb.channel_push(ch, v)
            cb.commit()
            assert cb.wait_until_completed(timeout=30)
            model.push(arg)
        elif op == "drain":
            out = np.zeros(arg, dtype=np.uint32)
            n = reader.drain_into(out)
            assert out[:n].tolist() == model.drain(arg)
        else:
            for _ in range(arg):
                assert reader.try_next() == model.try_next()
        assert reader.dropped == model.dropped
        assert reader.delivered + reader.dropped + len(model.cache) == model.cursor
