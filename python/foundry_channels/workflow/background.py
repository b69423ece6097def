"""A workflow run in a background thread, with a handle to cancel it or wait for it.

    handle = start_workflow(sample_path(), "cpu", inputs={"prompt": "We hold"},
                            on_token=print)
    handle.feed(encode_prompt(" and"))  # with feed=True: the next steps take these tokens
    handle.cancel()                 # any thread: the device stops within one decode step
    run = handle.result(timeout=10)  # the WorkflowRun (its loop reports stop flag CANCELLED)
"""

from __future__ import annotations

import threading
from typing import Any, Optional

from .cancellation import Cancellation
from .feeding import TokenFeed
from .executor import WorkflowRun, run_workflow


class WorkflowHandle:
    """A run started by start_workflow."""

    def __init__(self, args: tuple, kwargs: dict, feed: bool) -> None:
        self.cancellation = Cancellation()
        self.token_feed = TokenFeed() if feed else None
        if feed:
            kwargs = {**kwargs, "feed": self.token_feed}
        self._run: Optional[WorkflowRun] = None
        self._error: Optional[BaseException] = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._main, args=(args, kwargs),
                                        name="foundry-workflow", daemon=True)
        self._thread.start()

    def _main(self, args: tuple, kwargs: dict) -> None:
        try:
            self._run = run_workflow(*args, cancellation=self.cancellation, **kwargs)
        except BaseException as e:  # handed to whoever calls result()
            self._error = e
        finally:
            self._done.set()

    def cancel(self) -> None:
        """Stops the run's decode steps within one step; idempotent, never blocks."""
        self.cancellation.cancel()

    @property
    def cancelled(self) -> bool:
        return self.cancellation.cancelled

    def feed(self, tokens, timeout: Optional[float] = 5.0) -> None:
        """Tokens the next decode steps take in order instead of sampling (start_workflow(...,
        feed=True)); waits up to `timeout` while the device has not taken earlier ones."""
        if self.token_feed is None:
            raise RuntimeError("this run takes no fed tokens: start it with feed=True")
        self.token_feed.push(tokens, timeout=timeout)

    def done(self) -> bool:
        return self._done.is_set()

    def result(self, timeout: Optional[float] = None) -> WorkflowRun:
        """The finished run; re-raises the run's error; TimeoutError if not done in time."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"the workflow run did not finish within {timeout} s")
        if self._error is not None:
            raise self._error
        assert self._run is not None
        return self._run


def start_workflow(workflow: Any, device: Any = "cpu", *, feed: bool = False,
                   **kwargs) -> WorkflowHandle:
    """Starts run_workflow(workflow, device, **kwargs) in a thread and returns its handle.
    Callbacks (on_token, on_text, on_window) run on that thread. feed=True: handle.feed()
    sends tokens to the running decode steps (feeding.py)."""
    if "cancellation" in kwargs:
        raise TypeError("start_workflow makes the run's cancellation itself: use "
                        "handle.cancel()")
    return WorkflowHandle((workflow, device), kwargs, feed)
