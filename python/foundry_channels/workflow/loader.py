"""Loading a workflow: parse (bad JSON reports line and column), validate the structure with
JSON Schema, then check names and value kinds step by step. Everything is checked before
anything runs; every problem is reported with its step path, e.g. `steps[3].body[1].value`.
"""

from __future__ import annotations

import json
import os
from typing import Any, Optional, Union

import jsonschema

from .definitions import Declaration, Step, Workflow, pushes_into
from .errors import WorkflowValidationError
from .loop_config import COLLECT_NEEDS_STOP
from .registry import OpSpec, all_ops
from .schema import workflow_schema
from .values import ValueType

PathPart = Union[str, int]

# A workflow nests about eight levels (steps, a loop body, a shape); a document nested far
# deeper is a mistake, and would exhaust Python's recursion in the validator.
MAX_NESTING = 32


def format_path(parts: list[PathPart]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


# ---- parsing -------------------------------------------------------------------------------


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def parse_json(text: str, source: Optional[str] = None) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_reject_duplicates)
    except json.JSONDecodeError as e:
        where = f"line {e.lineno}, column {e.colno}"
        raise WorkflowValidationError([("", f"invalid JSON at {where}: {e.msg}")], source) from None
    except _DuplicateKey as e:
        raise WorkflowValidationError(
            [("", f"invalid JSON: key {e.key!r} appears twice in one object")], source) from None
    except RecursionError:
        raise WorkflowValidationError(
            [("", f"invalid workflow: nested more than {MAX_NESTING} levels deep")], source) from None


