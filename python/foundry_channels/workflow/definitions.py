"""The types of a validated workflow: Step, Declaration and Workflow, plus the queries on
them that more than one module needs (pushes_into: the loader's loop checks and the loop op).

Made by loader.py (parsing and validation), run by executor.py; this module depends on the
op registry only for the OpSpec a step refers to, so both can import it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from .registry import OpSpec


@dataclass(frozen=True)
class Step:
    """One validated step: its op, its arguments as written (literals or value names), the
    name its output gets, and (while_batched) its body."""

    path: str
    spec: OpSpec
    args: dict[str, Any]
    out: Optional[str] = None
    body: tuple["Step", ...] = ()

    @property
    def op(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class Declaration:
    kind: str
    value: Any = None  # the default of an input (None: required), the value of a value
    minimum: Optional[int] = None
    maximum: Optional[int] = None
    description: str = ""


@dataclass
class Workflow:
    """A validated workflow (loader.load_workflow); executor.run_workflow runs it."""

    name: str
    steps: tuple[Step, ...]
    inputs: dict[str, Declaration] = field(default_factory=dict)
    values: dict[str, Declaration] = field(default_factory=dict)
    outputs: tuple[str, ...] = ()
    description: str = ""
    source: Optional[str] = None


def pushes_into(body: tuple[Step, ...], channel: str) -> list[Step]:
    """The steps of a loop body that push into the channel named `channel`: a device step
    that takes a channel argument writes into it (stream_write_u32's `channel`,
    lm_decode_step's fused `stream`)."""
    return [s for s in body if any("channel" in s.spec.args[name].kinds and value == channel
                                   for name, value in s.args.items())]


def text_streams(steps: tuple[Step, ...]) -> list[str]:
    """The byte channels (stream_init with "bytes": true, or a name: known only at run time)
    that a while_batched loop streams: the loops that deliver text (on_text)."""
    byte_channels = {s.out for s in steps
                     if s.op == "stream_init" and s.args.get("bytes", False) is not False}
    return [s.args["stream"] for s in steps
            if s.op == "while_batched" and s.args.get("stream") in byte_channels]
