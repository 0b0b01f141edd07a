"""The JSON Schema of the spec language, generated from the op table, and its error translation.

Two schemas come from one source: the editor schema (``cnnspec schema``, shipped as
``spec.schema.json``) describes every op's arguments for completion; the checker validates the
document shape with jsonschema and each layer's arguments against that op's own sub-schema, so
an error says "conv2d: 'kernel' must be ..." rather than "not valid under any of the schemas".
Valid input is first answered by the same schemas compiled to predicates (``fastschema``), so a
valid spec is checked without importing jsonschema at all.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from .errors import Diagnostic
from .ops import OPS, POS_INT
from .suggest import close_match, suggest  # noqa: F401  (suggest: expand imports it from here)

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


def describe(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"'{value}'" if len(value) < 40 else f"'{value[:37]}...'"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        text = json.dumps(value)
        return text if len(text) < 40 else "a list"
    return "a mapping"


def _field(path) -> str:
    for p in reversed(path):
        if isinstance(p, str):
            return p
    return "value"


_TYPE_WORDS = {"integer": "an integer", "number": "a number", "string": "a string", "boolean": "true or false",
               "array": "a list", "object": "a mapping", "null": "empty"}


def translate(error, doc, base_path=(), subject: str | None = None, rank: int = 10) -> Diagnostic:
    """A jsonschema error as a located, plain-English diagnostic ("what is wrong, then what was received")."""
    path = tuple(base_path) + tuple(error.absolute_path)
    prefix = f"{subject}: " if subject else ""
    name = _field(path)
    kw = error.validator
    value = error.instance
    location = doc.loc(path)
    if kw == "additionalProperties":
        allowed = list(error.schema.get("properties", {}))
        extras = [k for k in value if k not in allowed]
        key = extras[0] if extras else "?"
        location = doc.loc(path + (key,), key=True)
        where = f"{subject} has" if subject else "spec has"
        msg = f"{where} no argument '{key}'" if subject else f"unknown key '{key}'"
        if not subject and path:
            msg = f"unknown key '{key}' in '{_field(path)}'"
        msg += suggest(key, allowed) or (f" (it takes: {', '.join(allowed)})" if allowed else " (it takes no arguments)")
        return Diagnostic(msg, location, rank=rank)
    if kw == "required":
        missing = [k for k in error.validator_value if k not in value]
        owner = subject or ("the spec" if not path else f"'{name}'")
        return Diagnostic(f"{owner} needs '{missing[0]}'", location, rank=rank)
    if kw == "const" and path == ("cnnspec",):
        return Diagnostic(f"unsupported language version cnnspec: {describe(value)}; this cnnspec reads version 1",
                          location, rank=0)
    if kw == "type":
        types = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        want = " or ".join(_TYPE_WORDS.get(t, t) for t in types)
        return Diagnostic(f"{prefix}'{name}' must be {want}, got {describe(value)}", location, rank=rank)
    if kw in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        words = {"minimum": "at least", "exclusiveMinimum": "more than", "maximum": "at most",
                 "exclusiveMaximum": "less than"}[kw]
        return Diagnostic(f"{prefix}'{name}' must be {words} {error.validator_value}, got {describe(value)}",
                          location, rank=rank)
    if kw in ("minItems", "maxItems"):
        if name == "input" and len(path) == 1:
            return Diagnostic(f"'input' must be [channels, height, width], got {describe(value)}", location, rank=rank)
        if name == "layers":
            return Diagnostic("'layers' must hold at least one layer", location, rank=rank)
        words = "at least" if kw == "minItems" else "at most"
        return Diagnostic(f"{prefix}'{name}' must have {words} {error.validator_value} items, got {len(value)}",
                          location, rank=rank)
    if kw == "enum":
        options = ", ".join(describe(v) for v in error.validator_value)
        return Diagnostic(f"{prefix}'{name}' must be one of {options}, got {describe(value)}"
                          + (suggest(value, error.validator_value) if isinstance(value, str) else ""),
                          location, rank=rank)
    if kw in ("anyOf", "oneOf"):
        desc = error.schema.get("description")
        if desc:
            return Diagnostic(f"{prefix}'{name}' must be {desc}, got {describe(value)}", location, rank=rank)
    if kw == "minLength":
        return Diagnostic(f"{prefix}'{name}' must not be empty", location, rank=rank)
    if kw == "uniqueItems":
        return Diagnostic(f"{prefix}'{name}' has repeated items", location, rank=rank)
    if kw == "pattern":
        return Diagnostic(f"{prefix}'{name}' {describe(value)} is not a valid name (letters, digits, '_' and '.', "
                          f"not starting with a digit)", location, rank=rank)
    if kw == "propertyNames":
        return Diagnostic(f"{prefix}'{name}' has a key that is not a valid name", location, rank=rank)
    return Diagnostic(f"{prefix}'{name}': {error.message}", location, rank=rank)


def validate(instance, kind: str, doc, base_path=(), subject=None, rank=10) -> list[Diagnostic]:
    """Every schema error as a located diagnostic. Valid input (the common case) is answered by the
    compiled predicate; jsonschema finds and explains the errors of the rest."""
    if is_valid_for(kind)(instance):
        return []
    errors = list(validator_for(kind).iter_errors(instance))
    explained = _misspelt_required(errors)
    return [translate(e, doc, base_path, subject, rank) for e in errors if id(e) not in explained]


def _misspelt_required(errors) -> set:
    """'needs kernel' errors that a misspelt 'kernal' in the same mapping already explains."""
    unknown = {}
    for e in errors:
        if e.validator == "additionalProperties" and isinstance(e.instance, dict):
            allowed = e.schema.get("properties", {})
            unknown.setdefault(tuple(e.absolute_path), []).extend(k for k in e.instance if k not in allowed)
    explained = set()
    for e in errors:
        if e.validator == "required" and isinstance(e.instance, dict):
            typos = unknown.get(tuple(e.absolute_path), [])
            missing = [k for k in e.validator_value if k not in e.instance]
            if missing and all(close_match(m, typos) for m in missing):
                explained.add(id(e))
    return explained


def write_schema_file(path: Path = SCHEMA_FILE) -> None:
    path.write_text(json.dumps(editor_schema(), indent=2) + "\n", encoding="utf-8")
