"""Overshoot: a decode loop that keeps computing past its stop and rolls back afterwards.

By default every step after the device stop flag is predicated off (no push, no state
advance). A while_batched loop with `overshoot: true` opts out of that for the decode steps
of its body: they keep sampling and advancing the model state past the stop point, as a
fixed-shape graph that never branches would, while the pushes and the collect list stay
predicated, so nothing computed past EOS is published. After the loop, the rollback each
stateful body step registered here is encoded, restoring its state to the stop point.

Registration happens while the body is encoded (once per window size), so a step only
says how to undo itself; the loop decides when.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Hashable, Iterator, Optional


class Overshoot:
    """The rollbacks registered by the body steps of one overshooting loop."""

    def __init__(self) -> None:
        self._rollbacks: dict[Hashable, Callable[[], None]] = {}

    def register(self, key: Hashable, encode_rollback: Callable[[], None]) -> None:
        """`encode_rollback()` encodes the undo of the state `key` names; one per state, as
        every window encodes the same steps."""
        self._rollbacks.setdefault(key, encode_rollback)

    def encode_rollbacks(self) -> int:
        for encode_rollback in self._rollbacks.values():
            encode_rollback()
        return len(self._rollbacks)


def active(ctx) -> Optional[Overshoot]:
    """The overshoot of the loop whose body is being encoded now, or None (predicated)."""
    return getattr(ctx, "overshoot", None)


@contextmanager
def overshooting(ctx, enabled: bool) -> Iterator[Optional[Overshoot]]:
    """Body steps encoded inside the block overshoot when `enabled`; on a normal exit the
    registered rollbacks are encoded into the open command buffer, so they run after the
    loop's last window and before whatever the workflow encodes next."""
    if not enabled:
        yield None
        return
    scope, saved = Overshoot(), active(ctx)
    ctx.overshoot = scope
    try:
        yield scope
    finally:
        ctx.overshoot = saved
    scope.encode_rollbacks()
