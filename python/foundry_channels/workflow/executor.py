"""Running a validated workflow: inputs in, steps in order, outputs out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Union

from .._core import Device
from .cancellation import Cancellation
from .context import WorkflowExecutionContext
from .feeding import TokenFeed
from .definitions import Declaration, Step, Workflow
from .errors import WorkflowError, WorkflowKindError, WorkflowRuntimeError, step_label
from .loader import load_workflow
from .loop_config import SAMPLERS, check_mode
from .results import LoopResult
from .values import U32_MAX, TensorArg, ValueType, to_python, type_of

# Run options (name -> value; None: not given) replace the step arguments marked
# Arg.run_option. Passed down as an argument from run_workflow to bind_args.
RunOptions = Mapping[str, Any]
_NO_OPTIONS: RunOptions = {}


def bind_args(ctx: WorkflowExecutionContext, step: Step,
              options: RunOptions = _NO_OPTIONS) -> dict[str, Any]:
    """The step's arguments as values: a run option given for an argument marked
    run_option, else literals as written, names looked up in ctx.values, defaults filled in.
    Kinds are checked again here (load-time checks cannot see values put into the context by
    a program), with errors naming the step, the op and the argument."""
    bound = {}
    for name, arg in step.spec.args.items():
        if arg.run_option and options.get(name) is not None:
            bound[name] = options[name]  # validated by run_workflow
            continue
        if name not in step.args:
            bound[name] = arg.default
            continue
        raw = step.args[name]
        if isinstance(raw, str) and arg.takes_names:
            if raw not in ctx.values:
                raise WorkflowRuntimeError(f"{step_label(step.path, step.op, name)}: undefined name '{raw}'")
            value = ctx.values[raw]
            t = type_of(value)
            if not arg.accepts(t):
                raise WorkflowKindError(f"{step_label(step.path, step.op, name)}: '{raw}' is a "
                                        f"{t.describe()}, but '{name}' takes {arg.describe()}")
            bound[name] = value
        else:
            bound[name] = raw
    return bound


def run_step(ctx: WorkflowExecutionContext, step: Step,
             options: RunOptions = _NO_OPTIONS) -> Optional[LoopResult]:
    """Runs one step; returns its LoopResult when it is a loop, else None."""
    if step.spec.category == "cpu":
        ctx.synchronize()  # a CPU op reads device results: finish what was encoded first
    args = bind_args(ctx, step, options)
    try:
        result = step.spec.run(ctx, args, step)
    except (WorkflowError, KeyboardInterrupt):
        raise
    except Exception as e:
        raise WorkflowRuntimeError(f"{step_label(step.path, step.op)}: {e}") from e
    # A loop op returns its LoopResult: the run hands it back to the caller, and the value
    # the step's `out` names is what the loop collected (ops/control.py).
    loop = result if isinstance(result, LoopResult) else None
    if loop is not None:
        result = loop.tokens
    if step.out is not None:
        ctx.values[step.out] = result
    return loop


def run_steps(ctx: WorkflowExecutionContext, steps,
              options: RunOptions = _NO_OPTIONS) -> list[LoopResult]:
    """Runs the steps in order; returns the results of the loops among them, in order."""
    loops = []
    for step in steps:
        loop = run_step(ctx, step, options)
        if loop is not None:
            loops.append(loop)
    return loops


def coerce_input(name: str, decl: Declaration, value: Any) -> Any:
    """An input value of the declared kind (strings from a command line are parsed)."""
    where = f"input '{name}'"
    if decl.kind == "str":
        if not isinstance(value, str):
            raise WorkflowRuntimeError(f"{where}: expected a string, got {value!r}")
        try:  # a command line's undecodable bytes arrive as lone surrogates
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            raise WorkflowRuntimeError(f"{where}: not UTF-8 text: undecodable character "
                                       f"{value[e.start]!r} at position {e.start}") from None
        return value
    if decl.kind == "bool":
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        if not isinstance(value, bool):
            raise WorkflowRuntimeError(f"{where}: expected true or false, got {value!r}")
        return value
    if isinstance(value, str):
        try:
            value = int(value, 0)
        except ValueError:
            raise WorkflowRuntimeError(f"{where}: expected a u32, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise WorkflowRuntimeError(f"{where}: expected a u32, got {value!r}")
    lo = decl.minimum if decl.minimum is not None else 0
    hi = decl.maximum if decl.maximum is not None else U32_MAX
    if not lo <= value <= hi:
        raise WorkflowRuntimeError(f"{where}: {value} is outside {lo}..{hi}")
    return int(value)


def bind_inputs(workflow: Workflow, inputs: dict) -> dict[str, Any]:
    unknown = sorted(set(inputs) - set(workflow.inputs))
    if unknown:
        known = ", ".join(workflow.inputs) or "none"
        raise WorkflowRuntimeError(f"workflow '{workflow.name}' has no input '{unknown[0]}' (inputs: {known})")
    values = {}
    for name, decl in workflow.inputs.items():
        if name in inputs and inputs[name] is not None:
            values[name] = coerce_input(name, decl, inputs[name])
        elif decl.value is not None:
            values[name] = decl.value
        else:
            raise WorkflowRuntimeError(f"workflow '{workflow.name}': input '{name}' is required")
    return values


@dataclass
class WorkflowRun:
    outputs: dict[str, Any]  # values (TensorArg, str, int, ...)
    context: WorkflowExecutionContext
    loops: list[LoopResult] = field(default_factory=list)  # one per while_batched run, in order

    def python_outputs(self) -> dict[str, Any]:
        """Outputs as plain Python data (tensors as lists), e.g. for JSON."""
        return {name: to_python(v) for name, v in self.outputs.items()}


def run_workflow(workflow: Union[Workflow, str, dict], device: Union[Device, str] = "cpu", *,
                 inputs: Optional[dict] = None, on_token: Optional[Callable[[int], None]] = None,
                 on_window: Optional[Callable] = None,
                 mode: Optional[str] = None,
                 on_text: Optional[Callable[[str], None]] = None,
                 cancellation: Optional[Cancellation] = None,
                 sampler: Optional[str] = None,
                 cpu_sampler: Optional[Callable] = None,
                 feed: Optional[TokenFeed] = None) -> WorkflowRun:
    """Loads (if needed) and runs a workflow. The returned run's context keeps the channels
    (`run.context.channels`); close it (`run.context.close()`) when the device was opened
    here by name. `mode` (windowed / throughput / interactive) overrides the loops' mode;
    `run.loops` holds each loop's LoopResult. A loop streaming into a byte channel (text
    detokenized on the device) hands text pieces to `on_text` instead of tokens to
    `on_token`; give one of the two. `cancellation.cancel()` (from any thread) stops the run's
    decode steps within one step on the device (cancellation.py); the run then completes its
    remaining steps with what was generated, and its loop reports stop flag CANCELLED. An
    exception or Ctrl-C inside the run cancels it on the device the same way before the error
    propagates. `sampler` ("device" / "cpu") overrides the decode steps' sampler: "cpu" draws
    every token on the CPU inside the running command buffer (host_sampler.py) with
    `cpu_sampler(counts, position) -> token`, by default the device's own draw. `feed`: tokens
    pushed into it (any thread, feeding.py) are taken by the next decode steps in order, in
    place of sampling."""
    if not isinstance(workflow, Workflow):
        workflow = load_workflow(workflow)
    # The run's mode is checked here, before any device work; a loop's own mode was checked
    # when the workflow was loaded (its Arg choices).
    if sampler is not None and sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    if cpu_sampler is not None and not callable(cpu_sampler):
        raise TypeError(f"cpu_sampler must be a callable (counts, position) -> token, got "
                        f"{type(cpu_sampler).__name__}")
    if cpu_sampler is not None and sampler is None:
        sampler = "cpu"  # a CPU sampler given is a CPU-sampled run
    options = {"mode": check_mode(mode) if mode is not None else None, "sampler": sampler}
    ctx = WorkflowExecutionContext(device, on_token=on_token, on_window=on_window,
                                   on_text=on_text, cancellation=cancellation,
                                   cpu_sampler=cpu_sampler, feed=feed)
    try:
        ctx.run_options = options
        ctx.values.update(bind_inputs(workflow, inputs or {}))
        ctx.values.update({name: decl.value for name, decl in workflow.values.items()})
        loops = run_steps(ctx, workflow.steps, options)
        ctx.synchronize()
        ctx.check_host_sampler()
    except BaseException:
        try:
            ctx.stop_device()
            ctx.close()
        except Exception:  # the original error is the one to report
            pass
        raise
    return WorkflowRun(outputs={name: ctx.values[name] for name in workflow.outputs},
                       context=ctx, loops=loops)


__all__ = ["TensorArg", "ValueType", "bind_args", "run_step", "run_steps", "run_workflow", "WorkflowRun"]