def decode_utf8(data: bytes) -> str:
    """`data` as UTF-8 text; ValueError naming the line and column of the first bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - data.rfind(b"\n", 0, e.start)
        raise ValueError(f"not UTF-8 text: byte 0x{data[e.start]:02x} at line {line}, "
                         f"column {column}") from None


def _nested_too_deep(doc: Any) -> Optional[list[PathPart]]:
    """The path of the first value nested more than MAX_NESTING levels deep, or None
    (iterative: the check must not recurse itself)."""
    stack: list[tuple[Any, list[PathPart]]] = [(doc, [])]
    while stack:
        node, path = stack.pop()
        if len(path) > MAX_NESTING:
            return path
        if isinstance(node, dict):
            stack.extend((value, path + [key]) for key, value in node.items())
        elif isinstance(node, list):
            stack.extend((value, path + [i]) for i, value in enumerate(node))
    return None


# ---- structure (JSON Schema) ----------------------------------------------------------------


def _step_at(doc: Any, path: list[PathPart]) -> tuple[Optional[dict], list[PathPart]]:
    """The innermost step on `path` and the path of that step."""
    node, step, step_path = doc, None, []
    for i, part in enumerate(path):
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            break
        if isinstance(part, int) and i > 0 and path[i - 1] in ("steps", "body") and isinstance(node, dict):
            step, step_path = node, list(path[: i + 1])
    return step, step_path


def _schema_message(error: jsonschema.ValidationError, doc: Any,
                    registry: dict[str, OpSpec]) -> list[tuple[str, str]]:
    path = list(error.absolute_path)
    step, step_path = _step_at(doc, path)
    op = step.get("op") if isinstance(step, dict) else None
    spec = registry.get(op) if isinstance(op, str) else None
    label = f" ({op})" if spec else ""
    here = format_path(path)

    if error.validator == "required" and spec is not None and path == step_path:
        missing = error.message.split("'")[1]
        if missing == "max_steps" and spec.has_body:
            return [(here, f"a loop needs a bound: missing argument 'max_steps'{label}")]
        if missing == "out":
            return [(here, f"op '{op}' produces a value: name it with \"out\"")]
        return [(here, f"missing argument '{missing}'{label}")]
    if error.validator == "additionalProperties" and spec is not None and path == step_path:
        allowed = set(error.schema.get("properties", {}))
        known = ", ".join(a for a in spec.args) or "none"
        found = []
        for extra in sorted(set(error.instance) - allowed):
            if extra == "out":
                why = f"op '{op}' produces no value to name"
            elif extra == "body":
                why = f"op '{op}' has no body"
            else:
                why = f"unexpected argument '{extra}' for op '{op}' (its arguments: {known})"
            found.append((format_path(path + [extra]), why))
        return found
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = ", ".join(error.schema.get("properties", {}))
        return [(format_path(path + [extra]), f"unexpected key '{extra}' (allowed here: {allowed})")
                for extra in sorted(set(error.instance) - set(error.schema.get("properties", {})))]
    if error.validator == "enum" and path and path[-1] == "op":
        return [(here, f"unknown op {error.instance!r} (known ops: {', '.join(sorted(registry))})")]
    if spec is not None and len(path) > len(step_path) and path[len(step_path)] in spec.args:
        name = path[len(step_path)]  # the error may be inside the argument (a shape's item)
        arg, value = spec.args[name], step[name]
        where = format_path(step_path + [name])
        return [(where + label, f"expected {arg.describe()}, got {json.dumps(value)}")]
    return [(here, error.message)]


def _is_integer(checker, instance: Any) -> bool:
    # JSON Schema counts 65536.0 as an integer; the ops take Python ints, so a literal with a
    # fraction or exponent part is refused here rather than failing when the step runs.
    return isinstance(instance, int) and not isinstance(instance, bool)


_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer))


def _check_structure(doc: Any, registry: dict[str, OpSpec]) -> list[tuple[str, str]]:
    validator = _Validator(workflow_schema(registry))
    problems: list[tuple[str, str]] = []
    for error in validator.iter_errors(doc):
        for problem in _schema_message(error, doc, registry):
            if problem not in problems:
                problems.append(problem)
    return problems


# ---- names and kinds ------------------------------------------------------------------------


class _Checker:
    def __init__(self, doc: dict, registry: dict[str, OpSpec]) -> None:
        self.registry = registry
        self.problems: list[tuple[str, str]] = []
        self.symbols: dict[str, tuple[ValueType, str]] = {}  # name -> (type, where defined)
        for section in ("inputs", "values"):
            for name, decl in doc.get(section, {}).items():
                self._define(name, ValueType(decl["kind"]), f"{section}.{name}")

    def _define(self, name: str, t: ValueType, where: str) -> None:
        if name in self.symbols:
            self.problems.append((where, f"name '{name}' is already defined at {self.symbols[name][1]}"))
        else:
            self.symbols[name] = (t, where)

    def steps(self, items: list[dict], path: list[PathPart], in_body: bool) -> tuple[Step, ...]:
        return tuple(self.step(item, path + [i], in_body) for i, item in enumerate(items))

    def step(self, item: dict, path: list[PathPart], in_body: bool) -> Step:
        spec = self.registry[item["op"]]
        where = format_path(path)
        label = f"{where} ({spec.name})"
        if in_body and spec.category != "step":
            self.problems.append((label, f"op '{spec.name}' cannot run inside a while_batched body "
                                  f"(it is a {spec.category} op); the body may only hold device "
                                  "steps that encode the same work every step"))
        args = {k: v for k, v in item.items() if k in spec.args}
        for name, raw in args.items():
            self.argument(spec, spec.args[name], name, raw, f"{where}.{name} ({spec.name})")
        if spec.check:
            for suffix, message in spec.check(item):
                self.problems.append((f"{where}{suffix} ({spec.name})", message))
        if spec.check_types:
            types = {name: self.symbols[raw][0] for name, raw in args.items()
                     if isinstance(raw, str) and raw in self.symbols}
            for suffix, message in spec.check_types(types):
                self.problems.append((f"{where}{suffix} ({spec.name})", message))
        body = self.steps(item["body"], path + ["body"], True) if spec.has_body else ()
        out = item.get("out")
        if out is not None:
            self._define(out, spec.output_type(item), f"{where}.out")
        return Step(path=where, spec=spec, args=args, out=out, body=body)

    def argument(self, spec: OpSpec, arg, name: str, raw: Any, label: str) -> None:
        if not isinstance(raw, str) or not arg.takes_names or raw in getattr(arg, "choices", ()):
            return  # a literal: the schema checked it
        if raw not in self.symbols:
            known = ", ".join(sorted(self.symbols)) or "none"
            self.problems.append((label, f"undefined name '{raw}': expected {arg.describe()} "
                                  f"(names defined before this step: {known})"))
            return
        t, _ = self.symbols[raw]
        if not arg.accepts(t):
            self.problems.append((label, f"wrong value kind: '{raw}' is a {t.describe()}, but "
                                  f"'{name}' of op '{spec.name}' takes {arg.describe()}"))

    def outputs(self, names: list[str]) -> None:
        for i, name in enumerate(names):
            if name not in self.symbols:
                self.problems.append((f"outputs[{i}]", f"undefined name '{name}'"))
            elif self.symbols[name][0].kind == "channel":
                self.problems.append((f"outputs[{i}]", f"'{name}' is a channel: read it through "
                                      "ctx.channels, it cannot be an output"))


def _check_declarations(doc: dict) -> list[tuple[str, str]]:
    problems = []
    for name, decl in doc.get("inputs", {}).items():
        lo, hi, default = decl.get("minimum"), decl.get("maximum"), decl.get("default")
        if decl["kind"] != "u32" and (lo is not None or hi is not None):
            problems.append((f"inputs.{name}", "minimum/maximum apply to u32 inputs only"))
        if lo is not None and hi is not None and lo > hi:
            problems.append((f"inputs.{name}", f"minimum {lo} is greater than maximum {hi}: "
                             "no value is allowed"))
            continue
        if isinstance(default, int) and not isinstance(default, bool):
            if (lo is not None and default < lo) or (hi is not None and default > hi):
                problems.append((f"inputs.{name}.default", f"{default} is outside {lo}..{hi}"))
    return problems


def _loop_states(loop: Step) -> set[str]:
    """The model states (value names) the decode steps of a loop's body advance."""
    return {s.args["state"] for s in loop.body if "state" in s.args and s.op == "lm_decode_step"}


