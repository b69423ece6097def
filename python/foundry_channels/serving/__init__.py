"""Serving: many streams from one resident model (the sample n-gram LM).

`Engine` owns one device, the uploaded model and one batched decode loop; `Engine.submit()`
returns a `Request` whose `pieces()` / `stream()` yield `Piece`s of text as the device produces
them. See engine.py."""

from .._core import EngineBusyError
from .engine import Engine, EngineClosedError
from .request import EngineError, Request
from .text import Piece

__all__ = ["Engine", "EngineBusyError", "EngineClosedError", "EngineError", "Piece", "Request"]
