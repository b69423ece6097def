"""The JSON Schema (draft 2020-12) of workflow files, generated from the op registry.

jsonschema checks the structure (known ops, required/extra/mistyped arguments, literal
ranges); loader.py then checks what a schema cannot (names defined before use, value kinds).
"""

from __future__ import annotations

from .registry import Arg, OpSpec
from .values import U32_MAX

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
INPUT_KINDS = ("u32", "bool", "str")

_NAME = {"type": "string", "pattern": NAME_PATTERN}
_LITERAL = {"u32": {"type": "integer", "minimum": 0, "maximum": U32_MAX},
            "bool": {"type": "boolean"}, "str": {"type": "string"}}


def arg_schema(arg: Arg) -> dict:
    alternatives = []
    if "u32" in arg.kinds:
        alternatives.append({"type": "integer", "minimum": arg.minimum, "maximum": arg.maximum})
    if "bool" in arg.kinds:
        alternatives.append({"type": "boolean"})
    if "shape" in arg.kinds:
        alternatives.append({"type": "array", "minItems": 1, "maxItems": 4,
                             "items": {"type": "integer", "minimum": 1, "maximum": 1 << 28}})
    if "choice" in arg.kinds:
        alternatives.append({"enum": list(arg.choices)})
    if arg.takes_names:
        alternatives.append(_NAME)
    return alternatives[0] if len(alternatives) == 1 else {"anyOf": alternatives}


def step_schema(spec: OpSpec) -> dict:
    properties = {"op": {"const": spec.name}, "comment": {"type": "string"}}
    required = ["op"]
    for name, arg in spec.args.items():
        properties[name] = arg_schema(arg)
        if arg.required:
            required.append(name)
    if spec.output is not None:
        properties["out"] = _NAME
        if spec.output_required:
            required.append("out")
    if spec.has_body:
        properties["body"] = {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/step"}}
        required.append("body")
    return {"properties": properties, "required": required, "additionalProperties": False}


def _declaration(value_key: str, required_value: bool) -> dict:
    """An entry of `inputs` (value_key 'default') or `values` (value_key 'value')."""
    properties = {"kind": {"enum": list(INPUT_KINDS)}, value_key: {},
                  "description": {"type": "string"}}
    if value_key == "default":
        properties["minimum"] = {"type": "integer", "minimum": 0, "maximum": U32_MAX}
        properties["maximum"] = {"type": "integer", "minimum": 0, "maximum": U32_MAX}
    schema = {
        "type": "object",
        "required": ["kind", value_key] if required_value else ["kind"],
        "additionalProperties": False,
        "properties": properties,
        "allOf": [
            {"if": {"properties": {"kind": {"const": kind}}, "required": ["kind"]},
             "then": {"properties": {value_key: literal}}}
            for kind, literal in _LITERAL.items()
        ],
    }
    return schema


def workflow_schema(registry: dict[str, OpSpec]) -> dict:
    step = {
        "type": "object",
        "required": ["op"],
        "properties": {"op": {"enum": sorted(registry)}},
        "allOf": [
            {"if": {"properties": {"op": {"const": name}}, "required": ["op"]},
             "then": step_schema(spec)}
            for name, spec in sorted(registry.items())
        ],
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["steps"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string"},
            "description": {"type": "string"},
            "inputs": {"type": "object", "propertyNames": _NAME,
                       "additionalProperties": _declaration("default", False)},
            "values": {"type": "object", "propertyNames": _NAME,
                       "additionalProperties": _declaration("value", True)},
            "steps": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/step"}},
            "outputs": {"type": "array", "uniqueItems": True, "items": _NAME},
            # Opt-in for overshooting loops in multi-turn workflows (loader._check_overshoot).
            "allow_multi_turn_overshoot": {"type": "boolean"},
        },
        "$defs": {"step": step},
    }