def _check_overshoot(doc: dict, steps: tuple[Step, ...]) -> list[tuple[str, str]]:
    """Overshoot (a loop computing past its stop and rolling back, overshoot.py) is an
    explicit opt-in: the loop needs the device stop flag, its pushes must stay predicated on
    it, and a multi-turn workflow (the state the loop advances is decoded by another loop,
    or prefilled again after it) must opt in once more with "allow_multi_turn_overshoot",
    since each later turn then depends on the rollback being exact. An overshoot given by
    name counts as on: its value is only known at run time."""
    problems: list[tuple[str, str]] = []
    allowed = doc.get("allow_multi_turn_overshoot") is True
    for index, loop in enumerate(steps):
        if loop.op != "while_batched":
            continue
        flag = loop.args.get("overshoot", False)
        if flag is False:
            continue
        where = f"{loop.path}.overshoot (while_batched)"
        if "stop" not in loop.args:
            problems.append((where, "overshoot needs the loop's device 'stop' flag: it marks "
                             "the point the state is rolled back to"))
        for body_step in loop.body:
            pushes = any("channel" in arg.kinds for arg in body_step.spec.args.values())
            if pushes and "stop" in body_step.spec.args and "stop" not in body_step.args:
                problems.append((f"{body_step.path}.stop ({body_step.op})",
                                 "in an overshooting loop every push must be predicated on "
                                 "the device stop flag: add 'stop', or tokens computed past "
                                 "EOS would reach the channel"))
        if allowed:
            continue
        states = _loop_states(loop)
        others = [f"{s.path} ({s.op})" for i, s in enumerate(steps)
                  if (s.op == "while_batched" and i != index and states & _loop_states(s))
                  or (s.op == "lm_prefill" and i > index and s.args.get("state") in states)]
        if others:
            named = " (given by name, so possibly on)" if isinstance(flag, str) else ""
            problems.append((where, f"overshoot{named} in a multi-turn workflow: the model state "
                             f"'{sorted(states)[0]}' this loop advances is also used by "
                             f"{', '.join(others)}; the turns after an overshoot depend on its "
                             "rollback being exact. Remove 'overshoot' (steps past EOS are then "
                             "predicated off), or opt in with top-level "
                             "\"allow_multi_turn_overshoot\": true"))
    return problems


