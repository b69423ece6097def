"""The command line: `python -m foundry_channels` / `foundry-channels`.

    run WORKFLOW.json   run any workflow file and print its outputs (--json for machines)
    demo                the text-generation sample, printed as it is generated
    stream              a plain channel stream: items as they arrive, then a summary
    selftest            check channels on a device (the Mac checklist of docs/metal.md)
    backends            which backends can run here, and why the others cannot
    denoise             streaming previews from an iterative device loop, written as PNGs

Exit codes: 0 done, 1 the run failed, 2 bad arguments or an invalid workflow (one line on
stderr), 130 interrupted (Ctrl-C at any point: one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from typing import Optional, Sequence

from . import _interrupt
from ._cli_args import int_in

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
PROG = "foundry-channels"
U32_MAX = 0xFFFFFFFF
DEVICE_PATTERN = re.compile(r"^(cpu|metal|cuda(:\d+)?)$")


class UsageError(Exception):
    """Bad input from the command line: reported on one line with exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage dump) and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


_u32 = int_in(0, U32_MAX)
_positive = int_in(1, U32_MAX)


def _device(text: str) -> str:
    if not DEVICE_PATTERN.match(text):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda, cuda:N or metal, got {text!r}")
    return text


def _assignment(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def _add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", type=_device, default="cpu", metavar="cpu|cuda|metal",
                   help="backend to run on (default: cpu; cuda:N picks a GPU)")


def _add_generation(p: argparse.ArgumentParser) -> None:
    prompt = p.add_mutually_exclusive_group()
    prompt.add_argument("--prompt", help="prompt text (workflow input 'prompt')")
    prompt.add_argument("--prompt-file", metavar="PATH",
                        help="read the prompt from a UTF-8 file (for prompts too long for a "
                             "command line)")
    p.add_argument("--max-tokens", type=_positive, metavar="N",
                   help="loop bound (workflow input 'max_tokens')")
    p.add_argument("--window", type=_positive, metavar="W",
                   help="decode steps per command buffer (workflow input 'window')")
    p.add_argument("--seed", type=_u32, metavar="S", help="sampling seed (workflow input 'seed')")


def _add_mode(p: argparse.ArgumentParser, default: Optional[str]) -> None:
    from .workflow.loop_config import MODES

    p.add_argument("--mode", choices=MODES, default=default,
                   help="token delivery: throughput (drain the channel while large windows run "
                        "back to back), interactive (drain; windows grow 1, 2, 4, ... for a fast "
                        "first token) or windowed (tokens per completed window); "
                        + ("default: the workflow's own" if default is None else f"default: {default}"))


def _add_detokenize(p: argparse.ArgumentParser) -> None:
    p.add_argument("--detokenize", choices=("cpu", "device"), default="cpu",
                   help="cpu (default): tokens come back as u32 ids; device: the workflow's "
                        "byte channel carries text detokenized on the device, printed as it "
                        "arrives (the CPU runs no detokenizer)")


