"""The JSON Schema of the spec language, generated from the op table, and validation against it.

Two schemas come from one source: the editor schema (``cnnspec schema``, shipped as
``spec.schema.json``) describes every op's arguments for completion; the checker validates the
document shape with jsonschema and each layer's arguments against that op's own sub-schema, so
an error says "conv2d: 'kernel' must be ..." rather than "not valid under any of the schemas"
(the words come from :mod:`.messages`, a table of one message function per keyword).
Valid input is first answered by the same schemas compiled to predicates (``fastschema``), so a
valid spec is checked without importing jsonschema at all.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from ..errors import Diagnostic
from ..graph.ops import OPS, POS_INT
from .messages import explain

SCHEMA_FILE = Path(__file__).parent.parent / "spec.schema.json"  # cnnspec/spec.schema.json, shipped
SCHEMA_ID = "https://cnnspec.dev/schema/spec-v1.json"
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.]*$"
# inside a block a local name may start with a digit (torchvision's 'block.0.0'): the call's name
# before it makes the full name match NAME_PATTERN
LOCAL_NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.]*$"
WORD_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"  # block, parameter and block-input names
MAX_IMPORTS = 16  # files one spec reads through 'import', all levels together (see cnnspec.spec.imports)
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


def layer_item_schema(block_names=(), in_block: bool = False) -> dict:
    """One layer item; inside a block its name may be a bare index and a bare '$param' names its op."""
    ref_or = lambda s: {"anyOf": [s, PARAM_REF]}  # noqa: E731
    props = {
        "name": ref_or({"type": "string", "pattern": LOCAL_NAME_PATTERN if in_block else NAME_PATTERN}),
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
    bare = [{"type": "string", "enum": sorted(OPS), "description": "an op with default arguments"}]
    if in_block:
        bare.append({**PARAM_REF, "description": "the op a block parameter names, with default arguments"})
    return {
        "anyOf": bare + [
            {"type": "object", "properties": props, "minProperties": 1,
             "additionalProperties": {"type": ["object", "null"],
                                      "description": "a call of a block, or the op a '$param' key names"}},
        ]
    }


IMPORT = {"anyOf": [{"type": "string", "minLength": 1},
                    {"type": "array", "items": {"type": "string", "minLength": 1}, "maxItems": MAX_IMPORTS}],
          "allowed": "a file or a list of files ('blocks.yaml', 'cnnspec:resnet')",
          "description": "files whose blocks this spec calls: paths relative to this file, inside its folder, "
                         "or 'cnnspec:NAME' for the block library shipped with cnnspec"}


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
            "import": IMPORT,
            "blocks": {"type": "object", "propertyNames": {"pattern": WORD_PATTERN},
                       "additionalProperties": {"$ref": "#/$defs/block"}},
            "layers": {"$ref": "#/$defs/layers"},
            "outputs": {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1,
                        "maxItems": MAX_LAYERS, "allowed": "a list of layer names ([head1, head2])",
                        "description": "the layers the model returns, in order; default: the last layer alone"},
        },
        "$defs": {
            "layers": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/layer"}},
            "layer": layer_item_schema(),
            "block_layers": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/block_layer"}},
            "block_layer": layer_item_schema(in_block=True),
            "block": {
                "type": "object", "required": ["layers"], "additionalProperties": False,
                "properties": {
                    "description": {"type": "string"},
                    "params": {"type": "object", "propertyNames": {"pattern": WORD_PATTERN},
                               "description": "name: default; an empty default (null) makes it required"},
                    "inputs": {"type": "array", "items": {"type": "string", "pattern": WORD_PATTERN},
                               "minItems": 1, "uniqueItems": True,
                               "description": "the names of the block's inputs, for a block that takes several; "
                                              "a call's 'in' names as many layers"},
                    "layers": {"$ref": "#/$defs/block_layers"},
                },
            },
        },
    }


def document_schema() -> dict:
    """What the checker validates with jsonschema: the editor schema without layer internals."""
    schema = editor_schema()
    schema["$defs"]["layer"] = schema["$defs"]["block_layer"] = {"type": ["string", "object"]}
    return schema


def library_schema() -> dict:
    """An imported file: a spec's document schema, of which only 'cnnspec' and 'blocks' are required
    (a whole spec can be imported for its blocks; its layers are not expanded)."""
    schema = document_schema()
    schema["required"] = ["cnnspec", "blocks"]
    return schema


_WHOLE_SCHEMAS = {"document": document_schema, "library": library_schema}


@lru_cache(maxsize=None)
def _validator_class():
    from jsonschema import Draft202012Validator, validators

    def is_integer(_checker, instance):  # jsonschema alone would take 64.0 for an integer
        return isinstance(instance, int) and not isinstance(instance, bool)

    checker = Draft202012Validator.TYPE_CHECKER.redefine("integer", is_integer)
    return validators.extend(Draft202012Validator, type_checker=checker)


@lru_cache(maxsize=None)
def schema_for(kind: str) -> dict:
    """The schema the checker validates with: 'document', 'library' (an imported file) or 'op:<name>'."""
    return _WHOLE_SCHEMAS[kind]() if kind in _WHOLE_SCHEMAS else op_args_schema(kind[3:])


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
