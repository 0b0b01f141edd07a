"""The JSON Schema of the spec language, generated from the op table, and validation against it.

Two schemas come from one source: the editor schema (``cnnspec schema``, shipped as
``spec.schema.json``) describes every op's arguments for completion; the checker validates the
document shape with jsonschema and each layer's arguments against that op's own sub-schema, so
an error says "conv2d: 'kernel' must be ..." rather than "not valid under any of the schemas"
(the words come from ``schema_errors``, a table of one message function per keyword).
Valid input is first answered by the same schemas compiled to predicates (``fastschema``), so a
valid spec is checked without importing jsonschema at all.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from .errors import Diagnostic
from .ops import OPS, POS_INT
from .schema_errors import explain

SCHEMA_FILE = Path(__file__).with_name("spec.schema.json")
SCHEMA_ID = "https://cnnspec.dev/schema/spec-v1.json"
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.]*$"
PARAM_REF = {"type": "string", "pattern": r"^\$[A-Za-z_][A-Za-z0-9_]*$",
             "description": "a block parameter, replaced at expansion"}
RESERVED = ("name", "in", "expect", "when", "repeat", "first")
SHAPE = {"type": "array", "items": POS_INT, "minItems": 1, "maxItems": 3}
MAX_LAYERS = 20_000  # a spec expands to at most this many layers (blocks and repeats included)
REPEAT_COUNT = {"type": "integer", "minimum": 1, "maximum": MAX_LAYERS}


def op_args_schema(op_name: str, allow_refs: bool = False) -> dict:
    """The schema of one op's argument mapping (not the scalar/null shorthands)."""
    op = OPS[op_name]
    props = {}
    for key, arg in op.args.items():
        s = dict(arg.schema)
        if arg.doc:
            s["description"] = arg.doc
        if not arg.required and arg.default is not None:
            s["default"] = arg.default
        props[key] = {"anyOf": [s, PARAM_REF]} if allow_refs else s
    return {"type": "object", "properties": props, "additionalProperties": False,
            "required": [k for k, a in op.args.items() if a.required]}


def _op_value_schema(op_name: str) -> dict:
    op = OPS[op_name]
    options = [{"type": "null"}, op_args_schema(op_name, allow_refs=True)]
    if op.primary:
        options.insert(1, {"anyOf": [op.args[op.primary].schema, PARAM_REF]})
    return {"description": op.doc, "anyOf": options}


def layer_item_schema(block_names=()) -> dict:
    ref_or = lambda s: {"anyOf": [s, PARAM_REF]}  # noqa: E731
    props = {
        "name": ref_or({"type": "string", "pattern": NAME_PATTERN}),
        "in": ref_or({"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]}),
        "expect": ref_or(SHAPE),
        "when": {"type": ["string", "boolean"], "description": "'$param' or 'not $param': keep the layer only then"},
        "repeat": {"anyOf": [REPEAT_COUNT, {"type": "object", "properties": {"times": REPEAT_COUNT, "start": {"type": "integer", "minimum": 0}},
                                        "required": ["times"], "additionalProperties": False}],
                   "description": "a block call repeated; copies are named <name>.<start + i>"},
        "first": {"type": "object", "description": "arguments that override the call's for the first copy"},
    }
    for op in OPS:
        props[op] = _op_value_schema(op)
    return {
        "anyOf": [
            {"type": "string", "enum": sorted(OPS), "description": "an op with default arguments"},
            {"type": "object", "properties": props, "minProperties": 1,
             "additionalProperties": {"type": ["object", "null"], "description": "a call of a block in 'blocks'"}},
        ]
    }


def editor_schema() -> dict:
    """The complete schema, for editors (yaml-language-server) and ``cnnspec schema``."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "cnnspec spec, language version 1",
        "type": "object",
        "required": ["cnnspec", "name", "input", "layers"],
        "additionalProperties": False,
        "properties": {
            "cnnspec": {"const": 1, "description": "the language version"},
            "name": {"type": "string", "minLength": 1, "maxLength": 200},
            "description": {"type": "string"},
            "input": {"type": "array", "items": POS_INT, "minItems": 3, "maxItems": 3,
                      "description": "[channels, height, width], channels-first whatever the backend"},
            "classes": {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1,
                        "maxItems": 100000, "uniqueItems": True},
            "blocks": {"type": "object", "propertyNames": {"pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"},
                       "additionalProperties": {"$ref": "#/$defs/block"}},
            "layers": {"$ref": "#/$defs/layers"},
        },
        "$defs": {
            "layers": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/layer"}},
            "layer": layer_item_schema(),
            "block": {
                "type": "object", "required": ["layers"], "additionalProperties": False,
                "properties": {
                    "description": {"type": "string"},
                    "params": {"type": "object", "propertyNames": {"pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"},
                               "description": "name: default; an empty default (null) makes it required"},
                    "layers": {"$ref": "#/$defs/layers"},
                },
            },
        },
    }


def document_schema() -> dict:
    """What the checker validates with jsonschema: the editor schema without layer internals."""
    schema = editor_schema()
    schema["$defs"]["layer"] = {"type": ["string", "object"]}
    return schema


@lru_cache(maxsize=None)
def _validator_class():
    from jsonschema import Draft202012Validator, validators

    def is_integer(_checker, instance):  # jsonschema alone would take 64.0 for an integer
        return isinstance(instance, int) and not isinstance(instance, bool)

    checker = Draft202012Validator.TYPE_CHECKER.redefine("integer", is_integer)
    return validators.extend(Draft202012Validator, type_checker=checker)


@lru_cache(maxsize=None)
def schema_for(kind: str) -> dict:
    """The schema the checker validates with: 'document' or 'op:<name>'."""
    return document_schema() if kind == "document" else op_args_schema(kind[3:])


@lru_cache(maxsize=None)
def validator_for(kind: str):
    """jsonschema validators, built once, and only for input that has errors to explain."""
    return _validator_class()(schema_for(kind))


@lru_cache(maxsize=None)
def is_valid_for(kind: str):
    """The same schema compiled to a yes/no predicate (see ``fastschema``): no jsonschema import."""
    from .fastschema import compile_schema

    return compile_schema(schema_for(kind))


def validate(instance, kind: str, doc, base_path=(), subject=None, rank=10) -> list[Diagnostic]:
    """Every schema error as a located diagnostic. Valid input (the common case) is answered by the
    compiled predicate; jsonschema finds and explains the errors of the rest."""
    if is_valid_for(kind)(instance):
        return []
    return explain(list(validator_for(kind).iter_errors(instance)), doc, base_path, subject, rank)


def write_schema_file(path: Path = SCHEMA_FILE) -> None:
    path.write_text(json.dumps(editor_schema(), indent=2) + "\n", encoding="utf-8")
