"""Workflow errors. Every message starts with the place it is about: the file (when known),
the step path (`steps[3].body[1].value`) and the op, so the author can find it."""

from __future__ import annotations


class WorkflowError(Exception):
    """Base class of every workflow error."""


class WorkflowValidationError(WorkflowError, ValueError):
    """The workflow file is invalid; raised by loading, before anything runs.

    `errors` holds every problem found as (path, message) pairs; str() lists them all."""

    def __init__(self, errors: list[tuple[str, str]], source: str | None = None) -> None:
        self.errors = list(errors)
        self.source = source
        prefix = f"{source}: " if source else ""
        lines = [f"{prefix}{path}: {message}" if path else f"{prefix}{message}"
                 for path, message in self.errors]
        super().__init__("\n".join(lines) if lines else f"{prefix}invalid workflow")


class WorkflowKindError(WorkflowError, TypeError):
    """A value of the wrong kind reached an op argument at run time (e.g. a channel where a
    tensor is expected)."""


class WorkflowRuntimeError(WorkflowError, RuntimeError):
    """A step failed while the workflow ran (bad input value, device error, ...)."""


def step_label(path: str, op: str | None, arg: str | None = None) -> str:
    """`steps[3].body[1].value (stream_write_u32)`: where an error happened."""
    where = f"{path}.{arg}" if arg else path
    return f"{where} ({op})" if op else where
