"""The op registry: every op a workflow may name, with its arguments, registered once.

The JSON Schema of workflow files (schema.py), the load-time checks (loader.py) and the run-
time argument binding (executor.py) are all derived from these specs, so an op is described
in exactly one place.

This module imports no op: an op module imports register_op from here and registers itself
when imported. The built-in ops (ops/) are imported by the package's __init__, which Python
runs before any module of the package, so they are registered before anything can load a
workflow; the registry never imports them back (no import loop).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union

from .values import ValueType

# Where an op runs, which decides where it may appear and what the executor does first:
#   step     encodes device work that is the same every time (a decode step, a push): the
#            only kind allowed in a while_batched body, whose window is encoded once and
#            replayed
#   setup    allocates or uploads on the CPU, then may encode device work (stream_init)
#   cpu      reads device results on the CPU: the executor completes pending work first
#   control  drives command buffers itself (stream_flush, while_batched)
CATEGORIES = ("step", "setup", "cpu", "control")

# Argument kinds: the value kinds (values.VALUE_KINDS) plus two literal-only forms.
#   "shape"   a literal list of positive ints
#   "choice"  a literal string out of Arg.choices
# A JSON string in any other argument is the name of a value.
LITERAL_ONLY = ("shape", "choice")


@dataclass(frozen=True)
class Arg:
    kinds: tuple[str, ...]
    required: bool = True
    default: Any = None
    dtype: Optional[str] = None  # tensors: the dtype required; channels: the item type
    shape: Optional[tuple[int, ...]] = None  # tensors: the shape required (None: any)
    choices: tuple[str, ...] = ()
    minimum: int = 0  # u32 literals
    maximum: int = 0xFFFFFFFF
    doc: str = ""
    # True: the run's option of the same name, when given, replaces what the step says
    # (while_batched's `mode`: run_workflow(mode=...), the CLI's --mode). The executor
    # applies it when binding the arguments, so the op receives the resolved value.
    run_option: bool = False

    @property
    def takes_names(self) -> bool:
        return any(k not in LITERAL_ONLY for k in self.kinds)

    def accepts(self, t: ValueType) -> bool:
        if t.kind not in self.kinds:
            return False
        if t.kind in ("tensor", "channel") and self.dtype and t.dtype and t.dtype != self.dtype:
            return False
        if t.kind == "tensor":
            if self.shape is not None and t.shape is not None and t.shape != self.shape:
                return False
        return True

    def describe(self) -> str:
        """What the argument takes, in words: 'a u32 (literal or name) or a tensor u32[1]'."""
        parts = []
        for kind in self.kinds:
            if kind == "u32":
                lo = f"{self.minimum}" if self.minimum else "0"
                parts.append(f"a u32 ({lo}..{self.maximum}, literal or name)")
            elif kind == "bool":
                parts.append("a bool (true/false or name)")
            elif kind == "tensor":
                parts.append("the name of a " + ValueType("tensor", self.dtype, self.shape).describe())
            elif kind == "channel":
                parts.append("the name of a " + ValueType("channel", self.dtype).describe())
            elif kind == "shape":
                parts.append("a shape (list of positive ints)")
            elif kind == "choice":
                parts.append("one of " + ", ".join(repr(c) for c in self.choices))
            else:
                parts.append(f"the name of a {kind}")
        return " or ".join(parts)


OutputType = Union[ValueType, Callable[[dict], ValueType], None]


@dataclass(frozen=True)
class OpSpec:
    name: str
    run: Callable  # run(ctx, args: dict, step) -> value or None
    args: dict[str, Arg] = field(default_factory=dict)
    output: OutputType = None  # the kind of value the step's `out` names
    output_required: bool = True
    category: str = "step"
    has_body: bool = False
    check: Optional[Callable] = None  # extra load-time rules: check(step_dict) -> [(suffix, msg)]
    # Load-time rules across arguments given by name: check_types({arg: ValueType}) ->
    # [(suffix, msg)] (stream_write: the tensor must be a record of the channel's dtype/shape).
    check_types: Optional[Callable] = None
    doc: str = ""
    # Channel items one run of the step pushes at most (None: 1), pushes(ctx, step): the
    # streaming runner sizes its windows by it (detok_push: the longest token's items).
    pushes: Optional[Callable] = None

    def output_type(self, step: dict) -> Optional[ValueType]:
        if callable(self.output):
            return self.output(step)
        return self.output


REGISTRY: dict[str, OpSpec] = {}
RESERVED_KEYS = ("op", "out", "body", "comment")


def register_op(name: str, *, args: Optional[dict[str, Arg]] = None, output: OutputType = None,
                output_required: bool = True, category: str = "step", has_body: bool = False,
                check: Optional[Callable] = None, doc: str = "",
                pushes: Optional[Callable] = None,
                check_types: Optional[Callable] = None) -> Callable:
    """Decorator: register `fn(ctx, args, step)` as op `name`."""
    if category not in CATEGORIES:
        raise ValueError(f"register_op({name!r}): category must be one of {CATEGORIES}")
    for arg_name in args or {}:
        if arg_name in RESERVED_KEYS:
            raise ValueError(f"register_op({name!r}): argument name {arg_name!r} is reserved")

    def decorate(fn: Callable) -> Callable:
        if name in REGISTRY:
            raise ValueError(f"op {name!r} is already registered")
        REGISTRY[name] = OpSpec(name=name, run=fn, args=dict(args or {}), output=output,
                                output_required=output_required, category=category,
                                has_body=has_body, check=check, doc=doc or (fn.__doc__ or ""),
                                pushes=pushes, check_types=check_types)
        return fn

    return decorate


def all_ops() -> dict[str, OpSpec]:
    """Every registered op (the built-in ones and any a program registered)."""
    return REGISTRY
