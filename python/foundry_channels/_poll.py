"""The result type of ChannelU32Reader.poll_next() (the binding builds it)."""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple, Optional


class PollState(str, Enum):
    READY = "ready"  # `value` holds the next item
    PENDING = "pending"  # nothing now; the producer may still push
    CLOSED = "closed"  # the channel is closed and every item was read


class Poll(NamedTuple):
    state: PollState
    value: Optional[int] = None


PENDING = Poll(PollState.PENDING)
CLOSED = Poll(PollState.CLOSED)