def _add_sampler(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sampler", choices=("device", "cpu"), default=None,
                   help="device: the decode steps sample on the device; cpu: each token is "
                        "drawn on the CPU inside the running command buffer (the distribution "
                        "goes out through a record channel, the token comes back through a "
                        "host-to-device channel; same tokens); default: the workflow's own")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(prog=PROG,
                     description="GPU<->CPU stream channels: workflows, demos and checks.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    run = sub.add_parser("run", help="run a workflow file and print its outputs",
                         description="Run any workflow JSON file and print its outputs.")
    run.add_argument("workflow", metavar="WORKFLOW.json", help="the workflow file")
    _add_device(run)
    _add_generation(run)
    _add_mode(run, None)
    _add_detokenize(run)
    _add_sampler(run)
    run.add_argument("--input", action="append", type=_assignment, default=[], metavar="NAME=VALUE",
                     help="set any workflow input (repeatable)")
    run.add_argument("--json", action="store_true", help="print one JSON object (for machines)")
    run.set_defaults(handler=cmd_run)

    demo = sub.add_parser("demo", help="generate text with the sample workflow, live",
                          description="Run the text-generation sample and print the text as "
                                      "it is produced, with a live status line.")
    _add_device(demo)
    _add_generation(demo)
    _add_mode(demo, "interactive")
    _add_detokenize(demo)
    _add_sampler(demo)
    demo.add_argument("--no-status", action="store_true", help="no live status line")
    demo.set_defaults(handler=cmd_demo)

    stream = sub.add_parser("stream", help="a plain channel stream with a summary",
                            description="Push a sequence of items on the device and drain "
                                        "them on the CPU while it runs; print them as they "
                                        "arrive and a summary (items, dropped, items/s).")
    _add_device(stream)
    stream.add_argument("--items", type=_positive, default=1000, metavar="N",
                        help="items to push (default 1000)")
    stream.add_argument("--capacity", type=_positive, metavar="C",
                        help="ring capacity, a power of two (default: the smallest that holds "
                             "every item, so nothing is dropped; a smaller one shows "
                             "drop-oldest when the device pushes faster than the CPU reads)")
    stream.set_defaults(handler=cmd_stream)

    selftest = sub.add_parser("selftest", help="check channels on a device (run it on a new Mac)",
                              description="Check, on one screen, that channels work on a device: "
                                          "the Metal source compiles (metal), items are visible "
                                          "while a kernel runs, no torn slot in a lapping stress "
                                          "with each slot protocol, command buffers stay below "
                                          "the GPU watchdog; picks the slot protocol that passed. "
                                          "Exit code 0 when it passed.")
    _add_device(selftest)
    selftest.add_argument("--json", action="store_true", help="print one JSON object")
    selftest.set_defaults(handler=cmd_selftest)

    backends = sub.add_parser("backends", help="list backends and whether they can run here",
                              description="List the backends and why any cannot run here.")
    backends.set_defaults(handler=cmd_backends)

    from .samples import denoise_cli  # the previews sample: its own module

    denoise_cli.add_command(sub, _add_device)
    return parser


# ---- helpers --------------------------------------------------------------------------------


def _open_device(spec: str):
    import foundry_channels as fc

    try:
        return fc.Device(spec)
    except fc.BackendUnavailableError as e:
        raise UsageError(f"--device {spec}: {e}") from None


def _read_prompt(path: str) -> str:
    from .workflow.loader import decode_utf8

    try:
        with open(path, "rb") as f:
            return decode_utf8(f.read())
    except OSError as e:
        raise UsageError(f"--prompt-file {path}: {e.strerror}") from None
    except ValueError as e:
        raise UsageError(f"--prompt-file {path}: {e}") from None


def _generation_inputs(args, workflow) -> dict:
    inputs = dict(getattr(args, "input", []))
    for flag, name in (("prompt", "prompt"), ("prompt_file", "prompt"),
                       ("max_tokens", "max_tokens"), ("window", "window"), ("seed", "seed")):
        value = getattr(args, flag)
        if value is None:
            continue
        if name not in workflow.inputs:
            raise UsageError(f"--{flag.replace('_', '-')}: workflow '{workflow.name}' has no "
                             f"input '{name}'")
        inputs[name] = _read_prompt(value) if flag == "prompt_file" else value
    return inputs


def _load(path: str):
    from .workflow import WorkflowValidationError, load_workflow

    try:
        return load_workflow(path)
    except WorkflowValidationError as e:
        lines = str(e).splitlines()
        more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
        raise UsageError(lines[0] + more) from None


def _check_inputs(workflow, inputs) -> None:
    """Bad input values are usage errors, found before anything runs."""
    from .workflow import WorkflowRuntimeError
    from .workflow.executor import bind_inputs

    try:
        bind_inputs(workflow, inputs)
    except WorkflowRuntimeError as e:
        raise UsageError(str(e)) from None


def _run(workflow, device, inputs, **callbacks):
    from .workflow import run_workflow

    _check_inputs(workflow, inputs)
    return run_workflow(workflow, device, inputs=inputs, **callbacks)


# ---- commands -------------------------------------------------------------------------------


def _text_delivery(args, workflow) -> None:
    """--detokenize device needs a loop streaming into a byte channel, drained while it runs."""
    from .workflow.definitions import text_streams
    from .workflow.loop_config import STREAMING_MODES

    if args.detokenize != "device":
        return
    if not text_streams(workflow.steps):
        raise UsageError(f"--detokenize device: workflow '{workflow.name}' streams no text (no "
                         "while_batched loop streams into a byte channel: stream_init with "
                         "\"bytes\": true, filled by detok_push)")
    if args.mode is not None and args.mode not in STREAMING_MODES:
        raise UsageError(f"--detokenize device: text arrives while the device runs: use --mode "
                         f"{' or '.join(STREAMING_MODES)}, not {args.mode}")


