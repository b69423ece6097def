"""Committing releases the GIL on every backend.

A commit may block until earlier command buffers complete (Metal: 64 in flight), and completion
handlers written in Python need the GIL to run: a commit holding it could deadlock. The binding
states the release once per entry point (py::call_guard<ReleaseGil>); the `cpu` backend never
blocks in commit, so Linux can only check that the guard is there and that commits racing Python
completion handlers from several threads all finish.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import foundry_channels as fc

BIND_DEVICE = Path(__file__).resolve().parents[1] / "csrc" / "bindings" / "bind_device.cpp"


def binding_of(method: str) -> str:
    """The text of `.def("method", ...)` up to its closing parenthesis."""
    source = BIND_DEVICE.read_text()
    start = source.index(f'.def("{method}"')
    depth = 0
    for end in range(start + len(".def"), len(source)):
        depth += {"(": 1, ")": -1}.get(source[end], 0)
        if depth == 0:
            return source[start:end + 1]
    raise AssertionError(f"unbalanced .def(\"{method}\"")


def test_commit_and_replay_release_the_gil():
    for method in ("commit", "replay"):
        assert re.search(r"py::call_guard<ReleaseGil>\(\)", binding_of(method)), method


def test_commits_racing_python_completion_handlers_all_finish():
    dev = fc.Device("cpu")
    done = []
    errors = []

    def commit_many():
        try:
            queue = dev.new_queue()
            for _ in range(100):
                cb = queue.command_buffer()
                cb.add_completed_handler(lambda c: done.append(c.status))
                cb.commit()
            cb.wait_until_completed(timeout=30)
        except BaseException as e:  # reported below: a thread's exception is otherwise lost
            errors.append(e)

    threads = [threading.Thread(target=commit_many) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors and not any(t.is_alive() for t in threads)
    dev.close()
    assert done.count("completed") == 400
