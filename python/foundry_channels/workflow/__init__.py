"""Workflows: JSON files of named inputs, values and steps, run on any device.

    from foundry_channels.workflow import load_workflow, run_workflow, sample_path

    wf = load_workflow(sample_path("text_generation_stream_u32"))
    run = run_workflow(wf, "cpu", inputs={"prompt": "We hold", "seed": 7})
    print(run.outputs["text"].__str__())
    tokens = run.context.channels["tokens"].reader()   # what the device streamed
    print(run.loops[0].stop_flag)                       # each loop's LoopResult

Loading validates the whole file first (JSON Schema for structure, then names and value
kinds); errors name the step path, e.g. `steps[3].body[1].value`. Ops live in one registry
(registry.py); the built-in ones are in ops/.

Modules, each importing only those listed after it (pyproject.toml [tool.importlinter]
checks this in CI): ops/ (the built-in ops) -> executor (runs steps: run_workflow) ->
loader (parsing and validation) and runner (the loop runner: windowed here, streaming in
streaming.py) -> definitions (Step, Workflow), schema, reporting (window reports) ->
registry, results (LoopResult, WindowReport), context, overshoot -> values, loop_config
(modes, window bound), errors.
"""

from __future__ import annotations

from importlib import resources

# The one import of the op modules: registers the built-in ops. Python runs this file
# before any module of the package, so the registry is complete before anything loads a
# workflow, and the registry never has to import the ops back.
from . import ops  # noqa: F401
from .background import WorkflowHandle, start_workflow
from .cancellation import Cancellation
from .context import WorkflowExecutionContext
from .definitions import Step, Workflow
from .errors import WorkflowError, WorkflowKindError, WorkflowRuntimeError, WorkflowValidationError
from .executor import WorkflowRun, run_workflow
from .feeding import TokenFeed
from .loader import load_workflow
from .registry import Arg, OpSpec, all_ops, register_op
from .results import LoopResult, WindowReport
from .runner import WindowedLoop
from .values import Channel, TensorArg, ValueType


def sample_path(name: str = "text_generation_stream_u32") -> str:
    """Path of a workflow shipped with the package (foundry_channels/workflows/NAME.json)."""
    path = resources.files("foundry_channels").joinpath("workflows", f"{name}.json")
    if not path.is_file():
        raise FileNotFoundError(f"no shipped workflow named {name!r}")
    return str(path)


__all__ = [
    "Arg",
    "Cancellation",
    "Channel",
    "LoopResult",
    "OpSpec",
    "Step",
    "TensorArg",
    "TokenFeed",
    "ValueType",
    "WindowReport",
    "WindowedLoop",
    "Workflow",
    "WorkflowError",
    "WorkflowExecutionContext",
    "WorkflowHandle",
    "WorkflowKindError",
    "WorkflowRun",
    "WorkflowRuntimeError",
    "WorkflowValidationError",
    "all_ops",
    "load_workflow",
    "register_op",
    "run_workflow",
    "sample_path",
    "start_workflow",
]