def cmd_run(args) -> int:
    from .lm import stop_reason

    workflow = _load(args.workflow)
    inputs = _generation_inputs(args, workflow)
    _text_delivery(args, workflow)
    pieces: list[str] = []

    def on_text(piece: str) -> None:  # text detokenized on the device, as it arrives
        pieces.append(piece)
        if not args.json:
            sys.stdout.write(piece)
            sys.stdout.flush()

    callbacks = {"on_text": on_text} if args.detokenize == "device" else {}
    device = _open_device(args.device)
    try:
        start = time.perf_counter()
        run = _run(workflow, device, inputs, mode=args.mode, sampler=args.sampler, **callbacks)
        elapsed = time.perf_counter() - start
        outputs = run.python_outputs()
        loops = [{"steps": r.steps, "windows": r.windows, "replays": r.replays,
                  "tokens": r.tokens.numel if r.tokens is not None else r.delivered,
                  "stop_flag": r.stop_flag, "stop_reason": stop_reason(r.stop_flag),
                  "mode": r.mode, "delivered": r.delivered,
                  "first_token_s": r.first_token_s} for r in run.loops]
        run.context.close()
    finally:
        device.close()
    if args.json:
        text = {"text": "".join(pieces)} if callbacks else {}
        print(json.dumps({"workflow": workflow.name, "backend": args.device, "outputs": outputs,
                          "loops": loops, "seconds": round(elapsed, 6), **text}))
    else:
        if callbacks:
            print()  # ends the streamed text
        for name, value in outputs.items():
            print(f"{name}: {value}")
        for i, loop in enumerate(loops, 1):  # why generation ended, e.g. a prompt too long
            print(f"(loop {i}: {loop['tokens']} tokens in {loop['steps']} steps, stopped by "
                  f"{loop['stop_reason']})", file=sys.stderr)
        print(f"({workflow.name} on {args.device} in {elapsed:.3f} s)", file=sys.stderr)
    return 0