def _check_loops(steps: tuple[Step, ...]) -> list[tuple[str, str]]:
    """What a loop delivers must be its own tokens, each once, none computed after the stop:
    `collect` needs the stop flag (loop_config.COLLECT_NEEDS_STOP), the body's steps use the
    loop's one stop flag, and `stream` is a channel the body pushes into, predicated on it."""
    problems: list[tuple[str, str]] = []
    for loop in steps:
        if loop.op != "while_batched":
            continue
        stop, stream = loop.args.get("stop"), loop.args.get("stream")
        if "collect" in loop.args and stop is None:
            problems.append((f"{loop.path}.collect (while_batched)", COLLECT_NEEDS_STOP))
        for step in loop.body:
            if stop is not None and step.args.get("stop", stop) != stop:
                problems.append((f"{step.path}.stop ({step.op})", f"the loop stops on '{stop}' "
                                 f"but this step uses '{step.args['stop']}': a loop has one "
                                 "stop flag, set and checked by every step of its body"))
        if stream is None:
            continue
        pushes = pushes_into(loop.body, stream)
        if not pushes:
            problems.append((f"{loop.path}.stream (while_batched)", f"the body never pushes "
                             f"into '{stream}': a streaming run would deliver none of the "
                             "loop's tokens; name the channel the body writes to"))
        for step in pushes:
            if stop is not None and "stop" not in step.args:
                problems.append((f"{step.path} ({step.op})", f"pushes into the loop's stream "
                                 f"without its stop flag: add \"stop\": \"{stop}\", or tokens "
                                 "computed after the stop reach the channel"))
    return problems


def validate_document(doc: Any, source: Optional[str] = None) -> Workflow:
    """Validates a parsed workflow document and returns the Workflow; raises
    WorkflowValidationError listing every problem."""
    registry = all_ops()
    too_deep = _nested_too_deep(doc)
    if too_deep is not None:
        raise WorkflowValidationError([(format_path(too_deep[:6]) + "...",
                                        f"nested more than {MAX_NESTING} levels deep")], source)
    problems = _check_structure(doc, registry)
    if problems:
        raise WorkflowValidationError(problems, source)
    problems = _check_declarations(doc)
    checker = _Checker(doc, registry)
    steps = checker.steps(doc["steps"], ["steps"], False)
    checker.outputs(doc.get("outputs", []))
    problems += checker.problems
    if not problems:
        problems += _check_overshoot(doc, steps) + _check_loops(steps)
    if problems:
        raise WorkflowValidationError(problems, source)

    def declarations(section: str, key: str) -> dict[str, Declaration]:
        return {name: Declaration(kind=d["kind"], value=d.get(key), minimum=d.get("minimum"),
                                  maximum=d.get("maximum"), description=d.get("description", ""))
                for name, d in doc.get(section, {}).items()}

    return Workflow(
        name=doc.get("name") or (os.path.splitext(os.path.basename(source))[0] if source else "workflow"),
        steps=steps,
        inputs=declarations("inputs", "default"),
        values=declarations("values", "value"),
        outputs=tuple(doc.get("outputs", [])),
        description=doc.get("description", ""),
        source=source,
    )


def load_workflow(source: Union[str, os.PathLike, dict]) -> Workflow:
    """A Workflow from a file path, a JSON string, or an already parsed dict."""
    if isinstance(source, dict):
        return validate_document(source)
    text_source = os.fspath(source)
    if isinstance(source, str) and text_source.lstrip().startswith("{"):
        return validate_document(parse_json(text_source), None)
    try:
        with open(text_source, "rb") as f:
            text = decode_utf8(f.read())
    except OSError as e:
        raise WorkflowValidationError([("", f"cannot read workflow: {e.strerror}")], text_source) from None
    except ValueError as e:
        raise WorkflowValidationError([("", str(e))], text_source) from None
    return validate_document(parse_json(text, text_source), text_source)
