"""Rules on input values that are checked before anything runs, each defined once here and
imported by the workflow loader, the ops and the command line.

The C++ core enforces the same rules when a channel is made; checking them here as well lets
a workflow be refused at load time and a command-line argument at parse time, with a message
that names the step or the argument."""

from __future__ import annotations

from typing import Any, Optional

from ._core import MAX_CAPACITY


def capacity_problem(capacity: Any) -> Optional[str]:
    """Why `capacity` cannot be a channel's capacity, or None when it can: an integer that
    is a power of two from 1 to MAX_CAPACITY (2^26), as ChannelU32 requires."""
    if isinstance(capacity, bool) or not isinstance(capacity, int) \
            or not 1 <= capacity <= MAX_CAPACITY or capacity & (capacity - 1):
        return f"must be a power of two from 1 to {MAX_CAPACITY} (2^26), got {capacity!r}"
    return None


def capacity_for(items: int) -> int:
    """The smallest capacity that holds `items` items (at most MAX_CAPACITY), so that a run
    of that many pushes loses nothing however far behind the reader is."""
    return min(1 << max(items - 1, 0).bit_length(), MAX_CAPACITY)