def cmd_demo(args) -> int:
    from ._live_text import LiveText
    from .lm import StreamingDetokenizer, stop_reason
    from .workflow import load_workflow, sample_path

    # --detokenize device: the BPE sample, whose text is detokenized on the device
    sample = "text_generation_stream_text" if args.detokenize == "device" else \
        "text_generation_stream_u32"
    workflow = load_workflow(sample_path(sample))
    inputs = _generation_inputs(args, workflow)
    _text_delivery(args, workflow)
    prompt = inputs.get("prompt", workflow.inputs["prompt"].value)
    window = inputs.get("window", workflow.inputs["window"].value)
    _check_inputs(workflow, inputs)  # before anything is printed
    device = _open_device(args.device)
    live = LiveText(sys.stdout, live=not args.no_status and sys.stdout.isatty())
    detok = StreamingDetokenizer()
    state = {"tokens": 0, "elapsed": 0.0, "status_at": 0.0, "start": None}

    def status_line() -> str:
        rate = state["tokens"] / state["elapsed"] if state["elapsed"] > 0 else 0.0
        return (f"[{state['tokens']} tokens | {rate:,.0f} tok/s | {args.mode} | window {window} | "
                f"{device.backend} | {state['elapsed']:.2f} s]")

    def on_token(token: int) -> None:  # each token as soon as the CPU has it
        if state["start"] is None:  # the live rate counts from the first token
            state["start"] = time.perf_counter()
        state["tokens"] += 1
        state["elapsed"] = now = time.perf_counter() - state["start"]
        text = detok.feed([token])
        if state["tokens"] == 1 or now - state["status_at"] > 0.05:  # at most 20 times a second
            state["status_at"] = now
            live.write(text, status_line())
        else:
            live.write(text)

    def on_text(piece: str) -> None:  # text detokenized on the device; counted per window
        live.write(piece, status_line())

    def on_window(report) -> None:
        if state["start"] is None:
            state["start"] = time.perf_counter()
        state["tokens"] = report.tokens_total
        state["elapsed"] = time.perf_counter() - state["start"]

    delivery = {"on_text": on_text, "on_window": on_window} if args.detokenize == "device" \
        else {"on_token": on_token}
    live.write(prompt)  # through LiveText, which tracks the cursor column
    try:
        run = _run(workflow, device, inputs, mode=args.mode, sampler=args.sampler, **delivery)
        loop = run.loops[-1] if run.loops else None
        run.context.close()
    except KeyboardInterrupt:
        live.finish(detok.finish())
        print(f"interrupted after {state['tokens']} tokens", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        device.close()
    live.finish(detok.finish())
    rate = state["tokens"] / state["elapsed"] if state["elapsed"] > 0 else 0.0
    ttft = ""
    if loop is not None and loop.reports:  # the loop's own clock: model loading excluded
        state["elapsed"] = loop.reports[-1].elapsed_s
        rate = state["tokens"] / state["elapsed"] if state["elapsed"] > 0 else 0.0
    if loop is not None and loop.first_token_s is not None:
        ttft = f", first token after {loop.first_token_s * 1e3:.2f} ms"
    print(f"\n{state['tokens']} tokens in {state['elapsed']:.3f} s ({rate:,.0f} tokens/s){ttft}, "
          f"mode {args.mode}, window {window}, backend {device.backend}, "
          f"sampler {args.sampler or 'device'}, stopped by {stop_reason(loop.stop_flag if loop is not None else 0)}")
    return 0


def cmd_stream(args) -> int:
    import numpy as np

    import foundry_channels as fc

    from .limits import capacity_for, capacity_problem

    # By default the ring holds the whole run: the stream is lossless however far the CPU
    # falls behind. A smaller --capacity shows drop-oldest (counted in the summary).
    capacity = args.capacity or capacity_for(args.items)
    problem = capacity_problem(capacity)
    if problem:
        raise UsageError(f"--capacity: {problem}")
    device = _open_device(args.device)
    try:
        channel = fc.ChannelU32(device, capacity)
        cb = device.new_queue().command_buffer()
        cb.channel_init(channel)
        cb.channel_push_sequence(channel, 0, args.items)  # one kernel, each item published
        cb.channel_close(channel)
        reader = channel.reader()
        batch = np.empty(min(capacity, 1 << 16), dtype=np.uint32)
        start = time.perf_counter()
        cb.commit()  # returns at once: the device pushes while we drain below
        received, in_order, last = 0, True, -1
        while True:
            n = reader.drain_into(batch)
            if n:
                items = batch[:n].astype(np.int64)
                # Item i carries the value i, so order means strictly increasing values; the
                # gaps are the items the producer overwrote first (counted in reader.dropped).
                in_order &= bool(items[0] > last and np.all(np.diff(items) > 0))
                last = int(items[-1])
                received += n
                _print_batch(items)
            elif reader.wait(timeout=10.0) != "ready":
                if reader.exhausted:
                    break
                if cb.status == "error":
                    raise fc.CommandBufferError(cb.error or "command buffer failed")
        elapsed = time.perf_counter() - start
        cb.wait_until_completed(timeout=10.0)
        print(f"items {received}, dropped {reader.dropped}, {received / elapsed:,.0f} items/s, "
              f"in order: {'yes' if in_order else 'NO'}, capacity {capacity}, "
              f"backend {device.backend} ({device.name})")
    finally:
        device.close()
    return 0 if in_order and received + reader.dropped == args.items else EXIT_FAILED


def _print_batch(items) -> None:
    if len(items) <= 16:
        print("received", " ".join(map(str, items.tolist())))
    else:
        head = " ".join(map(str, items[:6].tolist()))
        print(f"received {len(items)} items: {head} ... {int(items[-1])}")


def cmd_selftest(args) -> int:
    from . import selftest

    _open_device(args.device).close()  # an unavailable backend: one line, exit code 2
    report = selftest.run(args.device)
    print(json.dumps(report, indent=2) if args.json else selftest.format_report(report))
    return 0 if report["passed"] else EXIT_FAILED


def cmd_backends(args) -> int:
    import foundry_channels as fc

    for name, reason in fc.backend_status().items():
        print(f"{name:6} {'available' if not reason else 'not available: ' + reason}")
    return 0


def _import_commands() -> None:
    """What the commands import, imported while Ctrl-C is deferred (_interrupt)."""
    # The workflow package imports its ops, loader and runners itself.
    from . import _live_text, limits, lm, workflow  # noqa: F401


def main(argv: Optional[Sequence[str]] = None) -> int:
    _interrupt.defer()  # __main__ did already; this covers a direct call
    try:
        try:  # the imports of the first few hundred ms: Ctrl-C only recorded (_interrupt)
            parser = build_parser()
            _import_commands()
        finally:
            _interrupt.resume()  # raises KeyboardInterrupt for a Ctrl-C recorded meanwhile
        return _run_command(parser.parse_args(argv))
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _run_command(args) -> int:
    try:
        return args.handler(args)
    except UsageError as e:
        print(f"{PROG} {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as e:  # a failed run: one line, not a traceback
        print(f"{PROG} {args.command}: failed: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_FAILED
