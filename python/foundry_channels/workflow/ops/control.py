"""while_batched: the decode loop (see runner.py)."""

from __future__ import annotations

from ..definitions import pushes_into
from ..executor import run_steps
from ..loop_config import MAX_WINDOW, MODES, STREAMING_MODES
from ..overshoot import overshooting
from ..registry import Arg, register_op
from ..runner import WindowedLoop
from ..values import ValueType

U32_1 = dict(dtype="u32", shape=(1,))


def _check(step: dict) -> list[tuple[str, str]]:
    problems = []
    if "out" in step and "collect" not in step:
        problems.append((".out", "the loop's output is the collected tokens: add 'collect' "
                         "(the u32[1] tensor each step writes its token to)"))
    if step.get("mode") in STREAMING_MODES:
        for needed, why in (("stream", "the channel to drain"), ("stop", "the device stop flag")):
            if needed not in step:
                problems.append((".mode", f"mode '{step['mode']}' needs '{needed}' ({why})"))
    return problems


@register_op(
    "while_batched",
    args={"max_steps": Arg(("u32",), doc="the loop bound: at most this many steps"),
          "window": Arg(("u32",), required=False, default=1, minimum=1, maximum=MAX_WINDOW,
                        doc="steps encoded per command buffer"),
          "stop": Arg(("tensor",), required=False, **U32_1,
                      doc="device stop flag: the loop ends after the window that set it"),
          "collect": Arg(("tensor",), required=False, **U32_1,
                         doc="the token each step wrote; collected on the device for "
                             "on_token and the loop's output"),
          "mode": Arg(("choice",), required=False, default="windowed", choices=MODES,
                      run_option=True,  # run_workflow(mode=...) / --mode replaces it
                      doc="token delivery: 'windowed' (on_token per completed window), "
                          "'throughput' (drain 'stream' while large windows run back to back) "
                          "or 'interactive' (drain 'stream'; windows grow 1, 2, 4, ...)"),
          "stream": Arg(("channel",), required=False,
                        doc="the channel the body writes tokens to (a byte channel: their text, "
                            "delivered to on_text); drained in streaming modes"),
          "overshoot": Arg(("bool",), required=False, default=False,
                           doc="opt-in: decode steps keep computing past the stop (pushes stay "
                               "predicated) and the state is rolled back after the loop")},
    output=ValueType("tensor", "u32"),
    output_required=False,
    category="control",
    has_body=True,
    check=_check,
)
def while_batched(ctx, args, step):
    """Runs the body up to max_steps times, `window` steps per command buffer; returns the
    loop's LoopResult, whose collected tokens (u32[n], when `collect` is given) are the value
    `out` names (executor.run_step). `mode` is already resolved: the run's mode when one was
    given, else the step's (Arg.run_option). WindowedLoop checks window and mode."""
    stream = args["stream"]
    # Items the body pushes into the stream per step: one per push, or what the op declares
    # (detok_push: its vocabulary's longest token).
    pushes = sum(s.spec.pushes(ctx, s) if s.spec.pushes else 1
                 for s in pushes_into(step.body, step.args["stream"])) if stream is not None else 0
    loop = WindowedLoop(ctx, lambda: run_steps(ctx, step.body, ctx.run_options), max_steps=args["max_steps"],
                        window=args["window"], stop=args["stop"], collect=args["collect"],
                        mode=args["mode"], stream=stream, pushes_per_step=pushes)
    with overshooting(ctx, args["overshoot"]):
        return loop.run()
