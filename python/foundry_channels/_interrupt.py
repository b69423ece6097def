"""Ctrl-C while the command line starts: recorded, then acted on at one safe point.

Python raises KeyboardInterrupt wherever the main thread is, and the CLI spends its first few
hundred milliseconds importing (the workflow modules, jsonschema, numpy). An import
interrupted half way does not fail cleanly: numpy turns the KeyboardInterrupt into an
ImportError with a long traceback, and the import machinery can swallow it in a callback
("Exception ignored in ..."), so that Ctrl-C is lost. So from the first line of __main__
until cli.main() has imported what the commands need, SIGINT only sets a flag; resume() then
raises the KeyboardInterrupt, which the CLI reports with one line and exit code 130.
"""

from __future__ import annotations

import signal

_pending = False


def _record(signum, frame) -> None:
    global _pending
    _pending = True


def defer() -> None:
    """From now until resume(), SIGINT only records itself. Nothing changes where SIGINT is
    ignored (a background job) or has a handler of someone else's, or off the main thread."""
    try:
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, _record)
    except ValueError:  # not the main thread: the process's signals are not ours to handle
        pass


def resume() -> None:
    """Python's own SIGINT handling again; KeyboardInterrupt now if Ctrl-C came meanwhile."""
    global _pending
    if signal.getsignal(signal.SIGINT) is _record:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if _pending:
        _pending = False
        raise KeyboardInterrupt
